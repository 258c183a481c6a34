"""The ResourceManager poller: a daemon thread that turns node-state changes into NodeStatus calls. The
driver polls with it (decom._driver.poller.start_poller), and so does the cluster agent, which serves
its snapshot to every driver.

What a poll costs, and why it asks what it asks
-----------------------------------------------
Listing every RUNNING node each interval costs the RM and the driver O(cluster) per poll: at
10,000 nodes a few MB of JSON per second, per Spark application. decom needs far less:

* Each poll asks only for the doomed states (``DECOMMISSIONING,DECOMMISSIONED,LOST,SHUTDOWN``),
  which is small while few nodes are going away, plus ``/ws/v1/cluster/metrics`` (a few hundred
  bytes) for the number of active nodes.
* A node we hold in a doomed state that is no longer in the doomed answer (recommissioned, or
  forgotten by the RM) is looked up alone (``/ws/v1/cluster/nodes/{id}``); more than
  ``max_lookups`` (16) such nodes at once make a full poll instead.
* A *full* poll (those states plus ``RUNNING``) is made on the first poll, when the RM's
  ``activeNodes`` differs from the RUNNING nodes the snapshot holds once the poll's answer is in
  (a NodeManager registered, maybe on a new port of a doomed host, or left RUNNING for a state not
  listed), and every ``full_interval`` seconds as a safety net (default 60 s). An RM without the
  metrics call (a fake, a proxy) just gets the periodic full poll.

So neither a node being decommissioned nor one coming back costs a full poll; a NodeManager
registering costs one.

``light=False`` makes every poll a full one (simple, and what the CLI's ``watch`` can use).

``full_apart=True`` (the cluster agent) makes the periodic and count-triggered full reads after the first
one in a thread of their own, one at a time, so they don't hold the light polls back: at 10,000 nodes a
full read takes the RM ~2 s to answer, and an agent serving its drivers every interval can't wait for it.
The full answer is then merged without undoing what a light poll saw while it was being read, and is
dropped if a full read made inline (too many nodes to look up at once) began after it. A failed one is
retried with backoff and shows in ``status()``.

Targets: a node is named by its host, or by its YARN node id (``host:port``) when several
NodeManagers in the snapshot share the host. A NodeManager that restarted on a new port leaves
its old id behind as LOST/SHUTDOWN/DECOMMISSIONED; such gone ids of a host that also has a live
NodeManager are history and are ignored, so the host's state is the live one's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from .._errors import ResourceManagerError
from .client import ResourceManagerUnreachableError
from .nodes import (
    DECOMMISSIONED,
    DECOMMISSIONING,
    DOOMED_STATES,
    GONE_STATES,
    LOST,
    RUNNING,
    SHUTDOWN,
    NodeStatus,
    RMNode,
)

__all__ = ["NodePoller", "NodeSource", "NodeStateSink", "DOOMED_QUERY", "FULL_QUERY"]

log = logging.getLogger("decom.poller")

#: What every (light) poll asks for.
DOOMED_QUERY = (DECOMMISSIONING, DECOMMISSIONED, LOST, SHUTDOWN)
assert frozenset(DOOMED_QUERY) == DOOMED_STATES
#: What a full poll asks for.
FULL_QUERY = DOOMED_QUERY + (RUNNING,)
_MIN_INTERVAL = 0.05


class NodeSource(Protocol):
    """Where node states are read: the RM (ResourceManagerClient), or the cluster agent first
    (agent_link.AgentFirstNodes)."""

    @property
    def addresses(self) -> list[str]: ...

    @property
    def active_address(self) -> str | None: ...

    def nodes(self, states: Iterable[str] | None = None) -> list[RMNode]: ...

    def node(self, node_id: str) -> RMNode | None: ...

    def cluster_metrics(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class NodeStateSink(Protocol):
    """Where the poller sends node-state changes: the controller (told of every poll, see start_poller)."""

    def on_node_states(self, statuses: Sequence[NodeStatus]) -> None: ...

    def attach_poller(self, poller: NodePoller) -> None: ...


class NodePoller:
    """Polls the ResourceManager every ``interval`` seconds in a daemon thread and calls
    ``on_update`` with the nodes whose state changed (on the first poll: every node not RUNNING).

    Never raises from the thread: RM failures back off exponentially (up to ``max_backoff``, 5 s: the
    longest a node change can go unseen once the RM is back after an outage) with
    one warning when the RM becomes unreachable and one info line when it answers again;
    ``on_update`` exceptions are logged. :meth:`poll_once` runs one poll in the caller's thread.
    With ``every_poll``, ``on_update`` is also called (with no nodes) after a poll that saw no change.
    """

    def __init__(self, client: NodeSource, interval: float,
                 on_update: Callable[[list[NodeStatus]], None], *,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 light: bool = True, full_interval: float = 60.0, max_backoff: float = 5.0,
                 max_lookups: int = 16, owns_client: bool = False, every_poll: bool = False,
                 full_apart: bool = False) -> None:
        self._client = client
        self._interval = max(_MIN_INTERVAL, float(interval))
        self._on_update = on_update
        self._every_poll = every_poll
        self._clock = clock
        self._now = wall_clock
        self._light = light
        self._full_interval = full_interval
        self._max_backoff = max(self._interval, max_backoff)
        self._owns_client = owns_client
        self._max_lookups = max_lookups
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()
        self._status_lock = threading.Lock()
        # What the RM said: node id -> node, and host -> node ids.
        self._snapshot: dict[str, RMNode] = {}
        self._by_host: dict[str, set[str]] = {}
        self._doomed_ids: set[str] = set()
        # What on_update was last told per target (also the baseline of the first poll).
        self._emitted: dict[str, str] = {}
        self._first = True
        self._last_full: float | None = None
        # full_apart: the thread that makes the full reads, woken by _full_wanted. Light polls are
        # numbered; _light_seen holds the number of the last light poll that saw (or forgot) a node, so
        # a full answer read meanwhile doesn't overwrite it with an older view.
        self._full_apart = full_apart and light
        self._full_wanted = threading.Event()
        self._full_thread: threading.Thread | None = None
        self._light_seq = 0
        self._light_seen: dict[str, int] = {}
        self._apart_changes: list[NodeStatus] = []
        self._full_gen = 0  # full reads made inline: one that began after an apart read supersedes it
        self._full_in_flight = False
        self._full_retry_at = 0.0
        self._full_failing = 0
        self._full_errors = 0
        self._last_full_error: str | None = None
        self._metrics_ok = True
        self._running = 0  # RUNNING nodes in the snapshot: what the RM's activeNodes should say
        # activeNodes less the RUNNING nodes a full read listed: 0, unless the RM's counters and its node list
        # disagree for good, which must not make every poll a full read. Taken once two full reads in a row
        # found the same difference: a node changing between the two requests of one read makes a one-off.
        self._count_offset = 0
        self._offset_seen: int | None = None
        # Counters for status().
        self._polls = 0
        self._full_polls = 0
        self._errors = 0
        self._consecutive_errors = 0
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._failing_since: float | None = None
        self._updates = 0

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> NodePoller:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="decom-node-poller",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop polling; returns within ``timeout`` even if a request is in flight (the daemon
        thread then ends when it returns, and calls no ``on_update`` after this)."""
        self._stop.set()
        self._full_wanted.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._owns_client and (thread is None or not thread.is_alive()):
            self._client.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def status(self) -> dict[str, Any]:
        """For the controller's report: addresses, the active RM, counters, the last error."""
        with self._status_lock:
            last = self._last_success
            return {
                "addresses": self._client.addresses,
                "active_address": self._client.active_address,
                "running": self.running,
                "interval_s": self._interval,
                "mode": "light" if self._light else "full",
                "polls": self._polls,
                "full_polls": self._full_polls,
                "updates": self._updates,
                "nodes_tracked": len(self._snapshot),
                "last_success": last,
                "last_success_age_s": None if last is None else round(self._now() - last, 3),
                "consecutive_errors": self._consecutive_errors,
                "errors": self._errors,
                "last_error": self._last_error,
                "full_read_in_flight": self._full_in_flight,
                "full_read_errors": self._full_errors,
                "last_full_read_error": self._last_full_error,
            }

    def nodes(self) -> list[RMNode]:
        """The nodes as the last polls left them: every node in FULL_QUERY's states as of the last full
        poll, with the doomed ones (and those just back from them) as of the last poll."""
        with self._poll_lock:
            return list(self._snapshot.values())

    def states(self) -> dict[str, str]:
        """The last state reported (or taken as the baseline) per target."""
        with self._poll_lock:
            return dict(self._emitted)

    # ---- polling --------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            started = self._clock()
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - logged by poll_once; the thread must live on
                n = self._consecutive_errors
                delay = min(self._max_backoff, self._interval * 2 ** min(max(n - 1, 0), 20))
            else:
                # A source that holds each poll until it has news (the cluster agent's long poll: its
                # ``paced`` is true) sets the pace itself; the RM is asked every interval.
                paced = bool(getattr(self._client, "paced", False))
                delay = _MIN_INTERVAL if paced else max(0.0, self._interval - (self._clock() - started))

    def poll_once(self) -> list[NodeStatus]:
        """One poll: ask the RM, diff, call ``on_update`` with the changes (if any) and return
        them. Raises :class:`ResourceManagerError` (after logging) when the RM can't be read."""
        with self._poll_lock:
            try:
                changes = self._poll()
            except Exception as e:
                self._failed(e)
                raise
            self._succeeded()
        if (changes or self._every_poll) and not self._stop.is_set():
            if changes:
                with self._status_lock:
                    self._updates += 1
            try:
                self._on_update(changes)
            except Exception:  # noqa: BLE001 - a broken callback must not stop the polling
                log.exception("decom: the node-state callback failed on %d change(s); polling "
                              "goes on", len(changes))
        return changes

    def _poll(self) -> list[NodeStatus]:
        now = self._clock()
        full = self._first or not self._light or self._last_full is None \
            or now - self._last_full >= self._full_interval
        active = self._active_count() if self._light else None
        touched: set[str] = set()
        # With full_apart, a periodic full read is due (or a count mismatch asks for one): it is
        # made by the full reader while this poll stays light.
        apart = self._full_apart and not self._first and full
        if apart:
            self._want_full(now)
            full = False
        if not full:
            self._light_seq += 1
            nodes = self._client.nodes(DOOMED_QUERY)
            answered = {n.node_id for n in nodes}
            # Nodes that left the doomed states: back to RUNNING, another state, or forgotten.
            vanished = [i for i in self._doomed_ids if i not in answered]
            forgotten: list[str] = []
            if len(vanished) > self._max_lookups:
                full = True
            else:
                for node_id in vanished:
                    node = self._client.node(node_id)
                    if node is None:
                        forgotten.append(node_id)
                    else:
                        nodes.append(node)
            if not full:
                touched = self._merge(nodes, forgotten)
                if self._full_apart:
                    for node_id in [n.node_id for n in nodes] + forgotten:
                        self._light_seen[node_id] = self._light_seq
                # The RM counts its RUNNING nodes. A difference from the snapshot's, this answer in, is a
                # NodeManager we don't know about (registered, maybe on a new port of a doomed host) or one
                # that left RUNNING for a state we don't list.
                if active is not None and active != self._running + self._count_offset:
                    if self._full_apart:
                        self._want_full(now)
                    else:
                        full = True
        if full:
            self._full_gen += 1
            nodes = self._client.nodes(FULL_QUERY)
            touched |= self._replace(nodes)
            self._set_count_offset(active, nodes)
            self._last_full = now
            with self._status_lock:
                self._full_polls += 1
        changes = self._diff(touched)
        if self._apart_changes:
            # What the last full read apart found, before what this poll found (newer).
            changes, self._apart_changes = self._apart_changes + changes, []
        self._first = False
        return changes

    def _want_full(self, now: float) -> None:
        """Ask the full reader for a full read (full_apart; the caller holds _poll_lock). One at a time, and
        none before a failed one's backoff has passed; the thread starts on the first call."""
        if self._full_in_flight and self._full_thread is not None and not self._full_thread.is_alive():
            self._full_in_flight = False  # the reader died (it should not): start another
            self._full_thread = None
        if self._full_in_flight or now < self._full_retry_at:
            return
        self._last_full = now  # asked for once, not at every light poll until it lands
        self._full_in_flight = True
        if self._full_thread is None and not self._stop.is_set():
            self._full_thread = threading.Thread(target=self._run_full_reads, name="decom-node-full-reader",
                                                 daemon=True)
            self._full_thread.start()
        self._full_wanted.set()

    def _run_full_reads(self) -> None:
        while True:
            self._full_wanted.wait()
            self._full_wanted.clear()  # before the stop check: a stop() after it still wakes the next wait
            if self._stop.is_set():
                return
            try:
                self._full_read_apart()
            except Exception as e:  # noqa: BLE001 - the light polls go on; retried with backoff
                self._full_read_failed(e)
            finally:
                with self._poll_lock:
                    self._full_in_flight = False

    def _full_read_apart(self) -> None:
        with self._poll_lock:
            since, gen = self._light_seq, self._full_gen
        # Outside the lock: the light polls go on meanwhile. The count first, as a light poll asks.
        active = self._active_count() if self._light else None
        nodes = self._client.nodes(FULL_QUERY)
        with self._poll_lock:
            if gen != self._full_gen:
                return  # a full read made inline began after this one: its answer is the newer
            self._set_count_offset(active, nodes)
            # A node a light poll saw (or found forgotten) after this read began is newer there.
            newer = {i for i, seq in self._light_seen.items() if seq > since}
            self._light_seen = {i: seq for i, seq in self._light_seen.items() if seq > since}
            touched = self._replace([n for n in nodes if n.node_id not in newer], keep=newer)
            # Told with the next light poll, so on_update is called from one thread, in order.
            self._apart_changes.extend(self._diff(touched))
            failed, self._full_failing, self._full_retry_at = self._full_failing, 0, 0.0
            with self._status_lock:
                self._full_polls += 1
        if failed:
            log.info("decom: a full read of the ResourceManager's nodes works again after %d failure(s)", failed)

    def _full_read_failed(self, e: Exception) -> None:
        reason = str(e) if isinstance(e, ResourceManagerError) else f"{type(e).__name__}: {e}"
        with self._poll_lock:
            self._full_failing += 1
            backoff = min(self._full_interval, self._interval * 2 ** min(self._full_failing, 16))
            self._full_retry_at = self._clock() + backoff
            self._last_full = None  # due again once the backoff has passed
            first = self._full_failing == 1
            with self._status_lock:
                self._full_errors += 1
                self._last_full_error = reason
        if first:
            log.warning("decom: a full read of the ResourceManager's nodes failed (%s); the light polls go on, "
                        "retrying with backoff (up to %g s)", reason, self._full_interval)

    def _set_count_offset(self, active: int | None, nodes: Iterable[RMNode]) -> None:
        """The RM's activeNodes against the RUNNING nodes of a full read (caller holds _poll_lock): the
        difference becomes the norm once two full reads in a row find it."""
        if active is None:
            return
        offset = active - sum(1 for n in nodes if n.state == RUNNING)
        if offset == self._offset_seen and offset != self._count_offset:
            log.info("decom: the ResourceManager counts %d active nodes but lists %d RUNNING ones; that "
                     "difference is taken as its norm", active, active - offset)
            self._count_offset = offset
        self._offset_seen = offset

    def _active_count(self) -> int | None:
        if not self._metrics_ok:
            return None
        try:
            metrics = self._client.cluster_metrics()
        except ResourceManagerUnreachableError:
            raise
        except ResourceManagerError as e:
            self._metrics_ok = False
            log.debug("decom: the ResourceManager's cluster metrics are unusable (%s); "
                     "relying on a full node poll every %g s", e, self._full_interval)
            return None
        value = metrics.get("activeNodes")
        if isinstance(value, bool) or not isinstance(value, int):
            self._metrics_ok = False
            return None
        return value

    # ---- snapshot and diff ----------------------------------------------------------------------

    def _put(self, node: RMNode, touched: set[str]) -> None:
        old = self._snapshot.get(node.node_id)
        if old == node:
            return
        self._running += (node.state == RUNNING) - (old is not None and old.state == RUNNING)
        if old is not None and old.host != node.host:
            self._unindex(old)
            touched.add(old.host)
        self._snapshot[node.node_id] = node
        self._by_host.setdefault(node.host, set()).add(node.node_id)
        if node.state in DOOMED_STATES:
            self._doomed_ids.add(node.node_id)
        else:
            self._doomed_ids.discard(node.node_id)
        if old is None or (old.state, old.decommissioning_timeout) != \
                (node.state, node.decommissioning_timeout) or old.host != node.host:
            touched.add(node.host)

    def _drop(self, node_id: str) -> RMNode | None:
        """Take a node out of the snapshot; returns it (None: it was not there)."""
        old = self._snapshot.pop(node_id, None)
        if old is not None:
            self._running -= old.state == RUNNING
            self._unindex(old)
        return old

    def _unindex(self, node: RMNode) -> None:
        self._doomed_ids.discard(node.node_id)
        ids = self._by_host.get(node.host)
        if ids is not None:
            ids.discard(node.node_id)
            if not ids:
                del self._by_host[node.host]

    def _merge(self, nodes: Iterable[RMNode], forgotten: Iterable[str] = ()) -> set[str]:
        touched: set[str] = set()
        for node_id in forgotten:
            old = self._drop(node_id)
            if old is not None:
                touched.add(old.host)
        for node in nodes:
            self._put(node, touched)
        return touched

    def _replace(self, nodes: list[RMNode], keep: set[str] | frozenset[str] = frozenset()) -> set[str]:
        touched: set[str] = set()
        fresh = {n.node_id for n in nodes} | keep
        for nid in [nid for nid in self._snapshot if nid not in fresh]:
            old = self._drop(nid)
            assert old is not None
            touched.add(old.host)
        for node in nodes:
            self._put(node, touched)
        return touched

    def _targets(self, host: str) -> Mapping[str, RMNode]:
        entries = [self._snapshot[i] for i in self._by_host.get(host, ())]
        if len(entries) > 1:
            live = [e for e in entries if e.state not in GONE_STATES]
            if not live:  # every NodeManager of the host is gone: the host is
                return {host: max(entries, key=lambda e: (e.last_health_update, e.node_id))}
            entries = live
        if len(entries) == 1:
            return {host: entries[0]}
        return {e.node_id: e for e in entries}

    def _diff(self, touched: set[str]) -> list[NodeStatus]:
        changes: list[NodeStatus] = []
        now = self._now()
        for host in sorted(touched):
            for target, node in self._targets(host).items():
                previous = self._emitted.get(target)
                if previous == node.state:
                    continue
                self._emitted[target] = node.state
                if previous is None and node.state == RUNNING:
                    continue  # a healthy node we had not seen: nothing to say
                deadline = None
                if node.state == DECOMMISSIONING and node.decommissioning_timeout is not None:
                    deadline = now + node.decommissioning_timeout
                changes.append(NodeStatus(target, node.state, deadline))
        return changes

    # ---- error accounting -----------------------------------------------------------------------

    def _failed(self, e: Exception) -> None:
        reason = str(e) if isinstance(e, ResourceManagerError) else f"{type(e).__name__}: {e}"
        with self._status_lock:
            self._polls += 1
            self._errors += 1
            self._consecutive_errors += 1
            self._last_error = reason
            first = self._consecutive_errors == 1
            if first:
                self._failing_since = self._now()
        if first:
            log.warning("decom: cannot read node states from the YARN ResourceManager: %s. "
                        "Retrying with backoff (up to %g s); node states are not updated "
                        "meanwhile", reason, self._max_backoff,
                        exc_info=not isinstance(e, ResourceManagerError))

    def _succeeded(self) -> None:
        with self._status_lock:
            self._polls += 1
            failed, since = self._consecutive_errors, self._failing_since
            self._consecutive_errors = 0
            self._failing_since = None
            self._last_success = self._now()
        if failed:
            log.info("decom: the YARN ResourceManager answers again (%s) after %d failed "
                     "poll(s) over %.1f s", self._client.active_address, failed,
                     self._now() - (since or self._now()))
