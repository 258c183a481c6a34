"""YARN's decommission deadline, read over the ResourceManager's client RPC.

Stock Hadoop reports a DECOMMISSIONING node's graceful timeout only over RPC (``NodeReport``), not REST,
so the REST poller never learns a deadline. This reader asks the shim (which asks the RM with the app's
own Hadoop configuration and credentials) for the timeouts while the controller holds a DECOMMISSIONING
node, on its own daemon thread: never the poller's. If the RM can't be asked (no Hadoop client, no
Kerberos ticket, RPC port closed), it says why once and decom stays on REST: the threshold then acts
only on deadlines an RM reports itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from .shim import NodeTimeout, TimeoutSource

__all__ = ["DeadlineReader", "TimeoutSink"]

log = logging.getLogger("decom")


class TimeoutSink(Protocol):
    """Where the timeouts go: the controller."""

    def has_decommissioning_nodes(self) -> bool: ...

    def on_decommissioning_timeouts(self, timeouts: Sequence[NodeTimeout]) -> None: ...


class DeadlineReader:
    """Reads the timeouts every ``interval`` seconds while a node is DECOMMISSIONING (checking for one
    every ``idle_check`` seconds otherwise). After a failure it waits ``first_retry`` seconds, doubling up
    to ``retry`` (an RM fail-over must not cost a short timeout), logging only the first failure and the
    recovery."""

    def __init__(self, source: TimeoutSource, sink: TimeoutSink, *, interval: float = 2.0,
                 idle_check: float = 0.5, first_retry: float = 2.0, retry: float = 60.0) -> None:
        self._source = source
        self._sink = sink
        self._interval = interval
        self._idle_check = idle_check
        self._retry = retry
        self._first_retry = min(first_retry, retry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reads = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self) -> DeadlineReader:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="decom-deadline-reader", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def read_once(self) -> tuple[NodeTimeout, ...]:
        """One read, handed to the sink; raises what the source raises."""
        timeouts = self._source.decommissioning_timeouts()
        self.reads += 1
        self._sink.on_decommissioning_timeouts(timeouts)
        return timeouts

    def _run(self) -> None:
        delay = 0.0
        backoff = self._first_retry
        while not self._stop.wait(delay):
            if not self._sink.has_decommissioning_nodes():
                delay = self._idle_check
                continue
            try:
                self.read_once()
            except Exception as e:  # noqa: BLE001 - py4j/RPC errors of any kind: stay on REST
                self.failures += 1
                if self.last_error is None:
                    log.warning("decom: cannot read decommissioning timeouts over the YARN ResourceManager's "
                                "RPC (%s); deadlines come only from what the RM's REST reports. Retrying "
                                "with backoff up to %g s", _first_line(e), self._retry)
                self.last_error = _first_line(e)
                delay, backoff = backoff, min(backoff * 2, self._retry)
                continue
            backoff = self._first_retry
            if self.last_error is not None:
                log.info("decom: decommissioning timeouts are read over the RM's RPC again")
                self.last_error = None
            delay = self._interval


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
