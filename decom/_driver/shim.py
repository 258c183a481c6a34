"""The port between the controller and the JVM shim: the actions, what they answer, and the shim's report.

The controller talks to a :class:`ShimPort`; :class:`~decom._driver.jvm.JvmShim` is the real one (py4j
to ``io.decom.DecomShim``), tests bring a recording one. The shim answers in JSON; it is parsed here,
once, into frozen dataclasses, so nothing past this module reads camelCase keys. The wire format is
fixed by ``tests/contract/*.json``: the Scala suite must produce them and the Python suite must parse them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from .._errors import DecomError
from .._yarn.nodes import DECOMMISSIONED, DECOMMISSIONING, RUNNING

__all__ = ["Action", "ActionResult", "ShimPort", "NodeTimeout", "TimeoutSource", "ShimReport", "NodeReport",
           "NodeLetGo", "StageReport", "RetryPolicyReport", "ExecutorReport", "ShimProtocolError"]


class ShimProtocolError(DecomError):
    """The shim answered with something this Python package does not understand: the jar and the
    package are not the same build."""


class Action(Enum):
    """What the controller asks of the shim, with the node state it stands for (a failed action is
    retried while its nodes stay in that state) and the reason Spark's logs show."""

    EXCLUDE = ("exclude", DECOMMISSIONING, "decom: node is decommissioning")
    DECOMMISSIONED = ("decommissioned", DECOMMISSIONED, "decom: node is decommissioned")
    UNEXCLUDE = ("unexclude", RUNNING, "decom: node is back in service")

    def __init__(self, method: str, node_state: str, reason: str) -> None:
        self.method = method
        self.node_state = node_state
        self.reason = reason

    def __str__(self) -> str:
        return self.method


# ---- what the shim answers ---------------------------------------------------------------------


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(key)
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ShimProtocolError(
            f"the decom shim's {where} has {key}={value!r} where this decom package expects {wanted}: the "
            "jar and the package are different builds (use the jar shipped with it: python -m decom jar)")
    return value


def _strs(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    return tuple(str(v) for v in _field(data, key, list, where))


def _ints(data: Mapping[str, Any], key: str, where: str) -> tuple[int, ...]:
    return tuple(int(v) for v in _field(data, key, list, where))


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = _field(data, key, (int, type(None)), where)
    return None if value is None else int(value)


def _object(text: str | Mapping[str, Any], where: str) -> Mapping[str, Any]:
    data = json.loads(text) if isinstance(text, str) else text
    if not isinstance(data, dict):
        raise ShimProtocolError(f"the decom shim's {where} is not a JSON object: {str(text)[:200]}")
    return data


@dataclass(frozen=True)
class ActionResult:
    """What one action did. ``executors``: excluded (exclude) or un-excluded (unexclude); ``moving``
    (exclude): the targets whose executors were told to move their blocks off; for decommissioned,
    ``outputs_unregistered`` and ``executors_released``."""

    action: Action
    targets: tuple[str, ...]
    executors: tuple[str, ...] = ()
    moving: tuple[str, ...] = ()
    outputs_unregistered: int = 0
    executors_released: tuple[str, ...] = ()

    @classmethod
    def parse(cls, action: Action, text: str | Mapping[str, Any]) -> ActionResult:
        where = f"answer to {action}"
        data = _object(text, where)
        if action is Action.DECOMMISSIONED:
            return cls(action, _strs(data, "targets", where),
                       outputs_unregistered=int(_field(data, "outputsUnregistered", int, where)),
                       executors_released=_strs(data, "executorsReleased", where))
        return cls(action, _strs(data, "targets", where), executors=_strs(data, "executors", where),
                   moving=_strs(data, "moving", where))

    def to_json(self) -> dict[str, Any]:
        """The event-log form: the same keys the shim sent."""
        if self.action is Action.DECOMMISSIONED:
            return {"targets": list(self.targets), "outputsUnregistered": self.outputs_unregistered,
                    "executorsReleased": list(self.executors_released)}
        return {"targets": list(self.targets), "executors": list(self.executors), "moving": list(self.moving)}


@dataclass(frozen=True)
class NodeReport:
    """One node (or executor) the shim acted on."""

    key: str
    #: "node" or "executor".
    kind: str
    excluded: bool
    excluded_at: int | None
    excluded_until: int | None
    unexcluded_at: int | None
    unexclude_reason: str | None
    decommissioned_at: int | None
    executors_excluded: tuple[str, ...]
    executors_released: tuple[str, ...]
    outputs_unregistered: int
    #: Map outputs seen on the node that its executors moved to other nodes (block migration).
    outputs_migrated: int
    #: Outputs on the node at its exclusion whose executor was already gone: they could not move.
    outputs_orphaned: int
    #: Shuffle data bytes moved off the node.
    bytes_migrated: int
    #: When decom found the app holding nothing on the node any more (epoch ms), else None.
    let_go_at: int | None
    shuffles: tuple[int, ...]
    exempted_stage_attempts: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> NodeReport:
        w = "report node"
        reason = _field(data, "unexcludeReason", (str, type(None)), w)
        return cls(key=str(_field(data, "key", str, w)), kind=str(_field(data, "kind", str, w)),
                   excluded=bool(_field(data, "excluded", bool, w)),
                   excluded_at=_opt_int(data, "excludedAt", w), excluded_until=_opt_int(data, "excludedUntil", w),
                   unexcluded_at=_opt_int(data, "unexcludedAt", w), unexclude_reason=reason,
                   decommissioned_at=_opt_int(data, "decommissionedAt", w),
                   executors_excluded=_strs(data, "executorsExcluded", w),
                   executors_released=_strs(data, "executorsReleased", w),
                   outputs_unregistered=int(_field(data, "outputsUnregistered", int, w)),
                   outputs_migrated=int(_field(data, "outputsMigrated", int, w)),
                   outputs_orphaned=int(_field(data, "outputsOrphaned", int, w)),
                   bytes_migrated=int(_field(data, "bytesMigrated", int, w)),
                   let_go_at=_opt_int(data, "letGoAt", w),
                   shuffles=_ints(data, "shuffles", w),
                   exempted_stage_attempts=_strs(data, "exemptedStageAttempts", w))


@dataclass(frozen=True)
class NodeLetGo:
    """A node the app holds nothing on any more: no executor, no map output, no running reducer of an
    output moved off it (``DecomShim.nodesLetGo``). Its decommission can finish without waiting for the
    app to end."""

    key: str
    #: When the shim found it so, in epoch milliseconds (the driver JVM's clock). A node excluded again
    #: and let go again has a later ``at``.
    at: int
    outputs_migrated: int
    outputs_orphaned: int
    outputs_unregistered: int
    bytes_migrated: int

    @classmethod
    def parse_all(cls, text: str | Mapping[str, Any]) -> tuple[NodeLetGo, ...]:
        w = "nodes let go"
        nodes = _field(_object(text, w), "nodes", list, w)
        return tuple(
            cls(str(_field(n, "key", str, w)), int(_field(n, "at", int, w)),
                int(_field(n, "outputsMigrated", int, w)), int(_field(n, "outputsOrphaned", int, w)),
                int(_field(n, "outputsUnregistered", int, w)), int(_field(n, "bytesMigrated", int, w)))
            for n in (_object(x, w) for x in nodes))

    def to_json(self) -> dict[str, Any]:
        """The event-log form: the same keys the shim sent (the key is the event's target)."""
        return {"at": self.at, "outputsMigrated": self.outputs_migrated, "outputsOrphaned": self.outputs_orphaned,
                "outputsUnregistered": self.outputs_unregistered, "bytesMigrated": self.bytes_migrated}


@dataclass(frozen=True)
class StageReport:
    """A stage that had failed attempts: which counted toward the user's limit, which were exempt."""

    stage: int
    counted_attempts: tuple[int, ...]
    exempt_attempts: tuple[int, ...]
    aborted: bool

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> StageReport:
        w = "report stage"
        return cls(int(_field(data, "stage", int, w)), _ints(data, "countedAttempts", w),
                   _ints(data, "exemptAttempts", w), bool(_field(data, "aborted", bool, w)))


@dataclass(frozen=True)
class RetryPolicyReport:
    #: "plugin" (Spark's limit raised through the conf) or "reflection" (raised in a running scheduler).
    mode: str
    user_limit: int
    exemption_enabled: bool
    #: The DAGScheduler's limit now, when readable.
    spark_limit: int | None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RetryPolicyReport:
        w = "report retryPolicy"
        return cls(str(_field(data, "mode", str, w)), int(_field(data, "userLimit", int, w)),
                   bool(_field(data, "exemptionEnabled", bool, w)), _opt_int(data, "sparkLimit", w))


@dataclass(frozen=True)
class ExecutorReport:
    id: str
    host: str
    nm_host: str | None
    nm_port: int | None
    alive: bool

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ExecutorReport:
        w = "report executor"
        return cls(str(_field(data, "id", str, w)), str(_field(data, "host", str, w)),
                   _field(data, "nmHost", (str, type(None)), w), _opt_int(data, "nmPort", w),
                   bool(_field(data, "alive", bool, w)))


@dataclass(frozen=True)
class ShimReport:
    """What the shim saw and did: ``DecomShim.report()``, parsed once."""

    version: str
    retry_policy: RetryPolicyReport
    fetch_failures: int
    fetch_failures_exempt: int
    nodes: tuple[NodeReport, ...]
    stages: tuple[StageReport, ...]
    executors: tuple[ExecutorReport, ...]
    #: The shim's recent events (time, action, target, detail), newest last; their details vary by action.
    events: tuple[Mapping[str, Any], ...]
    #: The JSON as the shim sent it: what ``Controller.report()["shim"]`` shows.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str | Mapping[str, Any]) -> ShimReport:
        w = "report"
        data = _object(text, w)
        failures = _object(_field(data, "fetchFailures", dict, w), "report fetchFailures")
        return cls(
            version=str(_field(data, "version", str, w)),
            retry_policy=RetryPolicyReport.parse(_field(data, "retryPolicy", dict, w)),
            fetch_failures=int(_field(failures, "total", int, "report fetchFailures")),
            fetch_failures_exempt=int(_field(failures, "exempt", int, "report fetchFailures")),
            nodes=tuple(NodeReport.parse(_object(n, "report node")) for n in _field(data, "nodes", list, w)),
            stages=tuple(StageReport.parse(_object(s, "report stage")) for s in _field(data, "stages", list, w)),
            executors=tuple(ExecutorReport.parse(_object(e, "report executor"))
                            for e in _field(data, "executors", list, w)),
            events=tuple(_object(e, "report event") for e in _field(data, "events", list, w)),
            raw=data,
        )

    @classmethod
    def empty(cls, version: str = "") -> ShimReport:
        """A shim that has done nothing yet (test shims answer this)."""
        return cls(version, RetryPolicyReport("none", 0, False, None), 0, 0, (), (), (), ())

    def node(self, key: str) -> NodeReport | None:
        return next((n for n in self.nodes if n.key == key), None)


@dataclass(frozen=True)
class NodeTimeout:
    """A DECOMMISSIONING node's graceful-decommission timeout, read over the RM's client RPC: the
    configured total in seconds (not the time left), None when the RM sets none."""

    node_id: str
    host: str
    timeout_s: int | None

    @classmethod
    def parse_all(cls, text: str | Mapping[str, Any]) -> tuple[NodeTimeout, ...]:
        w = "decommissioning timeouts"
        nodes = _field(_object(text, w), "nodes", list, w)
        out = []
        for n in (_object(x, w) for x in nodes):
            timeout = _opt_int(n, "timeoutSeconds", w)
            # YARN treats a negative timeout as none: the node waits for its apps, however long.
            out.append(cls(str(_field(n, "nodeId", str, w)), str(_field(n, "host", str, w)),
                           None if timeout is None or timeout < 0 else timeout))
        return tuple(out)


class TimeoutSource(Protocol):
    """Where each DECOMMISSIONING node's timeout comes from: the shim, over the RM's client RPC. Blocks for
    the RPC; raises when the RM can't be asked."""

    def decommissioning_timeouts(self) -> tuple[NodeTimeout, ...]: ...


class ShimPort(Protocol):
    """What the controller needs from the JVM shim. ``hosts`` are node keys (host, or YARN's
    ``host:port``), ``executors`` executor IDs; each call acts on all of them at once."""

    def exclude(self, hosts: Sequence[str], executors: Sequence[str], timeout_s: float,
                reason: str) -> ActionResult: ...

    def unexclude(self, hosts: Sequence[str], executors: Sequence[str], reason: str) -> ActionResult: ...

    def decommissioned(self, hosts: Sequence[str], executors: Sequence[str], cleanup: bool,
                       reason: str) -> ActionResult: ...

    def set_exemption_enabled(self, enabled: bool) -> None: ...

    def report(self) -> ShimReport: ...

    def nodes_let_go(self) -> tuple[NodeLetGo, ...]:
        """Every node the shim found the app holding nothing on any more (cumulative, not drained)."""
        ...
