"""Test support shared by the unit, fault, chaos and Spark areas.

`FakeRM` (from tests.fake_rm): the one fake ResourceManager, on httpx.MockTransport or served on
127.0.0.1, with a behaviour hook (`RMHandler`) for what a real RM can't be made to do (hang, garbage,
echo credentials). `capture_logs`: every line decom and its HTTP stack log, at every level, for
asserting what an operator would see. `RecordingShim`: the controller's shim port, recording each action.
"""

from __future__ import annotations

import io
import logging
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from decom._driver.shim import Action, ActionResult, NodeLetGo, ShimReport
from tests.fake_rm import FakeRM, RMHandler

__all__ = ["FakeRM", "RMHandler", "RecordingShim", "capture_logs", "closed_port"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def capture_logs(names: tuple[str, ...] = ("decom", "httpx", "httpcore")) -> Iterator[io.StringIO]:
    """Every record of these loggers, at every level, into a buffer; levels and handlers restored after.

    The HTTP stack's records (several per poll) stay out of pytest's own capture, so a failing test's
    report shows decom's lines rather than pages of httpcore DEBUG."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
        if not lg.name.startswith("decom"):
            lg.propagate = False
    try:
        yield buf
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


# ---- a recording shim ----------------------------------------------------------------------------


class RecordingShim:
    """A :class:`decom._driver.shim.ShimPort` that records each action, for tests of the controller and the
    control plane. ``calls`` holds ``(action, hosts, executors, arg)`` with ``arg`` the exclusion timeout
    (exclude), the cleanup flag (decommissioned) or None (unexclude). ``fail=True`` fails every call the
    way a busy py4j gateway does; ``failures=N`` fails the first N, then works (``attempts`` counts all).
    ``let_go`` is what :meth:`nodes_let_go` answers (tests set it); ``let_go_asks`` counts the questions,
    which ``fail`` fails too; ``moving`` names the hosts whose executors an exclude says were told to move.
    What the real shim does with these calls is shown on Spark in tests/spark."""

    def __init__(self, fail: bool = False, failures: int = 0) -> None:
        self.calls: list[tuple[str, list[str], list[str], float | bool | None]] = []
        self.fail = fail
        self.failures = failures
        self.attempts = 0
        self.exempt: bool | None = None
        self.let_go: tuple[NodeLetGo, ...] = ()
        self.let_go_asks = 0
        #: Hosts whose executors :meth:`exclude` says it told to move their blocks off.
        self.moving: set[str] = set()

    def set_exemption_enabled(self, enabled: bool) -> None:
        self.exempt = enabled

    def exclude(self, hosts: Sequence[str], executors: Sequence[str], timeout_s: float,
                reason: str) -> ActionResult:
        self._call(Action.EXCLUDE, hosts, executors, timeout_s)
        return ActionResult(Action.EXCLUDE, tuple(hosts) + tuple(f"executor:{e}" for e in executors),
                            moving=tuple(h for h in hosts if h in self.moving))

    def unexclude(self, hosts: Sequence[str], executors: Sequence[str], reason: str) -> ActionResult:
        self._call(Action.UNEXCLUDE, hosts, executors, None)
        return ActionResult(Action.UNEXCLUDE, tuple(hosts) + tuple(f"executor:{e}" for e in executors))

    def decommissioned(self, hosts: Sequence[str], executors: Sequence[str], cleanup: bool,
                       reason: str) -> ActionResult:
        self._call(Action.DECOMMISSIONED, hosts, executors, cleanup)
        return ActionResult(Action.DECOMMISSIONED, tuple(hosts) + tuple(f"executor:{e}" for e in executors))

    def report(self) -> ShimReport:
        return ShimReport.empty()

    def nodes_let_go(self) -> tuple[NodeLetGo, ...]:
        self.let_go_asks += 1
        if self.fail:
            raise RuntimeError("py4j gateway is busy")
        return self.let_go

    def actions_for(self, host: str) -> list[str]:
        """The actions, in order, whose hosts included ``host``."""
        return [action for action, hosts, _, _ in self.calls if host in hosts]

    def _call(self, action: Action, hosts: Sequence[str], executors: Sequence[str],
              arg: float | bool | None) -> None:
        self.attempts += 1
        if self.fail or self.attempts <= self.failures:
            raise RuntimeError("py4j gateway is busy")
        self.calls.append((action.method, list(hosts), list(executors), arg))
