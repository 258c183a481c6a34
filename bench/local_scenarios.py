"""Scale-in scenarios on local-cluster Spark (real executor JVMs on this host).

Each scenario runs a real shuffle job, makes executors vanish (SIGSTOP: no answer, connections stay
open), optionally tells decom, and returns what Spark itself recorded. Used by tests, demo and bench.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import add
from typing import TYPE_CHECKING, Any

from yarnlab.layout import QUICK_JVM_OPTIONS

from .spark_probe import (
    SparkProbe,
    StageAttempt,
    Vanisher,
    map_outputs_by_executor,
    summarize,
    wait_for_executors,
    wait_stage_attempt,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

WORKERS = 4
#: Timeouts short enough that stock Spark's recovery from a vanished executor fits in a test, and the
#: same for every mode so comparisons are fair.
BASE_CONF = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.port": "0",
    "spark.ui.showConsoleProgress": "false",
    "spark.network.timeout": "12s",
    "spark.executor.heartbeatInterval": "1s",
    "spark.network.timeoutInterval": "2s",
    "spark.shuffle.io.maxRetries": "1",
    "spark.shuffle.io.retryWait": "1s",
    "spark.python.worker.reuse": "true",
    "spark.shuffle.service.enabled": "false",
}
#: Short-lived JVMs (the tests): C1 only and the serial GC start faster on two cores; benchmarks leave
#: them off.
QUICK_JVM_CONF = {"spark.driver.extraJavaOptions": QUICK_JVM_OPTIONS,
                  "spark.executor.extraJavaOptions": QUICK_JVM_OPTIONS}
KEYS = 97
N = 40_000
_runs = itertools.count()


def _group(name: str) -> str:
    """A job group of its own per scenario run: sessions run several scenarios."""
    return f"{name}-{next(_runs)}"


def _error_text(e: BaseException) -> str:
    """The line that says why Spark failed the job (py4j puts it below its own first line)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if "maximum allowable number of times" in ln or "Job aborted" in ln or "cancelled" in ln:
            return ln[:400]
    return (lines[0] if lines else repr(e))[:400]


def expected_sums() -> list[tuple[int, int]]:
    """The right answer, computed without Spark."""
    sums: dict[int, int] = {}
    for x in range(N):
        sums[x % KEYS] = sums.get(x % KEYS, 0) + x
    return sorted(sums.items())


def loopback_only() -> None:
    """Keep every driver/worker/executor address on 127.0.0.1: local-cluster executors otherwise
    advertise the machine's own address. Inherited by the JVMs pyspark launches, so it must be set
    before the first session of the process."""
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"


@contextmanager
def session(mode: str, workers: int = WORKERS, conf: dict[str, str] | None = None,
            app: str = "decom-scenario", *, quick_jvms: bool = False) -> Iterator[tuple[SparkSession, Any]]:
    """A local-cluster session; mode "decom" adds the shim and enables the controller. quick_jvms: see
    QUICK_JVM_CONF (the driver's options count only if this process has no JVM yet)."""
    from pyspark.sql import SparkSession

    import decom

    loopback_only()
    builder = SparkSession.builder.master(f"local-cluster[{workers},1,1024]").appName(f"{app}-{mode}")
    for k, v in {**BASE_CONF, **(QUICK_JVM_CONF if quick_jvms else {}), **(conf or {})}.items():
        builder = builder.config(k, v)
    if mode == "decom":
        builder = decom.configure(builder)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    try:
        controller = decom.enable(spark) if mode == "decom" else None
        wait_for_executors(spark, workers)
        yield spark, controller
    finally:
        spark.stop()


@dataclass
class Outcome:
    mode: str
    scenario: str
    correct: bool = False
    aborted: bool = False
    error: str = ""
    wall_s: float = 0.0
    outputs_lost: int = 0
    map_tasks_recomputed: int = 0
    map_stage_attempts: int = 0
    result_stage_attempts: int = 0
    fetch_failed_tasks: int = 0
    victims: list[str] = field(default_factory=list)
    tasks_on_victims_after: int = 0
    decom_outputs_unregistered: int | None = None
    exempted_attempts: list[str] = field(default_factory=list)
    counted_attempts: int = 0

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _groups_attempts(probe: SparkProbe, group: str, before: set[tuple[int, int]]) -> list[StageAttempt]:
    return [a for a in probe.attempts(group) if (a.stage, a.attempt) not in before]


def lost_outputs(spark: SparkSession, controller: Any, mode: str, lose: int = 1,
                 tell: str = "before") -> Outcome:
    """Materialise a shuffle, lose `lose` executors holding its outputs (reported, then vanished),
    then run the reduce: decom recomputes exactly the lost outputs in one map attempt."""
    sc = spark.sparkContext
    probe = SparkProbe(spark)
    out = Outcome(mode, f"lost-outputs-{lose}")
    wait_for_executors(spark, WORKERS)
    agg = sc.parallelize(range(N), 8).map(lambda x: (x % KEYS, x)).reduceByKey(add, 8)
    materialise, reduce = _group("materialise"), _group("reduce")
    sc.setJobGroup(materialise, "materialise the shuffle")
    agg.count()
    first = probe.attempts(materialise)
    map_stage = min(a.stage for a in first)
    holders = map_outputs_by_executor(first, map_stage)
    victims = sorted(holders, key=lambda e: (-len(holders[e]), e))[:lose]
    out.victims = victims
    out.outputs_lost = sum(len(holders[v]) for v in victims)
    with Vanisher(sc.applicationId) as v:
        if controller is not None and tell == "before":
            controller.decommissioned(executors=victims)
        for e in victims:
            v.vanish(e)
        if controller is not None and tell == "after":
            time.sleep(2)
            controller.decommissioned(executors=victims)
        sc.setJobGroup(reduce, "reduce after the loss")
        t0 = time.monotonic()
        try:
            result = sorted(agg.collect())
            out.correct = result == expected_sums()
        except Exception as e:  # noqa: BLE001 - an abort is an outcome
            out.aborted = True
            out.error = _error_text(e)
        out.wall_s = round(time.monotonic() - t0, 2)
        seen = {(a.stage, a.attempt) for a in first}
        later = _groups_attempts(probe, reduce, seen)
    out.tasks_on_victims_after = sum(
        1 for a in later for t in a.tasks if t.executor in victims and t.status == "SUCCESS")
    _fill(out, later, controller)
    return out


def repeated_loss(spark: SparkSession, controller: Any, mode: str, losses: int = 2,
                  tell: str = "before") -> Outcome:
    """Lose an executor holding map outputs during each of `losses` consecutive attempts of the same
    reduce stage: with spark.stage.maxConsecutiveAttempts=losses stock Spark aborts."""
    sc = spark.sparkContext
    probe = SparkProbe(spark)
    out = Outcome(mode, f"repeated-loss-{losses}-tell-{tell}")
    wait_for_executors(spark, WORKERS)

    def slow(it: Any) -> Any:
        time.sleep(0.4)
        return it

    job = (sc.parallelize(range(N), 8).map(lambda x: (x % KEYS, x)).reduceByKey(add, 24)
           .mapPartitions(slow))
    box: dict[str, Any] = {}
    group = _group("repeated")

    def run() -> None:
        sc.setJobGroup(group, "reduce stage losing a node in each attempt")
        try:
            box["result"] = sorted(job.collect())
        except Exception as e:  # noqa: BLE001
            box["error"] = e

    t0 = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    with Vanisher(sc.applicationId) as v:
        gone: set[str] = set()
        for attempt in range(losses):
            sid = wait_stage_attempt(spark, group, attempt, min_done=1)
            if sid is None:
                break
            attempts = probe.attempts(group, settle=0.0)
            holders = map_outputs_by_executor(attempts, min(a.stage for a in attempts))
            live = {e: p for e, p in holders.items() if e not in gone}
            victim = sorted(live, key=lambda e: (-len(live[e]), e))[0]
            out.victims.append(victim)
            out.outputs_lost += len(live[victim])
            gone.add(victim)
            if controller is not None and tell == "before":
                controller.decommissioned(executors=[victim])
            v.vanish(victim)
            if controller is not None and tell == "after":
                time.sleep(2)
                controller.decommissioned(executors=[victim])
        worker.join(timeout=600)
        out.wall_s = round(time.monotonic() - t0, 2)
    if "error" in box:
        out.aborted = True
        out.error = _error_text(box["error"])
    else:
        out.correct = box.get("result") == expected_sums()
    attempts = probe.attempts(group)
    _fill(out, attempts, controller, skip_first_map=True)
    return out


def _fill(out: Outcome, attempts: list[StageAttempt], controller: Any, skip_first_map: bool = False) -> None:
    """Figures from Spark's records of the job(s) after the loss. Every stage but the result stage
    is map work: Spark may give recomputation of an existing shuffle a new stage id."""
    s = summarize(attempts)
    out.fetch_failed_tasks = s["fetch_failed_tasks"]
    result_stage = max(a.stage for a in attempts)
    maps = sorted((a for a in attempts if a.stage != result_stage), key=lambda a: (a.stage, a.attempt))
    if skip_first_map and maps:
        maps = maps[1:]  # the original computation, not a recomputation
    out.map_stage_attempts = len(maps)
    out.map_tasks_recomputed = sum(1 for a in maps for t in a.tasks if t.status == "SUCCESS")
    out.result_stage_attempts = sum(1 for a in attempts if a.stage == result_stage)
    if controller is not None:
        rep = controller.report()
        out.decom_outputs_unregistered = sum(
            n["outputs_unregistered"] for n in rep["nodes"].values())
        out.exempted_attempts = sorted({x for n in rep["nodes"].values()
                                        for x in n["exempted_stage_attempts"]})
        out.counted_attempts = sum(len(s["countedAttempts"]) for s in rep["stages"])
