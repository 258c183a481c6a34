"""Capacity math for a cluster shared by notebook users, one Livy session (Spark app) each.

Each session is one driver plus its executors, and on AWS Glue each of them takes one worker, so
``workers = users x (executors per user + 1)``: 3 x 5 -> 18, 10 x 5 -> 60, 50 x 5 -> 300. For your
own YARN nodes give the node size (``worker_memory_mb``/``worker_cores``) and the executor size:
a node then holds as many executor-sized containers as fit (Spark adds ``max(384 MB, 10%)`` of
memory overhead to each), and the driver is counted as one more such container.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._errors import ConfigError
from .._units import container_mb, format_mb, parse_memory_mb

__all__ = ["WorkerSpec", "CapacityPlan", "FitPlan", "WORKER_TYPES", "worker_spec", "plan_capacity",
           "users_that_fit", "max_executors_per_user"]


@dataclass(frozen=True)
class WorkerSpec:
    """One worker (Glue worker type, or one of your YARN nodes)."""

    name: str
    vcpus: int
    memory_mb: int
    #: Executor-sized containers one worker holds (1 on Glue: one executor or the driver).
    slots: int = 1
    #: Memory of one executor when known (Glue G.1X: 10 GB), for the executor-memory total.
    executor_memory_mb: int | None = None


# AWS Glue's general-purpose (G) and memory-optimised (R) worker types: vCPU and memory per worker
# (Glue "worker types" page). The 10 GB executor of G.1X is the figure the Glue guide uses
# ("10 G.1X workers -> 9 executors x 10 GB"); pass executor_memory for the others.
WORKER_TYPES: dict[str, WorkerSpec] = {w.name: w for w in (
    WorkerSpec("G.025X", 2, 4 * 1024),
    WorkerSpec("G.1X", 4, 16 * 1024, executor_memory_mb=10 * 1024),
    WorkerSpec("G.2X", 8, 32 * 1024),
    WorkerSpec("G.4X", 16, 64 * 1024),
    WorkerSpec("G.8X", 32, 128 * 1024),
    WorkerSpec("G.12X", 48, 192 * 1024),
    WorkerSpec("G.16X", 64, 256 * 1024),
    WorkerSpec("R.1X", 4, 32 * 1024),
    WorkerSpec("R.2X", 8, 64 * 1024),
    WorkerSpec("R.4X", 16, 128 * 1024),
    WorkerSpec("R.8X", 32, 256 * 1024),
)}

def worker_spec(worker_type: str | None = "G.1X", *, worker_memory: str | int | None = None,
                worker_cores: int | None = None, executor_memory: str | int | None = None,
                executor_cores: int = 1) -> WorkerSpec:
    """The worker to plan with: a Glue type by name (case-insensitive), or your own node size.

    With ``worker_memory`` and ``worker_cores`` (your YARN nodes) and an ``executor_memory``, a
    node holds ``min(memory // (executor + overhead), cores // executor_cores)`` containers;
    without an executor size, one each (the Glue rule).
    """
    if executor_cores < 1:
        raise ConfigError(f"executor cores={executor_cores} must be at least 1")
    executor_mb = parse_memory_mb(executor_memory, "executor memory") if executor_memory is not None \
        else None
    if worker_memory is not None or worker_cores is not None:
        if worker_memory is None or worker_cores is None:
            raise ConfigError("give both the worker memory and the worker cores of your nodes "
                              "(e.g. --worker-memory 64g --worker-cores 16), or a --worker-type")
        if worker_cores < 1:
            raise ConfigError(f"worker cores={worker_cores} must be at least 1")
        memory_mb = parse_memory_mb(worker_memory, "worker memory")
        slots = 1
        if executor_mb is not None:
            container = container_mb(executor_mb)
            slots = min(memory_mb // container, worker_cores // executor_cores)
            if slots < 1:
                raise ConfigError(
                    f"an executor of {format_mb(executor_mb)} + {format_mb(container - executor_mb)} "
                    f"overhead and {executor_cores} core(s) does not fit on a worker of "
                    f"{format_mb(memory_mb)} and {worker_cores} core(s): use smaller executors or "
                    "bigger workers")
        return WorkerSpec("your nodes", worker_cores, memory_mb,
                          slots=slots, executor_memory_mb=executor_mb)
    key = (worker_type or "G.1X").strip().upper()
    spec = WORKER_TYPES.get(key)
    if spec is None:
        raise ConfigError(f"unknown worker type {worker_type!r}: use one of {', '.join(WORKER_TYPES)}, "
                          "or give your own nodes' size with --worker-memory and --worker-cores")
    if executor_mb is not None:
        if executor_mb > spec.memory_mb:
            raise ConfigError(f"executor memory {format_mb(executor_mb)} is more than a {spec.name} "
                              f"worker has ({format_mb(spec.memory_mb)})")
        spec = WorkerSpec(spec.name, spec.vcpus, spec.memory_mb, spec.slots, executor_mb)
    return spec


def _count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be a whole number of at least {minimum}")
    return value


@dataclass(frozen=True)
class CapacityPlan:
    """What ``users`` sessions of ``executors_per_user`` executors need."""

    users: int
    executors_per_user: int
    worker: WorkerSpec
    #: Drivers plus executors: users x (executors per user + 1).
    containers: int
    workers: int
    vcpus: int
    memory_mb: int
    #: Total executor memory when the executor size is known, else None.
    executor_memory_mb: int | None

    @property
    def executors(self) -> int:
        return self.users * self.executors_per_user


def plan_capacity(users: int, executors_per_user: int, worker: WorkerSpec | str = "G.1X") -> CapacityPlan:
    """Workers needed for ``users`` concurrent sessions: ``users x (executors_per_user + 1)`` on Glue."""
    users = _count(users, "users", 1)
    executors_per_user = _count(executors_per_user, "executors per user", 0)
    spec = worker if isinstance(worker, WorkerSpec) else worker_spec(worker)
    containers = users * (executors_per_user + 1)
    workers = math.ceil(containers / spec.slots)
    executor_memory = users * executors_per_user * spec.executor_memory_mb \
        if spec.executor_memory_mb is not None else None
    return CapacityPlan(users, executors_per_user, spec, containers, workers, workers * spec.vcpus,
                        workers * spec.memory_mb, executor_memory)


@dataclass(frozen=True)
class FitPlan:
    """How many concurrent sessions of ``executors_per_user`` executors ``workers`` hold."""

    workers: int
    executors_per_user: int
    worker: WorkerSpec
    users: int
    #: Workers the ``users`` sessions take, and the ones left over (too few for one more session).
    workers_used: int
    workers_left: int


def users_that_fit(workers: int, executors_per_user: int, worker: WorkerSpec | str = "G.1X") -> FitPlan:
    """The inverse: ``workers // (executors_per_user + 1)`` sessions on Glue."""
    workers = _count(workers, "workers", 1)
    executors_per_user = _count(executors_per_user, "executors per user", 0)
    spec = worker if isinstance(worker, WorkerSpec) else worker_spec(worker)
    users = (workers * spec.slots) // (executors_per_user + 1)
    used = math.ceil(users * (executors_per_user + 1) / spec.slots)
    return FitPlan(workers, executors_per_user, spec, users, used, workers - used)


def max_executors_per_user(users: int, workers: int, worker: WorkerSpec | str = "G.1X") -> int:
    """The largest per-session executor cap that lets ``users`` sessions run at once on ``workers``
    (-1 when even drivers alone do not fit): the value for ``spark.dynamicAllocation.maxExecutors``."""
    users = _count(users, "users", 1)
    workers = _count(workers, "workers", 1)
    spec = worker if isinstance(worker, WorkerSpec) else worker_spec(worker)
    return (workers * spec.slots) // users - 1
