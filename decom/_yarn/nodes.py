"""YARN's node model: the node states, one NodeManager as the RM reports it (:class:`RMNode`), and
one node as decom acts on it (:class:`NodeStatus`). The one place node states are named."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .._units import json_int

__all__ = [
    "NEW", "RUNNING", "UNHEALTHY", "DECOMMISSIONING", "DECOMMISSIONED", "LOST", "REBOOTED", "SHUTDOWN",
    "NODE_STATES", "GONE_STATES", "DOOMED_STATES", "RMNode", "NodeStatus", "parse_node",
]

NEW: Final = "NEW"
RUNNING: Final = "RUNNING"
UNHEALTHY: Final = "UNHEALTHY"
DECOMMISSIONING: Final = "DECOMMISSIONING"
DECOMMISSIONED: Final = "DECOMMISSIONED"
LOST: Final = "LOST"
REBOOTED: Final = "REBOOTED"
SHUTDOWN: Final = "SHUTDOWN"
#: Every node state YARN 3.x knows (YARN's ``NodeState``). Others may come from newer RMs: they are kept
#: as they are.
NODE_STATES: Final = (NEW, RUNNING, UNHEALTHY, DECOMMISSIONING, DECOMMISSIONED, LOST, REBOOTED, SHUTDOWN)
#: States in which the node's containers and shuffle files are gone.
GONE_STATES: Final = frozenset({DECOMMISSIONED, LOST, SHUTDOWN})
#: States in which the node will go away: no new tasks there. The poller asks the RM for these.
DOOMED_STATES: Final = frozenset({DECOMMISSIONING}) | GONE_STATES


@dataclass(frozen=True)
class NodeStatus:
    """One node as decom acts on it: what the poller (or a caller, by hand) tells the controller."""

    #: How decom names the node to the shim: the host, or YARN's ``host:port`` node id when several
    #: NodeManagers share one host.
    target: str
    #: YARN's node state: RUNNING, DECOMMISSIONING, DECOMMISSIONED, LOST, SHUTDOWN, UNHEALTHY, ...
    state: str
    #: Epoch seconds by which YARN will force the node out, when the RM says so.
    deadline: float | None = None


@dataclass(frozen=True, slots=True)
class RMNode:
    """One NodeManager as the ResourceManager's ``/ws/v1/cluster/nodes`` reports it."""

    #: YARN's node id, ``host:port`` of the NodeManager.
    node_id: str
    #: ``nodeHostName``.
    host: str
    #: NEW, RUNNING, UNHEALTHY, DECOMMISSIONING, DECOMMISSIONED, LOST, REBOOTED, SHUTDOWN, or a
    #: state this version does not know (kept as sent).
    state: str
    rack: str = ""
    #: ``nodeHTTPAddress``; empty for inactive nodes.
    http_address: str = ""
    num_containers: int = 0
    #: ``lastHealthUpdate``: epoch milliseconds of the node's last health report (not its last
    #: state change: REST has no "time in state").
    last_health_update: int = 0
    #: Seconds left before YARN forces a DECOMMISSIONING node out, when the RM reports it
    #: (``decommissioningTimeout``; absent from stock Hadoop 3.x REST): else None.
    decommissioning_timeout: int | None = None
    used_memory_mb: int = 0
    avail_memory_mb: int = 0
    used_vcores: int = 0
    avail_vcores: int = 0
    health_report: str = ""
    version: str = ""


def _seconds(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    n = json_int(value, -1)
    return n if n >= 0 else None


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def parse_node(item: object) -> RMNode | None:
    if not isinstance(item, dict):
        return None
    node_id, state = item.get("id"), item.get("state")
    if not isinstance(node_id, str) or not node_id or not isinstance(state, str) or not state:
        return None
    host = _str(item.get("nodeHostName")) or node_id.rsplit(":", 1)[0]
    timeout = item.get("decommissioningTimeout")
    return RMNode(
        node_id=node_id,
        host=host,
        state=state,
        rack=_str(item.get("rack")),
        http_address=_str(item.get("nodeHTTPAddress")),
        num_containers=json_int(item.get("numContainers")),
        last_health_update=json_int(item.get("lastHealthUpdate")),
        decommissioning_timeout=_seconds(timeout),
        used_memory_mb=json_int(item.get("usedMemoryMB")),
        avail_memory_mb=json_int(item.get("availMemoryMB")),
        used_vcores=json_int(item.get("usedVirtualCores")),
        avail_vcores=json_int(item.get("availableVirtualCores")),
        health_report=_str(item.get("healthReport")),
        version=_str(item.get("version")),
    )
