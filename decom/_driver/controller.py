"""The control plane inside the driver: each node's decommission lifecycle, turned into shim actions."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._errors import DecomError
from .._yarn.nodes import DECOMMISSIONED, DECOMMISSIONING, GONE_STATES, RUNNING, NodeStatus
from .config import DecomConfig
from .shim import Action, ActionResult, NodeLetGo, NodeTimeout, ShimPort

if TYPE_CHECKING:
    from .deadlines import DeadlineReader
    from .poller import NodePoller

__all__ = ["Controller"]

log = logging.getLogger("decom")

#: Seconds before retrying a failed shim action, doubling up to the cap (a JVM busy for a while).
RETRY_FIRST, RETRY_MAX = 1.0, 30.0

#: A YARN node id "host:port" (IPv6 literals in brackets), as the shim's Target.node reads a key.
_NODE_ID = re.compile(r"^(.+):(\d+)$")


def _shim_may_let_go(key: str) -> bool:
    """The shim lets go of whole hosts only (a key that is neither an executor nor a node id)."""
    m = _NODE_ID.match(key)
    return not key.startswith("executor:") and (m is None or (":" in m.group(1) and not m.group(1).startswith("[")))


class _Node:
    def __init__(self, key: str) -> None:
        self.key = key
        self.state = RUNNING
        self.yarn_state: str | None = None
        self.deadline: float | None = None
        #: Where the deadline came from: "rm" (a NodeStatus carried it), "rpc" (read over the RM's RPC).
        self.deadline_source: str | None = None
        #: When decom first saw the node DECOMMISSIONING (its RPC deadline counts from here).
        self.decommissioning_since: float | None = None
        self.transitions: list[dict[str, Any]] = []
        #: Excluded by the shim and not let go since: the controller asks the shim about it on each poll.
        self.awaiting_let_go = False
        #: The shim's time (epoch ms) of the last let-go the hooks were told of.
        self.let_go_at: int | None = None
        #: That let-go still holds: no new transition since (what a cluster agent is told).
        self.let_go_now = False
        #: The shim told the node's executors to move their blocks off: inside the deadline threshold the
        #: node is handled as gone only ``spark.decom.migrationMargin`` before its deadline.
        self.moving = False


def _deadline_epoch(deadline: float | datetime | None) -> float | None:
    if deadline is None:
        return None
    if isinstance(deadline, datetime):
        return deadline.timestamp()
    return float(deadline)


class Controller:
    """Runs each node's lifecycle: RUNNING -> DECOMMISSIONING (exclude) -> DECOMMISSIONED/LOST/SHUTDOWN
    (clean up early, exempt) -> RUNNING again (un-exclude), and reports what it did.

    Nodes come from the ResourceManager poller, or by hand through :meth:`decommissioning`,
    :meth:`decommissioned` and :meth:`recommissioned`. ``hosts`` act on every executor of that host
    (a YARN node id ``host:port`` on that NodeManager's only); ``executors`` on those IDs only.
    """

    def __init__(self, shim: ShimPort, config: DecomConfig) -> None:
        self._shim = shim
        self.config = config
        self._lock = threading.RLock()
        self._nodes: dict[str, _Node] = {}
        self._timers: dict[str, threading.Timer] = {}
        # Failed shim actions by action -> node keys, retried until done or superseded by a new state.
        self._pending: dict[Action, set[str]] = {}
        self._retry_timer: threading.Timer | None = None
        self._retry_delay = RETRY_FIRST
        self._poller: NodePoller | None = None
        self._deadline_reader: DeadlineReader | None = None
        self._stopped = False
        self._event_log = config.event_log or None
        self._let_go_hooks: list[Callable[[NodeLetGo], None]] = []
        self._stop_hooks: list[Callable[[], None]] = []
        self._let_go_failing = False
        shim.set_exemption_enabled(config.exempt_enabled)
        for problem in config.errors:
            log.error("decom: configuration problem: %s", problem)

    # ---- the public, by-hand API ---------------------------------------------------------------

    def decommissioning(self, hosts: Iterable[str] = (), executors: Iterable[str] = (),
                        deadline: float | datetime | None = None) -> None:
        """These nodes/executors are being decommissioned: no new tasks there (running ones finish).

        ``deadline`` (epoch seconds or datetime): when the node will be forced out. If it is nearer
        than ``spark.decommissioning.timeout.threshold``, the node is handled as gone right now.
        """
        when = _deadline_epoch(deadline)
        self._apply([NodeStatus(k, DECOMMISSIONING, when) for k in self._keys(hosts, executors)])

    def decommissioned(self, hosts: Iterable[str] = (), executors: Iterable[str] = ()) -> None:
        """These nodes/executors are gone: drop their shuffle outputs and cached blocks at once."""
        self._apply([NodeStatus(k, DECOMMISSIONED) for k in self._keys(hosts, executors)])

    def recommissioned(self, hosts: Iterable[str] = (), executors: Iterable[str] = ()) -> None:
        """These nodes/executors are back in service: tasks may run there again."""
        self._apply([NodeStatus(k, RUNNING) for k in self._keys(hosts, executors)])

    def report(self) -> dict[str, Any]:
        """What decom saw and did: per node its state, transitions and the shim's actions."""
        shim = self._shim.report()
        with self._lock:
            pending = {action.method: sorted(keys) for action, keys in self._pending.items() if keys}
            nodes = {}
            for key, node in self._nodes.items():
                s = shim.node(key)
                nodes[key] = {
                    "state": node.state,
                    "yarn_state": node.yarn_state,
                    "transitions": list(node.transitions),
                    "deadline": node.deadline,
                    "deadline_source": node.deadline_source,
                    "excluded": s is not None and s.excluded,
                    "executors_excluded": list(s.executors_excluded) if s else [],
                    "executors_released": list(s.executors_released) if s else [],
                    "outputs_unregistered": s.outputs_unregistered if s else 0,
                    "outputs_migrated": s.outputs_migrated if s else 0,
                    "outputs_orphaned": s.outputs_orphaned if s else 0,
                    "bytes_migrated": s.bytes_migrated if s else 0,
                    # Epoch seconds, like the other times here (the shim counts milliseconds).
                    "let_go_at": s.let_go_at / 1000 if s and s.let_go_at is not None else None,
                    "shuffles": list(s.shuffles) if s else [],
                    "exempted_stage_attempts": list(s.exempted_stage_attempts) if s else [],
                }
            poller = self._poller.status() if self._poller is not None else None
        policy = shim.retry_policy
        return {
            "enabled": self.config.enabled and not self._stopped,
            "config_errors": list(self.config.errors),
            "nodes": nodes,
            "stages": [{"stage": s.stage, "countedAttempts": list(s.counted_attempts),
                        "exemptAttempts": list(s.exempt_attempts), "aborted": s.aborted} for s in shim.stages],
            "fetch_failures": {"total": shim.fetch_failures, "exempt": shim.fetch_failures_exempt},
            "retry_policy": {"mode": policy.mode, "userLimit": policy.user_limit,
                             "exemptionEnabled": policy.exemption_enabled, "sparkLimit": policy.spark_limit},
            "poller": poller,
            "shim": dict(shim.raw),
            "pending_actions": pending,
        }

    def on_node_let_go(self, callback: Callable[[NodeLetGo], None]) -> None:
        """Call ``callback(node)`` when decom finds the app holding nothing on a node it excluded: no
        executor, no map output, no running reducer of an output moved off it. The node's decommission can
        then finish without waiting for the app to end (what a cluster agent acts on).

        Once per node and let-go; a node excluded again and let go again is told again. Hooks run in the
        poller's thread on the RM poll that finds the node let go, so keep them short. An exception is
        logged and changes nothing else. Only let-gos found after registration reach a hook."""
        with self._lock:
            self._let_go_hooks.append(callback)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once when this controller stops (after polling has stopped)."""
        with self._lock:
            self._stop_hooks.append(callback)

    def nodes_let_go(self) -> frozenset[str]:
        """The DECOMMISSIONING (or gone) nodes the app holds nothing on any more, as the shim last said."""
        with self._lock:
            return frozenset(k for k, n in self._nodes.items() if n.state in (DECOMMISSIONING, DECOMMISSIONED)
                             and not n.awaiting_let_go and n.let_go_now)

    def stop(self) -> None:
        """Stop polling and acting. Exclusions in place stay until they expire or are lifted."""
        with self._lock:
            self._stopped = True
            poller, self._poller = self._poller, None
            reader, self._deadline_reader = self._deadline_reader, None
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            if self._retry_timer is not None:
                self._retry_timer.cancel()
            self._pending.clear()
        if poller is not None:
            poller.stop()
        if reader is not None:
            reader.stop()
        with self._lock:
            hooks, self._stop_hooks = self._stop_hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # noqa: BLE001 - stopping must finish
                log.exception("decom: a stop hook failed")

    # ---- what the poller calls ---------------------------------------------------------------

    def on_node_states(self, statuses: Sequence[NodeStatus]) -> None:
        """Apply the ResourceManager's view of some nodes (the poller calls this on every poll, with no
        statuses when nothing changed), then ask the shim which excluded nodes it has let go of. Never
        raises: a failure is logged and the failed shim action is retried with backoff, so a broken shim
        call can't take the driver down."""
        try:
            self._apply(statuses, from_rm=True)
        except Exception:  # noqa: BLE001 - the poller must survive anything the shim throws
            log.exception("decom: acting on node states failed")
        self._check_let_go()

    def on_decommissioning_timeouts(self, timeouts: Sequence[NodeTimeout]) -> None:
        """YARN's graceful-decommission timeouts, read over the RM's client RPC. A DECOMMISSIONING node's
        deadline is when decom first saw it DECOMMISSIONING + its timeout (recomputed from that same time
        when the timeout changes); the threshold then acts on it. Never raises."""
        try:
            by_key: dict[str, int] = {}
            for t in timeouts:
                if t.timeout_s is not None and t.timeout_s >= 0:  # YARN: a negative timeout waits forever
                    by_key[t.node_id] = t.timeout_s
                    by_key.setdefault(t.host, t.timeout_s)
            due: list[NodeStatus] = []
            with self._lock:
                if self._stopped:
                    return
                now = time.time()
                for node in self._nodes.values():
                    timeout = by_key.get(node.key)
                    if node.state != DECOMMISSIONING or node.decommissioning_since is None or timeout is None:
                        continue
                    if node.deadline_source == "rm":
                        continue  # a deadline given with the node's state (by hand, or by the RM) wins
                    deadline = node.decommissioning_since + timeout
                    if node.deadline == deadline:
                        continue
                    node.deadline, node.deadline_source = deadline, "rpc"
                    self._log_event("deadline", node.key, {"timeout_s": timeout, "deadline": deadline,
                                                           "source": "rpc"})
                    if self._due(node, now):
                        due.append(NodeStatus(node.key, DECOMMISSIONING, deadline))
                    else:
                        self._arm_deadline(node, now)  # inside the threshold too, if its data is moving
                if due:  # under the lock: a RUNNING from the poller can't come between the check and the act
                    self._apply(due, from_rm=True)
        except Exception:  # noqa: BLE001 - the reader's thread must survive anything the shim throws
            log.exception("decom: acting on decommissioning timeouts failed")

    def has_decommissioning_nodes(self) -> bool:
        """Whether a node is DECOMMISSIONING now (the deadline reader asks the RM only then)."""
        with self._lock:
            return not self._stopped and any(n.state == DECOMMISSIONING for n in self._nodes.values())

    def attach_deadline_reader(self, reader: DeadlineReader) -> None:
        with self._lock:
            self._deadline_reader = reader

    def attach_poller(self, poller: NodePoller) -> None:
        with self._lock:
            self._poller = poller

    # ---- nodes let go --------------------------------------------------------------------------

    def _check_let_go(self) -> None:
        """Tell the event log and the hooks of nodes the shim newly let go. No shim call unless a node
        decom excluded awaits it: this runs on every poll."""
        with self._lock:
            if self._stopped or not any(n.awaiting_let_go for n in self._nodes.values()):
                return
        try:
            found = self._shim.nodes_let_go()  # py4j, outside the lock
        except Exception as e:  # noqa: BLE001 - asked again on the next poll
            # Warned once per outage: this is asked on every poll while a node awaits.
            level = logging.DEBUG if self._let_go_failing else logging.WARNING
            log.log(level, "decom: cannot ask the shim for nodes let go (asked again on each poll): %s", e)
            self._let_go_failing = True
            return
        self._let_go_failing = False
        fresh: list[NodeLetGo] = []
        with self._lock:
            if self._stopped:
                return
            for item in found:
                node = self._nodes.get(item.key)
                # The list is cumulative: a node is new when it awaits and its time is not the one told.
                if node is None or not node.awaiting_let_go or node.let_go_at == item.at:
                    continue
                node.awaiting_let_go, node.let_go_at, node.let_go_now = False, item.at, True
                self._log_event("node-let-go", item.key, item.to_json())
                fresh.append(item)
            hooks = list(self._let_go_hooks)
        for item in fresh:  # outside the lock: a hook may call back into the controller or block
            for hook in hooks:
                try:
                    hook(item)
                except Exception:  # noqa: BLE001 - a user's hook must not break polling
                    log.exception("decom: the node-let-go hook %s failed for %s",
                                  getattr(hook, "__qualname__", repr(hook)), item.key)

    # ---- lifecycle -----------------------------------------------------------------------------

    @staticmethod
    def _keys(hosts: Iterable[str], executors: Iterable[str]) -> list[str]:
        if isinstance(hosts, str) or isinstance(executors, str):
            raise DecomError("hosts and executors take lists, e.g. hosts=['node-1'], executors=['3']")
        return [str(h) for h in hosts] + [f"executor:{e}" for e in executors]

    def _target_state(self, status: NodeStatus, node: _Node | None, now: float) -> str:
        if status.state in GONE_STATES:
            return DECOMMISSIONED
        if status.state == DECOMMISSIONING:
            left = None if status.deadline is None else status.deadline - now
            if left is not None and left < self.config.deadline_threshold:
                # Spot reclaim: too close to the end to drain. Executors that can move their blocks still
                # get until the margin: a node not yet excluded is excluded first (its executors are told),
                # and one whose executors were told stays DECOMMISSIONING until then.
                excluded = node is not None and node.state == DECOMMISSIONING
                if left > self.config.migration_margin and (node is None or not excluded or node.moving):
                    return DECOMMISSIONING
                return DECOMMISSIONED
            return DECOMMISSIONING
        if status.state == RUNNING:
            return RUNNING
        return ""  # NEW, UNHEALTHY, REBOOTED, unknown: no action

    def _apply(self, statuses: Sequence[NodeStatus], from_rm: bool = False) -> None:
        if not self.config.enabled:
            return
        now = time.time()
        exclude: list[str] = []
        gone: list[str] = []
        back: list[str] = []
        with self._lock:
            if self._stopped:
                if from_rm:
                    return
                raise DecomError("this decom controller was stopped; call decom.enable(spark) again")
            for status in statuses:
                node = self._nodes.get(status.target)
                target = self._target_state(status, node, now)
                if node is None:
                    if target in ("", RUNNING):
                        continue  # a healthy node we never acted on: nothing to do
                    node = self._nodes[status.target] = _Node(status.target)
                if status.state == DECOMMISSIONING and node.yarn_state != DECOMMISSIONING:
                    node.decommissioning_since = now
                elif status.state != DECOMMISSIONING:
                    node.decommissioning_since = None
                node.yarn_state = status.state
                deadline_changed = False
                if status.deadline is not None or status.state == RUNNING:
                    if status.deadline != node.deadline:  # else: the deadline decom already holds
                        node.deadline_source = "rm" if status.deadline is not None else None
                        deadline_changed = True
                    node.deadline = status.deadline
                # else: the node keeps the deadline read over RPC (REST never has one), also once gone.
                if not target or target == node.state:
                    if deadline_changed and node.state == DECOMMISSIONING:
                        self._arm_deadline(node, now)  # a new deadline (by hand, or a vendor RM's) for a held node
                    continue
                if node.state == DECOMMISSIONED and target == DECOMMISSIONING:
                    continue  # the RM answered out of order; gone is final until RUNNING again
                self._transition(node, target, status.state, now)
                {DECOMMISSIONING: exclude, DECOMMISSIONED: gone, RUNNING: back}[target].append(
                    status.target)
            # One shim call per action for the whole batch: nodes lost together are cleaned
            # together, so the next map-stage attempt recomputes all their outputs at once.
            errors = [e for e in (self._act(Action.DECOMMISSIONED, gone), self._act(Action.EXCLUDE, exclude),
                                  self._act(Action.UNEXCLUDE, back)) if e is not None]
            # Excluded inside the threshold so their executors could move their blocks: those that had
            # none told (no executor there, or migration off) are gone now, as without migration.
            unmoved = [k for k in exclude if self._due(self._nodes[k], now)]
            for key in unmoved:
                node = self._nodes[key]
                self._transition(node, DECOMMISSIONED, node.yarn_state or DECOMMISSIONING, now)
            error = self._act(Action.DECOMMISSIONED, unmoved)
            if error is not None:
                errors.append(error)
        if errors:
            raise errors[0]

    def _due(self, node: _Node, now: float) -> bool:
        """A DECOMMISSIONING node whose deadline is inside the threshold and that can't wait longer."""
        if node.state != DECOMMISSIONING or node.deadline is None:
            return False
        return self._target_state(NodeStatus(node.key, DECOMMISSIONING, node.deadline), node, now) == DECOMMISSIONED

    def _transition(self, node: _Node, target: str, yarn_state: str, now: float) -> None:
        """Record the node's new state (lock held); the caller asks the shim for its action."""
        node.transitions.append({"state": target, "yarn_state": yarn_state, "at": now})
        self._log_event("transition", node.key, {"from": node.state, "to": target, "yarn_state": yarn_state,
                                                 "deadline": node.deadline})
        node.state = target
        if target in (RUNNING, DECOMMISSIONING):
            # Back in service, or decommissioning anew: an old let-go says nothing about it (a cluster agent
            # must not hear of it again before the shim lets go of the node anew).
            node.let_go_now = False
        if target == RUNNING:
            node.awaiting_let_go = node.moving = False  # back in service: nothing to let go of
        for keys in self._pending.values():
            keys.discard(node.key)  # the new state's action supersedes a failed one
        self._arm_deadline(node, now)

    def _call_shim(self, action: Action, hosts: list[str], executors: list[str]) -> ActionResult:
        if action is Action.DECOMMISSIONED:
            return self._shim.decommissioned(hosts, executors, self.config.cleanup_enabled, action.reason)
        if action is Action.EXCLUDE:
            return self._shim.exclude(hosts, executors, self.config.exclude_timeout, action.reason)
        return self._shim.unexclude(hosts, executors, action.reason)

    def _arm_deadline(self, node: _Node, now: float) -> None:
        """A DECOMMISSIONING node with a known deadline is handled as gone once the deadline is
        nearer than the threshold (the margin, if its executors were told to move their blocks), even if
        the RM says nothing more before YARN forces it out."""
        old = self._timers.pop(node.key, None)
        if old is not None:
            old.cancel()
        if node.state != DECOMMISSIONING or node.deadline is None:
            return
        before = self.config.migration_margin if node.moving else self.config.deadline_threshold
        delay = max(0.0, node.deadline - before - now)
        timer = threading.Timer(delay, self._deadline_reached, args=(node.key, node.deadline))
        timer.daemon = True
        timer.name = f"decom-deadline-{node.key}"
        self._timers[node.key] = timer
        timer.start()

    def _deadline_reached(self, key: str, deadline: float) -> None:
        with self._lock:
            node = self._nodes.get(key)
            if node is None or node.state != DECOMMISSIONING or node.deadline != deadline:
                return
        log.info("decom: %s is %.0fs from its decommission deadline: handling it as gone now",
                 key, max(0.0, deadline - time.time()))
        self.on_node_states([NodeStatus(key, DECOMMISSIONING, deadline)])

    def _act(self, action: Action, keys: list[str]) -> DecomError | None:
        """One shim call for these nodes (lock held). A failure is logged, queued for a retry and
        returned: the nodes' states are already recorded, so the next poll would not redo it."""
        if not keys or (action is Action.EXCLUDE and not self.config.exclude_enabled):
            return None
        hosts = [k for k in keys if not k.startswith("executor:")]
        executors = [k[len("executor:"):] for k in keys if k.startswith("executor:")]
        try:
            result = self._call_shim(action, hosts, executors)
        except Exception as e:  # noqa: BLE001 - py4j errors become one typed, logged error
            self._log_event("action-failed", ",".join(keys), {"action": action.method, "error": str(e)})
            self._pending.setdefault(action, set()).update(keys)
            self._schedule_retry()
            error = DecomError(f"decom: {action} of {keys} failed in the JVM shim (decom retries it in "
                               f"{self._retry_delay:.0f}s while the node stays {action.node_state}): {e}")
            error.__cause__ = e  # the py4j/JVM trace shows in the log
            return error
        if action in self._pending:
            self._pending[action].difference_update(keys)
        if action is Action.EXCLUDE:
            now = time.time()
            for key in keys:
                node = self._nodes.get(key)
                if node is None or node.state != DECOMMISSIONING:
                    continue
                if _shim_may_let_go(key):
                    node.awaiting_let_go = True  # the shim now watches for the app to hold nothing there
                node.moving = key in result.moving
                if node.moving:
                    self._arm_deadline(node, now)  # its data gets until the margin to move
        self._log_event(action.method, ",".join(keys), result.to_json())
        return None

    def _schedule_retry(self) -> None:
        if self._stopped or (self._retry_timer is not None and self._retry_timer.is_alive()):
            return
        timer = threading.Timer(self._retry_delay, self._retry)
        timer.daemon = True
        timer.name = "decom-retry"
        self._retry_timer = timer
        timer.start()

    def _retry(self) -> None:
        """Redo the failed actions whose nodes are still in the state they stood for."""
        with self._lock:
            if self._stopped:
                return
            failed = False
            for action in list(self._pending):
                keys = sorted(k for k in self._pending.pop(action)
                              if k in self._nodes and self._nodes[k].state == action.node_state)
                if keys:
                    log.info("decom: retrying %s of %s", action, keys)
                    failed |= self._act(action, keys) is not None  # re-queues them on failure
            # This timer's thread is still alive here, so _act did not schedule another one.
            self._retry_timer = None
            self._retry_delay = min(self._retry_delay * 2, RETRY_MAX) if failed else RETRY_FIRST
            if failed:
                self._schedule_retry()

    def _log_event(self, action: str, target: str, detail: dict[str, Any]) -> None:
        log.info("decom: %s %s %s", action, target, json.dumps(detail, sort_keys=True))
        if self._event_log:
            line = json.dumps({"time": time.time(), "action": action, "target": target,
                               "detail": detail}, sort_keys=True)
            try:
                with open(self._event_log, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
            except OSError as e:
                log.warning("decom: cannot write the event log %s: %s", self._event_log, e)
                self._event_log = None
