"""Admission guard: does one more session (its driver/AM plus E executors) fit on the cluster now?

Every container must fit on one node, so the check packs the session's containers (largest first) into
the free memory of the RUNNING nodes, as the ResourceManager reports it per node. Each container is
the Spark memory plus its overhead (``max(384 MB, 10%)``). Vcores count only with ``check_vcores``
(the CapacityScheduler's default DefaultResourceCalculator schedules by memory alone). Queue limits
(capacity, maximum-am-resource-percent) are not modelled: a session that fits the nodes can still
wait for its queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._errors import ConfigError
from .._units import container_mb
from .._yarn import ResourceManagerClient
from .._yarn.nodes import RUNNING
from .inventory import Session, SessionInventory

__all__ = ["AdmissionCheck", "check_admission"]


@dataclass(frozen=True)
class AdmissionCheck:
    fits: bool
    #: The session's containers: (MB, vcores), the driver/AM first.
    containers: list[tuple[int, int]]
    #: How many of them found room.
    placed: int
    #: Free MB per RUNNING node before the check.
    free_mb: dict[str, int]
    #: When it does not fit: idle sessions (most idle first) whose memory, ended, adds up to the
    #: session's total need (placement on nodes not guaranteed).
    reap_suggestions: list[Session] = field(default_factory=list)

    @property
    def needed_mb(self) -> int:
        return sum(c[0] for c in self.containers)


def check_admission(rm: ResourceManagerClient, *, executors: int, executor_memory_mb: int, executor_cores: int = 1,
                    driver_memory_mb: int = 512, driver_cores: int = 1, check_vcores: bool = False,
                    inventory: SessionInventory | None = None) -> AdmissionCheck:
    """Whether a session of ``executors`` executors fits the free room of the RUNNING nodes now.
    ``driver_memory_mb`` is the AM's (client mode: spark.yarn.am.memory) or driver's (cluster mode)."""
    if isinstance(executors, bool) or not isinstance(executors, int) or executors < 0:
        raise ConfigError(f"executors={executors!r} must be a whole number of at least 0")
    for name, value in (("executor memory", executor_memory_mb), ("driver memory", driver_memory_mb),
                        ("executor cores", executor_cores), ("driver cores", driver_cores)):
        if value < 1:
            raise ConfigError(f"{name}={value!r} must be at least 1")
    containers = [(container_mb(driver_memory_mb), driver_cores)] + \
        [(container_mb(executor_memory_mb), executor_cores)] * executors
    nodes = rm.nodes([RUNNING])
    free = {n.node_id: [n.avail_memory_mb, n.avail_vcores] for n in nodes}
    placed = 0
    for mb, cores in sorted(containers, reverse=True):
        # Best fit: the node with the least room that still takes it, to keep big holes for big asks.
        fitting = [k for k, (m, c) in free.items() if m >= mb and (not check_vcores or c >= cores)]
        if not fitting:
            break
        best = min(fitting, key=lambda k: free[k][0])
        free[best][0] -= mb
        free[best][1] -= cores
        placed += 1
    fits = placed == len(containers)
    suggestions: list[Session] = []
    if not fits and inventory is not None:
        idle = sorted((s for s in inventory.sessions if s.yarn_state == "RUNNING" and not s.busy
                       and s.idle_s is not None), key=lambda s: -(s.idle_s or 0.0))
        short = sum(c[0] for c in containers) - sum(max(0, n.avail_memory_mb) for n in nodes)
        freed = 0
        for s in idle:
            if freed >= max(short, 1):
                break
            suggestions.append(s)
            freed += s.memory_mb
    return AdmissionCheck(fits, containers, placed, {n.node_id: n.avail_memory_mb for n in nodes}, suggestions)
