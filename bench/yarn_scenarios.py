"""Scale-in scenarios on the real YARN lab (yarnlab): one Spark app per run, a scripted scale-in event,
and the figures from Spark's own records (status REST API in the driver) and the RM's node states.

Used by tests/yarn/test_scale_in_e2e.py, bench/yarn_bench.py and bench/yarn_demo.py.
"""

from __future__ import annotations

import heapq
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from yarnlab import YarnLab
from yarnlab.sparkapp import SparkApp, job_checksum

EXECUTORS = 4
#: The job every scenario runs (ShuffleJob in yarnlab.sparkapp).
JOB = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 48, "map_sleep": 0.5, "reduce_sleep": 2.0}
#: Spark's network and shuffle-retry settings shrunk, so that stock Spark's recovery fits in a test (the
#: tests' and the demo's BASE_CONF). The benchmark leaves them at Spark's defaults (SPARK_DEFAULTS_CONF).
FAST_TIMEOUTS = {
    "spark.network.timeout": "15s",
    "spark.executor.heartbeatInterval": "2s",
    "spark.network.timeoutInterval": "5s",
    "spark.shuffle.io.maxRetries": "1",
    "spark.shuffle.io.retryWait": "1s",
}
#: Spark's defaults but for the retry limit and dynamic allocation below; the same for every mode.
SPARK_DEFAULTS_CONF = {
    "spark.python.worker.reuse": "true",
    "spark.stage.maxConsecutiveAttempts": "2",
    # Dynamic allocation, as on EMR: an executor with nothing to run leaves after the idle timeout,
    # so a DECOMMISSIONING node whose executors get no new tasks can drain before YARN's timeout.
    "spark.dynamicAllocation.enabled": "true",
    "spark.dynamicAllocation.minExecutors": "0",
    "spark.dynamicAllocation.initialExecutors": str(EXECUTORS),
    "spark.dynamicAllocation.maxExecutors": str(EXECUTORS),
    "spark.dynamicAllocation.executorIdleTimeout": "20s",
    "spark.dynamicAllocation.schedulerBacklogTimeout": "1s",
}
BASE_CONF = {**FAST_TIMEOUTS, **SPARK_DEFAULTS_CONF}
ESS_OFF = {"spark.shuffle.service.enabled": "false", "spark.dynamicAllocation.shuffleTracking.enabled": "true"}
#: mode -> (decom on, Spark conf on top of BASE_CONF)
MODES: dict[str, tuple[bool, dict[str, str]]] = {
    "reference": (False, {}),
    "stock": (False, {}),
    "native": (False, {**ESS_OFF, "spark.decommission.enabled": "true",
                       "spark.storage.decommission.enabled": "true",
                       "spark.storage.decommission.shuffleBlocks.enabled": "true",
                       "spark.storage.decommission.rddBlocks.enabled": "true"}),
    "decom-ess-on": (True, {}),
    "decom-ess-off": (True, dict(ESS_OFF)),
    # decom with the shuffle service on, reporting to the lab's decom agent (started for the run).
    "decom-agent": (True, {}),
    # The same with the shuffle service off (bench/chaos.py's long mode).
    "decom-agent-ess-off": (True, dict(ESS_OFF)),
}
#: Modes whose app reports to the decom agent: the lab's agent runs during their runs, and only then.
AGENT_MODES = frozenset({"decom-agent", "decom-agent-ess-off"})


#: FetchFailed(BlockManagerId(<executor>, <host>, <port>, ...), shuffleId=...): the host fetched from
_FETCH_FAILED_HOST = re.compile(r"FetchFailed\(BlockManagerId\([^,]*, ([^,\s]+),")


@dataclass
class YarnOutcome:
    scenario: str
    mode: str
    correct: bool = False
    aborted: bool = False
    error: str = ""
    wall_s: float = 0.0
    stage_attempts: int = 0
    map_stage_attempts: int = 0
    result_stage_attempts: int = 0
    outputs_lost: int = 0
    map_tasks_recomputed: int = 0
    fetch_failed_tasks: int = 0
    #: hosts named by the FetchFailed tasks' block-manager ids (a "Missing an output location" names none)
    fetch_failed_hosts: list[str] = field(default_factory=list)
    drain_s: float | None = None
    victims: list[str] = field(default_factory=list)
    #: executors running on the victims when they were told to go (YARN's placement: a node can hold 2)
    executors_on_victims: int = 0
    #: tasks launched on a victim once decom had excluded it (or, without decom, once the RM said it was leaving)
    tasks_on_victims_after: int = 0
    #: tasks launched on a victim between decom seeing DECOMMISSIONING and its exclusion taking effect
    tasks_in_reaction_window: int = 0
    startup_s: float = 0.0
    checksum: int | None = None
    expected: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)
    #: the scale-in events as run: when the stage was reached and the nodes were told to go (s since job start)
    events: list[dict[str, Any]] = field(default_factory=list)
    job_end_t: float = 0.0
    decom: dict[str, Any] | None = None
    #: timed events only: the recommissions / link restores as run (s since job start)
    recoveries: list[dict[str, Any]] = field(default_factory=list)
    #: the YARN behaviour the run had: "apache" (Apache Hadoop 3.5) or "emr-drain-emulated" (opt-in)
    yarn: str = "apache"
    #: the workload: "synthetic" (ShuffleJob) or a real query ("tpch-q9", ...)
    workload: str = "synthetic"
    #: executors the app asked for (dynamic allocation's initial and maximum)
    executors: int = EXECUTORS
    #: "spark-defaults" (Spark's network timeouts and shuffle retries) or "fast" (FAST_TIMEOUTS)
    timeouts: str = "fast"
    #: the lab's NodeManager liveness expiry: how long a vanished node stays RUNNING in the RM
    nm_expiry_s: float = 0.0
    #: decom's report: map outputs moved off the victims (migrated) and those it found nowhere else (orphaned)
    outputs_migrated: int = 0
    outputs_orphaned: int = 0
    #: seconds from the graceful request to decom's "let go" of the victim (the last victim), None: never
    let_go_s: float | None = None
    #: successful task runs of a partition after its first (in the same stage attempt, a later one, or a later
    #: job's stage over the same RDDs), over the stages but the job's last: recomputed work
    tasks_recomputed: int = 0
    #: partitions computed more than twice: recomputed more than once
    partitions_recomputed_twice: int = 0
    #: graceful victims that were not recommissioned: seconds from the request to DECOMMISSIONED (None: not
    #: within the wait)
    drain_by_node: dict[str, float | None] = field(default_factory=dict)
    #: decom's count of map outputs it unregistered on the victims (lost: nowhere else to read them)
    outputs_unregistered: int = 0

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: A node state change the RM showed: at (time.time()), host, state and the state before (None: first seen).
NodeChange = TypedDict("NodeChange", {"at": float, "host": str, "state": str, "from": str | None})


class NodeWatch:
    """Samples the RM's node states (every 0.25 s) on a thread; keeps every change with its time."""

    def __init__(self, lab: YarnLab) -> None:
        self.lab = lab
        self.changes: list[NodeChange] = []
        self._last: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="node-watch")

    def __enter__(self) -> NodeWatch:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _sample(self) -> None:
        try:
            states = self.lab.node_states()
        except Exception:  # noqa: BLE001 - RM busy: next sample
            return
        now = time.time()
        for host, state in sorted(states.items()):
            if self._last.get(host) != state:
                self.changes.append({"at": now, "host": host, "state": state, "from": self._last.get(host)})
                self._last[host] = state

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample()

    def first(self, host: str, state: str, after: float = 0.0) -> float | None:
        return next((c["at"] for c in self.changes if c["host"] == host and c["state"] == state
                     and c["at"] >= after), None)

    def wait(self, host: str, states: set[str], after: float, timeout: float) -> float | None:
        """When `host` first reached one of `states` after `after`, waiting up to `timeout` s for it (looked up
        at least once, also with no time left)."""
        deadline = time.monotonic() + timeout
        while True:
            t = next((c["at"] for c in self.changes if c["host"] == host and c["state"] in states
                      and c["at"] >= after), None)
            if t is not None or time.monotonic() >= deadline:
                return t
            time.sleep(0.25)


def _partition(task: dict[str, Any]) -> int:
    """The task's partition. Records from before SparkProbe kept partitionId hold only the index, which is the
    partition in a stage's first attempt (a later attempt's indexes start at 0 again)."""
    return int(task.get("partition", task["index"]))


def holders(attempts: list[dict[str, Any]], map_stage: int) -> dict[str, list[int]]:
    """host -> map partitions whose current output (latest successful attempt) is there."""
    holder: dict[int, str] = {}
    for a in sorted((a for a in attempts if a["stage"] == map_stage), key=lambda a: a["attempt"]):
        for t in a["tasks"]:
            if t["status"] == "SUCCESS":
                holder[_partition(t)] = t["host"]
    out: dict[str, list[int]] = {}
    for idx, host in sorted(holder.items()):
        out.setdefault(host, []).append(idx)
    return out


def pick_victims(app: SparkApp, n: int, avoid: set[str]) -> tuple[list[str], int]:
    """n hosts running executors (most executors first), not the AM's and not already lost, and how
    many executors they run. Fast on purpose (one status call): the map outputs they held are counted
    from Spark's records afterwards."""
    per_host: dict[str, int] = {}
    for host in app.executor_ids().values():
        per_host[host] = per_host.get(host, 0) + 1
    victims = sorted((h for h in per_host if h not in avoid), key=lambda h: (-per_host[h], h))[:n]
    return victims, sum(per_host[h] for h in victims)


def reruns(attempts: list[dict[str, Any]]) -> tuple[int, int]:
    """Successful runs of a partition after its first, and partitions computed more than twice, over every
    stage but the last job's result stage. A lost output is re-run in a later attempt, in the same one while
    the stage still runs (Spark resubmits a lost executor's finished map tasks), or by a later job, whose map
    stage computes the same RDDs under a new stage id (a later attempt's task indexes start at 0 again)."""
    if not attempts:
        return 0, 0
    result_stage = max(a["stage"] for a in attempts)
    runs: dict[tuple[tuple[int, ...] | int, int], int] = {}
    for a in attempts:
        if a["stage"] != result_stage:
            what = tuple(a.get("rdds") or ()) or a["stage"]
            for t in a["tasks"]:
                if t["status"] == "SUCCESS":
                    k = (what, _partition(t))
                    runs[k] = runs.get(k, 0) + 1
    return sum(n - 1 for n in runs.values()), sum(1 for n in runs.values() if n > 2)


def outputs_at(attempts: list[dict[str, Any]], hosts: list[str], when: float) -> int:
    """Map outputs held on `hosts` at time `when`: the latest successful map task of each partition
    launched before then (the map stage is the job's first)."""
    if not attempts:
        return 0
    map_stage = min(a["stage"] for a in attempts)
    holder: dict[int, tuple[float, str]] = {}
    for a in attempts:
        if a["stage"] != map_stage:
            continue
        for t in a["tasks"]:
            launch = t["launch"] or 0.0
            part = _partition(t)
            if t["status"] == "SUCCESS" and launch < when and launch >= holder.get(part, (-1.0, ""))[0]:
                holder[part] = (launch, t["host"])
    return sum(1 for _, h in holder.values() if h in hosts)


@dataclass
class Event:
    """When (map/reduce stage, attempt, tasks done) and how (graceful with timeout, or vanish)."""

    stage: str = "reduce"
    attempt: int = 0
    min_done: int = 2
    nodes: int = 1
    #: graceful | vanish | timed only: nm-restart (the NodeManager process killed and started again `back_after`
    #: s later; its executors' processes live on, but with NM recovery off YARN counts their containers lost),
    #: rm-restart (the RM down `timeout` s, then restarted), rm-failover (an HA lab: to the other RM),
    #: agent-restart (the decom agent stopped, started `back_after` s later)
    how: str = "graceful"
    timeout: int = 120
    #: Timed instead: the event fires this many seconds after the job started (stage/attempt/min_done unused).
    at_s: float | None = None
    #: Timed events: recommission the nodes (graceful) or bring their link back (vanish) this many seconds later.
    back_after: float | None = None


SCENARIOS: dict[str, list[Event]] = {
    "no-loss": [],
    "mid-map": [Event(stage="map", min_done=2, timeout=120)],
    "mid-reduce": [Event(stage="reduce", min_done=2, timeout=120)],
    "mass": [Event(stage="reduce", min_done=2, nodes=2, timeout=120)],
    "repeated-loss": [Event(stage="reduce", attempt=0, min_done=1, timeout=5),
                      Event(stage="reduce", attempt=1, min_done=1, timeout=5)],
    "vanish": [Event(stage="reduce", min_done=2, how="vanish")],
    "spot": [Event(stage="reduce", min_done=2, timeout=15)],
}
SCENARIO_JOB = {"mid-map": {"map_sleep": 4.0}}


def run_scenario(lab: YarnLab, scenario: str, mode: str, log: Callable[[str], None] = lambda s: None,
                 job: dict[str, Any] | None = None, extra_conf: dict[str, str] | None = None,
                 events: list[Event] | None = None, wait_drain: bool = True, *,
                 base_conf: dict[str, str] | None = None, executors: int = EXECUTORS,
                 check_rows: Callable[[list[list[Any]]], str | None] | None = None, workload: str = "synthetic",
                 tail_s: float | None = None, drain_wait_s: float | None = None) -> YarnOutcome:
    """One Spark app on `lab`, one job, the scenario's scale-in events; figures from Spark and the RM.

    `events` replaces the scenario's (bench/chaos.py: timed events, Event.at_s, with recoveries);
    `job` may name a shape of yarnlab.sparkapp (join, agg, cached, or sql with `check_rows`, which returns
    what is wrong with the rows or None); wait_drain=False skips waiting for the victims to reach
    DECOMMISSIONED/LOST after the job. `base_conf` replaces BASE_CONF (the benchmark: SPARK_DEFAULTS_CONF);
    `executors` is dynamic allocation's initial and maximum count.

    Drain, with `tail_s` None: the victims are waited for while the app still runs (up to 150 s after the
    request). With `tail_s` (the benchmark): the app stays up `tail_s` after its job (less once every victim
    is DECOMMISSIONED), as an app that goes on with other work; then it stops, and the victims are waited
    for up to their YARN timeout (`drain_wait_s`, if given, caps that wait). On Apache Hadoop a node that ran
    the app's containers leaves only then, or once the decom agent releases it. Victims recommissioned or
    brought back (timed events) are not waited for."""
    use_decom, mode_conf = MODES[mode]
    spec = {**JOB, **SCENARIO_JOB.get(scenario, {}), **(job or {})}
    sql = spec.get("shape") == "sql"
    if sql and check_rows is None:
        raise ValueError("a sql job needs check_rows: its answer is checked by the caller")
    out = YarnOutcome(scenario, mode, expected=0 if sql else job_checksum(spec),
                      yarn="emr-drain-emulated" if lab.emulate_emr_drain else "apache", workload=workload,
                      executors=executors,
                      nm_expiry_s=lab.nm_expiry_ms / 1000)
    conf = {**(BASE_CONF if base_conf is None else base_conf), **mode_conf, **(extra_conf or {})}
    out.timeouts = "fast" if any(k in conf for k in FAST_TIMEOUTS) else "spark-defaults"
    if executors != EXECUTORS and conf.get("spark.dynamicAllocation.enabled") == "true":
        conf["spark.dynamicAllocation.initialExecutors"] = conf["spark.dynamicAllocation.maxExecutors"] = str(executors)
    if mode in AGENT_MODES:
        lab.start_agent()  # lab.spark_conf() then gives the app the agent's URL and secret
    events = (SCENARIOS[scenario] if events is None else events) if mode != "reference" else []
    timed = [ev for ev in events if ev.at_s is not None]
    if timed and len(timed) != len(events):
        raise ValueError("events are either all timed (at_s) or all stage-triggered")
    requested: dict[str, float] = {}
    vanished: list[str] = []
    # The watch outlives the app: on Apache Hadoop a node it ran on leaves only once the app has ended.
    with NodeWatch(lab) as watch:
        with SparkApp(lab, executors=executors, conf=conf, decom=use_decom, name=f"{scenario}-{mode}") as app:
            out.startup_s = app.startup_seconds
            am = app.am_host()
            log(f"[{mode}] app {app.app_id} up in {app.startup_seconds:.0f}s, AM on {am}")
            app.start_job(**spec)
            t_job = time.time()
            if timed:
                _run_timed(lab, app, timed, am, t_job, out, requested, vanished, lambda s: log(f"[{mode}] {s}"))
            for ev in events if not timed else []:
                sid = app.wait_stage(ev.stage, ev.attempt, ev.min_done, timeout=240)
                if sid is None:
                    log(f"[{mode}] job ended before {ev.stage} attempt {ev.attempt}")
                    break
                t_stage = time.time()
                victims, executors = pick_victims(app, ev.nodes, {am, *out.victims})
                log(f"[{mode}] victims {victims} ({executors} executors) picked in {time.time() - t_stage:.1f}s")
                out.victims += victims
                out.executors_on_victims += executors
                t = time.time()
                out.events.append({"stage": ev.stage, "attempt": ev.attempt, "stage_id": sid, "how": ev.how,
                                   "timeout": ev.timeout, "victims": victims, "at": t,
                                   "stage_reached_t": round(t_stage - t_job, 1), "told_t": round(t - t_job, 1)})
                if ev.how == "vanish":
                    for v in victims:
                        lab.vanish(v)
                        vanished.append(v)
                    log(f"[{mode}] t={t - t_job:.1f}s {ev.stage} attempt {ev.attempt} "
                        f"(reached t={t_stage - t_job:.1f}s): link down on {victims}")
                else:
                    lab.decommission(victims, timeout=ev.timeout)
                    log(f"[{mode}] t={t - t_job:.1f}s {ev.stage} attempt {ev.attempt} "
                        f"(reached t={t_stage - t_job:.1f}s): graceful decommission of {victims} "
                        f"(timeout {ev.timeout}s)")
                for v in victims:
                    requested[v] = t
            res = app.wait_job(timeout=900)
            out.wall_s = float(res.get("wall_s") or 0.0)
            out.checksum = res.get("checksum")
            out.aborted = bool(res.get("aborted"))
            out.error = str(res.get("error") or "")
            if sql:
                wrong = None if out.aborted else check_rows(res.get("rows") or []) if check_rows else "unchecked"
                out.correct = not out.aborted and wrong is None
                if wrong:
                    out.error = f"WRONG ANSWER: {wrong}"
            else:
                out.correct = out.checksum == out.expected
            out.job_end_t = round(float(res.get("ended") or time.time()) - t_job, 1)
            log(f"[{mode}] t={out.job_end_t}s job {'ABORTED' if out.aborted else 'done'} in {out.wall_s:.1f}s"
                + (f": {out.error[:160]}" if out.error else ""))
            # Brought back after its last event (a node can be hit again once it is back).
            back = {v for r in out.recoveries for v in r["victims"] if t_job + r["told_t"] >= requested[v] - 0.1}
            graceful = {v: t for v, t in requested.items() if v not in vanished and v not in back}
            if tail_s is None:
                # Drain: graceful request -> DECOMMISSIONED in the RM (while the app still runs).
                for v, t in graceful.items() if wait_drain else []:
                    done = watch.wait(v, {"DECOMMISSIONED"}, t, timeout=max(0.0, t + 150 - time.time()))
                    if done is not None:
                        out.drain_s = round(max(out.drain_s or 0.0, done - t), 1)
            elif wait_drain:
                until = time.time() + tail_s
                while time.time() < until and not all(watch.first(v, "DECOMMISSIONED", t) for v, t in graceful.items()):
                    time.sleep(0.25)
            for v in [v for v in vanished if v not in back] if wait_drain else []:
                watch.wait(v, {"LOST"}, requested[v],
                           timeout=max(0.0, requested[v] + out.nm_expiry_s + 30 - time.time()))
            rep = app.report() if use_decom else None
            attempts = res.get("attempts") or []
            if sql and not out.correct:
                log(f"[{mode}] {out.error[:300]}")
            if tail_s is not None:
                log(f"[{mode}] app stops {time.time() - float(res.get('ended') or time.time()):.1f}s after its job")
        if tail_s is not None and wait_drain:
            # The app has ended: YARN frees the nodes it held (CLEANUP_APP). Up to each one's YARN timeout.
            timeouts = {v: ev["timeout"] for ev in out.events for v in ev["victims"]}
            app_end = time.time()
            for v, t in graceful.items():
                left = t + timeouts.get(v, 120) + 30 - time.time()
                if drain_wait_s is not None:
                    left = min(left, app_end + drain_wait_s - time.time())
                done = watch.wait(v, {"DECOMMISSIONED"}, t, timeout=max(0.0, left))
                out.drain_by_node[v] = None if done is None else round(done - t, 1)
                if done is not None:
                    out.drain_s = round(max(out.drain_s or 0.0, done - t), 1)
    _figures(out, attempts, rep, watch, requested, t_job)
    return out


def _figures(out: YarnOutcome, attempts: list[dict[str, Any]], rep: dict[str, Any] | None, watch: NodeWatch,
             requested: dict[str, float], t_job: float) -> None:
    for ev in out.events:
        ev["outputs_there"] = outputs_at(attempts, ev["victims"], ev.pop("at"))
        out.outputs_lost += ev["outputs_there"]
    out.stage_attempts = len(attempts)
    out.fetch_failed_tasks = sum(a["fetch_failed"] for a in attempts)
    out.fetch_failed_hosts = sorted({m.group(1) for a in attempts for t in a["tasks"] if t["status"] == "FAILED"
                                     for m in [_FETCH_FAILED_HOST.match(t["error"])] if m})
    if attempts:
        result_stage = max(a["stage"] for a in attempts)
        map_stage = min(a["stage"] for a in attempts)
        out.map_stage_attempts = sum(1 for a in attempts if a["stage"] == map_stage != result_stage)
        # A later attempt of a stage re-runs only the partitions whose outputs are missing.
        out.map_tasks_recomputed = sum(1 for a in attempts if a["stage"] == map_stage != result_stage
                                       and a["attempt"] > 0 for t in a["tasks"] if t["status"] == "SUCCESS")
        out.tasks_recomputed, out.partitions_recomputed_twice = reruns(attempts)
        out.result_stage_attempts = sum(1 for a in attempts if a["stage"] == result_stage)
    # Tasks launched on a victim after it was known to be leaving. With decom: from the moment the
    # shim's exclusion took effect (its "excluded" event, in the driver's clock like Spark's launch
    # times); the tasks launched between decom seeing the change and that moment are the reaction
    # window, counted apart. Without decom: the RM's first DECOMMISSIONING/LOST we saw.
    shim_events = (rep.get("shim") or {}).get("events", []) if rep is not None else []
    for v, t in requested.items():
        since = seen = None
        if rep is not None and v in rep.get("nodes", {}):
            tr = rep["nodes"][v]["transitions"]
            seen = tr[0]["at"] if tr else None
            excluded = [e["time"] / 1000 for e in shim_events
                        if e.get("action") in ("excluded", "decommissioned") and e.get("target") == v]
            since = min(excluded) if excluded else seen
        if since is None:
            since = watch.first(v, "DECOMMISSIONING", t) or watch.first(v, "LOST", t) or t
        launches = [tk["launch"] or 0 for a in attempts for tk in a["tasks"] if tk["host"] == v]
        out.tasks_on_victims_after += sum(1 for x in launches if x >= since)
        if seen is not None:
            out.tasks_in_reaction_window += sum(1 for x in launches if seen <= x < since)
    out.timeline = [{**c, "t": round(c["at"] - t_job, 1)} for c in watch.changes if c["at"] >= t_job - 1
                    and c["from"] is not None]
    if rep is not None:
        nodes = rep.get("nodes", {})
        out.outputs_migrated = sum(int(nodes.get(v, {}).get("outputs_migrated") or 0) for v in requested)
        out.outputs_orphaned = sum(int(nodes.get(v, {}).get("outputs_orphaned") or 0) for v in requested)
        out.outputs_unregistered = sum(int(nodes.get(v, {}).get("outputs_unregistered") or 0) for v in requested)
        let_go = [nodes[v]["let_go_at"] - t for v, t in requested.items() if (nodes.get(v) or {}).get("let_go_at")]
        if let_go and len(let_go) == len([v for v in requested if v in nodes]):
            out.let_go_s = round(max(let_go), 1)
        out.decom = {
            "nodes": {h: {"transitions": [tr | {"t": round(tr["at"] - t_job, 1)} for tr in n["transitions"]],
                          "executors_excluded": n["executors_excluded"],
                          "executors_released": n["executors_released"],
                          "outputs_unregistered": n["outputs_unregistered"],
                          "exempted_stage_attempts": n["exempted_stage_attempts"]}
                      for h, n in rep.get("nodes", {}).items()},
            "events": [e | {"t": round(e["time"] / 1000 - t_job, 1)}
                       for e in (rep.get("shim") or {}).get("events", []) if e.get("action") != "shim-started"],
            "poller": rep.get("poller"),
        }


def _run_timed(lab: YarnLab, app: SparkApp, events: list[Event], am: str, t_job: float, out: YarnOutcome,
               requested: dict[str, float], vanished: list[str], log: Callable[[str], None]) -> None:
    """Timed events (Event.at_s) and their recoveries (Event.back_after), in time order, while the job runs.
    Victims: nodes running executors (else any node), never the AM's, never one already out, and at least
    one node besides the AM's stays in. Each event records the job's stages running when it fired."""
    queue: list[tuple[float, int, str, int, list[str]]] = [(float(ev.at_s or 0.0), i, "out", i, [])
                                                            for i, ev in enumerate(events)]
    heapq.heapify(queue)
    seq = len(queue)
    out_now: set[str] = set()
    while queue:
        due, _, action, i, victims = heapq.heappop(queue)
        ev = events[i]
        while True:
            prog = app.progress()
            left = t_job + due - time.time()
            if not prog["running"] or left <= 0:
                break
            time.sleep(min(1.0, left))
        if not prog["running"]:
            # The event's own end is still carried out for an agent or a NodeManager that was stopped: the
            # drain that follows is decom's with its agent, and a NodeManager restart is a restart.
            ends = [(d, a, k, vs) for d, _, a, k, vs in [(due, 0, action, i, victims), *queue]
                    if a == "back" and events[k].how in ("agent-restart", "nm-restart")]
            log(f"job ended before the {action} at t={due:.1f}s: {len(queue) + 1 - len(ends)} action(s) not run")
            for _due, _a, k, vs in sorted(ends):
                kind, what = _bring_back(lab, events[k].how, vs)
                out.recoveries.append({"how": kind, "victims": vs, "told_t": round(time.time() - t_job, 1),
                                       "stages": [], "after_job": True})
                log(f"t={time.time() - t_job:.1f}s (after the job) {what} {vs or ''}")
            return
        t = time.time()
        stages = [f"{s['id']}.{s['attempt']} {s['done']}/{s['total']}" for s in prog["stages"]]
        if action == "back":
            kind, what = _bring_back(lab, ev.how, victims)
            out_now.difference_update(victims)
            out.recoveries.append({"how": kind, "victims": victims, "told_t": round(t - t_job, 1), "stages": stages})
            log(f"t={t - t_job:.1f}s {what} {victims or ''} (stages {stages})")
            continue
        if ev.how in ("rm-failover", "agent-restart"):  # no victim
            if ev.how == "rm-failover":
                to = lab.failover(skip=out_now)
                what = f"ResourceManager failed over to {to}"
            elif not lab.agent_running:
                log(f"t={t - t_job:.1f}s no decom agent runs: agent-restart skipped")
                continue
            else:
                lab.stop_agent()
                what = "decom agent stopped"
            out.events.append({"stage": "timed", "attempt": 0, "stage_id": None, "how": ev.how, "timeout": ev.timeout,
                               "victims": [], "at": t, "stage_reached_t": round(due, 1), "told_t": round(t - t_job, 1),
                               "stages": stages})
            log(f"t={t - t_job:.1f}s {what} (stages {stages})")
            if ev.back_after is not None and ev.how == "agent-restart":
                seq += 1
                heapq.heappush(queue, (t - t_job + ev.back_after, seq, "back", i, []))
            continue
        if ev.how == "rm-restart":  # no victim: the active RM stops, stays down `timeout` s, starts again
            log(f"t={t - t_job:.1f}s ResourceManager stopped for {ev.timeout}s (stages {stages})")
            lab.restart_rm(down_seconds=ev.timeout, skip=out_now)  # a vanished node can't register again
            up = time.time()
            out.events.append({"stage": "timed", "attempt": 0, "stage_id": None, "how": ev.how, "timeout": ev.timeout,
                               "victims": [], "at": t, "stage_reached_t": round(due, 1), "told_t": round(t - t_job, 1),
                               "stages": stages, "rm_up_t": round(up - t_job, 1)})
            log(f"t={up - t_job:.1f}s ResourceManager up again, nodes RUNNING")
            continue
        # A node brought back may not be RUNNING in the RM yet (a link up after LOST: its NodeManager registers
        # again): it is not a victim until it is, or a decommission would hit a node YARN does not list.
        try:
            rm_states = lab.node_states()
        except Exception:  # noqa: BLE001 - the RM busy or down: the lab's own view
            rm_states = {}
        not_running = {n.host for n in lab.nodes if rm_states and rm_states.get(n.host) != "RUNNING"}
        room = len(lab.nodes) - 2 - len(out_now | not_running)  # the AM's node and one more stay in
        avoid = {am, *out_now, *not_running}
        victims, executors = pick_victims(app, min(ev.nodes, room), avoid) if room > 0 else ([], 0)
        out.executors_on_victims += executors
        if room > 0 and not victims:  # no executor left outside the AM's node: any node will do
            victims = sorted(n.host for n in lab.nodes if n.host not in avoid)[:min(ev.nodes, room)]
        if not victims:
            log(f"t={t - t_job:.1f}s no node may go now: event {i} skipped")
            continue
        if ev.how == "vanish":
            for v in victims:
                lab.vanish(v)
                vanished.append(v)
        elif ev.how == "nm-restart":
            for v in victims:
                lab.kill_nm(v, containers=False)
                vanished.append(v)  # not gracefully asked to go: no drain to wait for
        else:
            lab.decommission(victims, timeout=ev.timeout)
            vanished[:] = [v for v in vanished if v not in victims]  # hit before, gracefully now
        out_now.update(victims)
        out.victims += victims
        for v in victims:
            requested[v] = t
        out.events.append({"stage": "timed", "attempt": 0, "stage_id": None, "how": ev.how, "timeout": ev.timeout,
                           "victims": victims, "at": t, "stage_reached_t": round(due, 1),
                           "told_t": round(t - t_job, 1), "stages": stages})
        log(f"t={t - t_job:.1f}s {_OUT[ev.how]} {victims}"
            + (f" (timeout {ev.timeout}s)" if ev.how == "graceful" else "") + f" (stages {stages})")
        if ev.back_after is not None:
            seq += 1
            heapq.heappush(queue, (t - t_job + ev.back_after, seq, "back", i, victims))


_OUT = {"graceful": "graceful decommission of", "vanish": "link down on", "nm-restart": "NodeManager killed on"}
#: event -> its recovery (Event.back_after): the kind recorded, what the log says
_BACK = {"graceful": ("recommission", "recommission of"), "vanish": ("restore", "link up on"),
         "nm-restart": ("nm-start", "NodeManager started on"), "agent-restart": ("agent-start", "decom agent started")}


def _bring_back(lab: YarnLab, how: str, victims: list[str]) -> tuple[str, str]:
    """A timed event's recovery (Event.back_after); returns its kind and what the log says (_BACK)."""
    if how == "vanish":
        for v in victims:
            lab.restore(v)
    elif how == "nm-restart":
        for v in victims:
            lab.start_nm(v, wait=False)
    elif how == "agent-restart":
        lab.start_agent()
    else:
        lab.recommission(victims, wait=False)
    return _BACK[how]


def repair(lab: YarnLab, timeout: float = 240.0) -> None:
    """Every node RUNNING again: link up, out of the exclude file, NM restarted if it shut down. Every
    link is brought up, also of a node the RM still shows RUNNING (it vanished moments ago)."""
    states = lab.node_states()
    excluded = getattr(lab, "_excluded", {})
    bad = [n for n in lab.nodes if states.get(n.host) != "RUNNING" or n.host in excluded]
    for n in lab.nodes:
        lab.restore(n)
        lab.start_nm(n, wait=False)  # a NodeManager killed by a run that ended before its restart
    if bad:
        lab.recommission(bad, wait=False)
    lab.wait_for_nodes({n.host: "RUNNING" for n in lab.nodes}, timeout=timeout)
