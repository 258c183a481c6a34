"""Plain data shared by the poller and the controller."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NodeStatus", "GONE_STATES", "DOOMED_STATES"]

#: YARN node states in which the node's containers and shuffle files are gone.
GONE_STATES = frozenset({"DECOMMISSIONED", "LOST", "SHUTDOWN"})
#: States in which the node will go away: no new tasks there.
DOOMED_STATES = frozenset({"DECOMMISSIONING"}) | GONE_STATES


@dataclass(frozen=True)
class NodeStatus:
    """One node as the ResourceManager reports it."""

    #: How decom names the node to the shim: the host, or YARN's ``host:port`` node id when several
    #: NodeManagers share one host.
    target: str
    #: YARN's node state: RUNNING, DECOMMISSIONING, DECOMMISSIONED, LOST, SHUTDOWN, UNHEALTHY, ...
    state: str
    #: Epoch seconds by which YARN will force the node out, when the RM says so.
    deadline: float | None = None
