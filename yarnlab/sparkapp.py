"""A tiny Spark-on-YARN application for the lab, run in its own process.

    with SparkApp(lab, executors=2) as app:     # driver on the host (client mode), executors in nodes
        app.executor_hosts                       # e.g. ["198.18.0.11", "198.18.0.13"]
        app.run_job()                            # a small shuffle job; returns its result checksum
    # leaving the block stops the app (and kills the driver process if it does not stop)

The driver process is `python -m yarnlab.sparkapp --conf k=v ... --executors N [--decom]`; it prints
one JSON object per line ({"event": "ready", ...}) and obeys lines on stdin:

    job                      a small shuffle job, synchronously -> {"event": "job", "checksum": ...}
    executors                -> {"event": "executors", "executors": [hosts], "by_id": {id: host}}
    report                   -> {"event": "report", "report": decom's Controller.report() or null}
    start_job {json}         a shuffle job on a background thread (see ShuffleJob) -> "job_started";
                             "shape": shuffle (default) | join | agg | cached (see SHAPES), or
                             sql: "sql" run over Parquet "tables" {view: path}, its rows in "rows"
    progress                 -> "progress" {running, elapsed, stages: the job's active stage attempts}
    wait_stage {json}        until attempt k of the job's "map"/"reduce" stage runs with >= m tasks
                             done -> "stage_reached" {"stage_id": id or null if the job ended first}
    attempts                 Spark's own records of the job's stage attempts and tasks -> "attempts"
    wait_job {json}          until the job ends -> "job_done" {checksum | error, aborted, attempts}
    stop

With ``decom=True`` the driver calls ``decom.configure(builder)`` before ``getOrCreate()`` and
``decom.enable(spark, poll_interval=...)`` after it; decom finds the RM through HADOOP_CONF_DIR.
The Spark UI is on (bound to the driver address, port chosen by Spark) so the figures come from
Spark's own status REST API: stage attempts, task status, executor, host, launch time, errors.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LabError
from .spark_status import SparkProbe

if TYPE_CHECKING:
    from pyspark import SparkContext

    from .lab import YarnLab


def _emit(**kw: Any) -> None:
    print(json.dumps(kw, default=str), flush=True)


MOD = 1_000_000_007


def shuffle_checksum(n: int, keys: int) -> int:
    """The shuffle job's answer, computed without Spark: sum over keys of key * (sum of its values)."""
    sums: dict[int, int] = {}
    for x in range(n):
        sums[x % keys] = sums.get(x % keys, 0) + x
    return sum(k * v for k, v in sums.items()) % MOD


#: Job shapes ShuffleJob runs (spec "shape"); the answer of each is computed without Spark by job_checksum.
#:  shuffle  map -> reduceByKey -> result (2 stages)
#:  join     (x % keys, x) joined with a small (k, k*k+1) table, both sides shuffled (3 stages)
#:  agg      two chained aggregations: by key, then by key % 7 (3 stages)
#:  cached   an aggregation cached in the executors, then reused by 2 more jobs (count, re-aggregate, sum)
SHAPES = ("shuffle", "join", "agg", "cached", "session")
#: A real query instead (spec "shape": "sql"): spec "sql" over the Parquet files spec "tables" ({view: path}),
#: its answer the result rows (``encode_cell``), checked by the caller (bench/tpch.py against DuckDB's).
SQL = "sql"


def encode_cell(v: Any) -> Any:
    """A result cell as JSON keeps it: decimals and dates tagged, so the caller compares them exactly."""
    import datetime
    import decimal

    if isinstance(v, decimal.Decimal):
        return {"decimal": str(v)}
    if isinstance(v, datetime.datetime):
        return {"timestamp": v.isoformat()}
    if isinstance(v, datetime.date):
        return {"date": v.isoformat()}
    return v


def decode_cell(v: Any) -> Any:
    """encode_cell's inverse."""
    import datetime
    import decimal

    if isinstance(v, dict) and len(v) == 1:
        (tag, text), = v.items()
        if tag == "decimal":
            return decimal.Decimal(text)
        if tag == "timestamp":
            return datetime.datetime.fromisoformat(text)
        if tag == "date":
            return datetime.date.fromisoformat(text)
    return v
_RIGHT = 7  # the second aggregation of agg/cached groups keys by key % _RIGHT


def _key_sums(n: int, keys: int) -> dict[int, int]:
    sums: dict[int, int] = {}
    for x in range(n):
        sums[x % keys] = sums.get(x % keys, 0) + x
    return sums


def _regroup(sums: dict[int, int]) -> int:
    """agg/cached's second aggregation: sum over g = key % 7 of (g + 1) * (sum of key * value % MOD)."""
    groups: dict[int, int] = {}
    for k, v in sums.items():
        groups[k % _RIGHT] = (groups.get(k % _RIGHT, 0) + k * v % MOD) % MOD
    return sum((g + 1) * v for g, v in groups.items()) % MOD


def job_checksum(spec: Mapping[str, Any]) -> int:
    """The answer ShuffleJob gives for `spec` when nothing is lost, computed without Spark."""
    shape = str(spec.get("shape", "shuffle"))
    n, keys = int(spec.get("n", 40_000)), int(spec.get("keys", 97))
    if shape == "shuffle":
        return shuffle_checksum(n, keys)
    if shape == "session":
        return sum(job_checksum(q) for q in spec.get("queries") or []) % MOD
    if shape == "join":
        return sum(x * ((x % keys) ** 2 + 1) for x in range(n)) % MOD
    sums = _key_sums(n, keys)
    if shape == "agg":
        return _regroup(sums)
    if shape == "cached":
        return (len(sums) * 1_000_003 + _regroup(sums) + sum(sums.values())) % MOD
    raise ValueError(f"unknown job shape {shape!r}: one of {', '.join(SHAPES)}")


class ShuffleJob:
    """parallelize(range(n), maps) -> (x % keys, x) with a per-map-task sleep -> reduceByKey(reduces)
    with a per-reduce-task sleep -> collect, in job group `group`, on a background thread.

    Other shapes (spec "shape", see SHAPES): join, agg and cached add a middle stage of `mids` tasks
    sleeping `mid_sleep` s each (join: the small table's side, 2 tasks); their answers: job_checksum.
    session: a notebook-like user, the jobs of spec "queries" (specs of the other shapes) one after the
    other, idle `gap_s` seconds between them (dynamic allocation lets idle executors go meanwhile)."""

    def __init__(self, sc: SparkContext, spec: Mapping[str, Any]) -> None:
        self.sc = sc
        self.n = int(spec.get("n", 40_000))
        self.keys = int(spec.get("keys", 97))
        self.maps = int(spec.get("maps", 8))
        self.reduces = int(spec.get("reduces", 16))
        self.map_sleep = float(spec.get("map_sleep", 0.5))
        self.reduce_sleep = float(spec.get("reduce_sleep", 1.0))
        self.shape = str(spec.get("shape", "shuffle"))
        self.sql = str(spec.get("sql", ""))
        self.tables = {str(k): str(v) for k, v in dict(spec.get("tables") or {}).items()}
        if self.shape == SQL and not self.sql:
            raise ValueError("a sql job needs its query in spec 'sql'")
        if self.shape not in SHAPES and self.shape != SQL:
            raise ValueError(f"unknown job shape {self.shape!r}: one of {', '.join(SHAPES)}")
        self.queries = [dict(q) for q in spec.get("queries") or []]
        self.gap_s = float(spec.get("gap_s", 0.0))
        if self.shape == "session" and not all(q.get("shape", "shuffle") in SHAPES and q.get("shape") != "session"
                                               for q in self.queries):
            raise ValueError("a session's queries are shuffle, join, agg or cached jobs")
        self.mids = int(spec.get("mids", 8))
        self.mid_sleep = float(spec.get("mid_sleep", self.reduce_sleep / 2))
        self.group = str(spec.get("group", f"job-{int(time.time() * 1000)}"))
        self.result: dict[str, Any] = {}
        self.started = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"job-{self.group}")

    def start(self) -> ShuffleJob:
        self.started = time.time()
        self.thread.start()
        return self

    def _run(self) -> None:
        from operator import add

        map_sleep, reduce_sleep, keys = self.map_sleep, self.reduce_sleep, self.keys

        def slow_map(it: Any) -> Any:
            time.sleep(map_sleep)
            return ((x % keys, x) for x in it)

        def slow_reduce(it: Any) -> Any:
            time.sleep(reduce_sleep)
            return it

        self.sc.setJobGroup(self.group, f"yarnlab {self.shape} job", interruptOnCancel=False)
        t0 = time.monotonic()
        try:
            if self.shape == SQL:
                self.result = {"checksum": None, "aborted": False, "error": "", "rows": self._run_sql()}
            else:
                if self.shape == "session":
                    checksum = self._run_session()
                elif self.shape == "shuffle":
                    rdd = (self.sc.parallelize(range(self.n), self.maps).mapPartitions(slow_map)
                           .reduceByKey(add, self.reduces).mapPartitions(slow_reduce))
                    checksum = sum(k * v for k, v in rdd.collect()) % MOD
                else:
                    checksum = self._run_shape(slow_map, slow_reduce)
                self.result = {"checksum": checksum, "aborted": False, "error": ""}
        except Exception as e:  # noqa: BLE001 - an abort is an outcome
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            why = next((ln for ln in lines if "maximum allowable number of times" in ln or "aborted" in ln
                        or "cancelled" in ln), lines[0] if lines else repr(e))
            why = why.lstrip(": ").removeprefix("org.apache.spark.SparkException: ")
            self.result = {"checksum": None, "aborted": True, "error": why[:600]}
        self.result["wall_s"] = round(time.monotonic() - t0, 2)
        self.result["started"] = self.started
        self.result["ended"] = time.time()

    def _run_session(self) -> int:
        total = 0
        for i, q in enumerate(self.queries):
            if i:
                time.sleep(self.gap_s)
            query = ShuffleJob(self.sc, {**q, "group": self.group})
            query._run()
            if query.result.get("aborted"):
                raise RuntimeError(f"query {i + 1} of {len(self.queries)} aborted: {query.result['error']}")
            total += int(query.result["checksum"])
        return total % MOD

    def _run_sql(self) -> list[list[Any]]:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()
        for view, path in self.tables.items():
            spark.read.parquet(path).createOrReplaceTempView(view)
        return [[encode_cell(v) for v in row] for row in spark.sql(self.sql).collect()]

    def _run_shape(self, slow_map: Any, slow_reduce: Any) -> int:
        """join, agg or cached (see SHAPES); the same answer as job_checksum when nothing is lost."""
        from operator import add

        mid_sleep, right, mod = self.mid_sleep, _RIGHT, MOD

        def slow_mid(it: Any) -> Any:
            time.sleep(mid_sleep)
            return it

        pairs = self.sc.parallelize(range(self.n), self.maps).mapPartitions(slow_map)
        if self.shape == "join":
            table = self.sc.parallelize(range(self.keys), 2).map(lambda k: (k, k * k + 1))
            joined = pairs.join(table, self.reduces).mapPartitions(slow_reduce)
            parts = joined.map(lambda kv: kv[1][0] * kv[1][1] % mod).mapPartitions(lambda it: [sum(it) % mod])
            return int(sum(parts.collect())) % MOD
        sums = pairs.reduceByKey(add, self.mids).mapPartitions(slow_mid)

        def regroup(rdd: Any) -> int:
            groups = (rdd.map(lambda kv: (kv[0] % right, kv[0] * kv[1] % mod))
                      .reduceByKey(lambda a, b: (a + b) % mod, self.reduces).mapPartitions(slow_reduce))
            return int(sum((g + 1) * v for g, v in groups.collect())) % MOD

        if self.shape == "agg":
            return regroup(sums)
        sums = sums.cache()  # cached: three more jobs reuse the cached blocks
        count = sums.count()
        regrouped = regroup(sums)
        total = sums.values().sum()
        sums.unpersist(blocking=False)
        return (count * 1_000_003 + regrouped + int(total)) % MOD

    def progress(self) -> dict[str, Any]:
        """Whether the job runs, for how long, and its active stage attempts (tasks done/active/total)."""
        st = self.sc.statusTracker()
        ids: set[int] = set()
        for j in st.getJobIdsForGroup(self.group):
            info = st.getJobInfo(j)
            if info is not None:
                ids.update(info.stageIds)
        stages = []
        for sid in sorted(ids & set(st.getActiveStageIds())):
            s = st.getStageInfo(sid)
            if s is not None:
                stages.append({"id": sid, "attempt": s.currentAttemptId, "name": s.name, "done": s.numCompletedTasks,
                               "active": s.numActiveTasks, "failed": s.numFailedTasks, "total": s.numTasks})
        return {"running": self.thread.is_alive(), "elapsed": round(time.time() - self.started, 1),
                "stages": stages}

    def wait_stage(self, which: str, attempt: int, min_done: int, timeout: float) -> int | None:
        """Stage id once attempt `attempt` of the job's map ("map") or result ("reduce") stage runs
        with >= min_done tasks done; None if the job ended first."""
        st = self.sc.statusTracker()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                return None
            for j in st.getJobIdsForGroup(self.group):
                info = st.getJobInfo(j)
                if info is None or not info.stageIds:
                    continue
                sid = max(info.stageIds) if which == "reduce" else min(info.stageIds)
                s = st.getStageInfo(sid)
                if (s is not None and s.currentAttemptId == attempt and s.numCompletedTasks >= min_done
                        and s.numActiveTasks > 0):
                    return int(sid)
            time.sleep(0.05)
        raise TimeoutError(f"{which} stage attempt {attempt} with {min_done} tasks done: not in {timeout}s")


class KeptData:
    """A shuffle and a cached RDD the driver keeps, so later jobs read them again: the shuffle's map
    outputs (its map stage is skipped while they are all registered) and the cached partitions. Counts
    the partitions computed of each (accumulators), so a recompute shows. Answers: shuffle_checksum
    (n, keys) and sum(range(n))."""

    def __init__(self, sc: SparkContext, spec: Mapping[str, Any]) -> None:
        from operator import add

        from pyspark import StorageLevel

        self.sc = sc
        n, keys = int(spec.get("n", 40_000)), int(spec.get("keys", 97))
        self.maps_computed = sc.accumulator(0)
        self.cached_computed = sc.accumulator(0)
        maps_acc, cached_acc = self.maps_computed, self.cached_computed

        def counted_map(it: Any) -> Any:
            maps_acc.add(1)
            return ((x % keys, x) for x in it)

        def counted_cache(it: Any) -> Any:
            cached_acc.add(1)
            return it

        self.shuffled = (sc.parallelize(range(n), int(spec.get("maps", 8))).mapPartitions(counted_map)
                         .reduceByKey(add, int(spec.get("reduces", 8))))
        self.cached = (sc.parallelize(range(n), int(spec.get("parts", 8))).mapPartitions(counted_cache)
                       .persist(StorageLevel.MEMORY_AND_DISK))

    def read(self, group: str) -> dict[str, Any]:
        """One job reading the shuffle, one reading the cached RDD; what they computed to answer."""
        maps0, cached0 = self.maps_computed.value, self.cached_computed.value
        self.sc.setJobGroup(group, "yarnlab kept data", interruptOnCancel=False)
        t0 = time.monotonic()
        try:
            checksum = sum(k * v for k, v in self.shuffled.collect()) % MOD
            cached_sum = int(self.cached.sum())
            out: dict[str, Any] = {"checksum": checksum, "cached_sum": cached_sum, "aborted": False, "error": ""}
        except Exception as e:  # noqa: BLE001 - an abort is an outcome
            out = {"checksum": None, "cached_sum": None, "aborted": True, "error": str(e)[:600]}
        out.update(wall_s=round(time.monotonic() - t0, 2), maps_computed=self.maps_computed.value - maps0,
                   cached_computed=self.cached_computed.value - cached0)
        return out


def _driver_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m yarnlab.sparkapp")
    ap.add_argument("--conf", action="append", default=[], help="k=v Spark setting (repeatable)")
    ap.add_argument("--executors", type=int, default=2)
    ap.add_argument("--name", default="yarnlab-sparkapp")
    ap.add_argument("--register-timeout", type=float, default=300.0)
    ap.add_argument("--decom", action="store_true", help="decom.configure + decom.enable")
    ap.add_argument("--poll-interval", default="0.5s")
    args = ap.parse_args(argv)

    from pyspark.sql import SparkSession

    b = SparkSession.builder.appName(args.name)
    for kv in args.conf:
        k, _, v = kv.partition("=")
        b = b.config(k, v)
    b = b.config("spark.executor.instances", str(args.executors))
    controller = None
    if args.decom:
        import decom

        b = decom.configure(b)
    t0 = time.monotonic()
    spark = b.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("WARN")
    if args.decom:
        import logging

        import decom

        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        controller = decom.enable(spark, poll_interval=args.poll_interval)
    driver_host = sc.getConf().get("spark.driver.host", "")
    probe = SparkProbe(sc)

    def records(group: str) -> list[dict[str, Any]]:
        return [a.to_json() for a in probe.attempts(group, settle=0)]

    def executor_hosts() -> list[str]:
        status = sc._jsc.sc().getExecutorMemoryStatus()
        keys = status.keySet().iterator()
        hosts = []
        while keys.hasNext():
            hostport = str(keys.next())
            hosts.append(hostport.rsplit(":", 1)[0])
        hosts.remove(driver_host) if driver_host in hosts else None
        return sorted(hosts)

    deadline = time.monotonic() + args.register_timeout
    while len(executor_hosts()) < args.executors and time.monotonic() < deadline:
        time.sleep(0.5)
    try:  # the status REST API initialises on its first request (several seconds on a busy box)
        probe.executors()
    except Exception:  # noqa: BLE001 - no UI: the task records are unavailable, the rest works
        pass
    _emit(event="ready", app_id=sc.applicationId, executors=executor_hosts(),
          seconds=round(time.monotonic() - t0, 1), ui=sc.uiWebUrl, decom=controller is not None)

    def job() -> int:
        rdd = sc.parallelize(range(20000), 8).map(lambda x: (x % 97, x)).reduceByKey(lambda a, b: a + b)
        return int(sum(k * v for k, v in rdd.collect()) % MOD)

    current: ShuffleJob | None = None
    kept: dict[str, KeptData] = {}
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        spec: dict[str, Any] = json.loads(arg) if arg.strip() else {}
        try:
            if cmd == "job":
                t1 = time.monotonic()
                try:
                    _emit(event="job", checksum=job(), seconds=round(time.monotonic() - t1, 1))
                except Exception as e:  # noqa: BLE001
                    _emit(event="job_failed", error=str(e)[:2000])
            elif cmd == "executors":
                try:
                    records_ = probe.executors()
                except Exception:  # noqa: BLE001
                    records_ = []
                ever = {e["id"]: e["hostPort"].rsplit(":", 1)[0] for e in records_}
                by_id = {e["id"]: ever[e["id"]] for e in records_ if e.get("isActive")}
                _emit(event="executors", executors=executor_hosts(), by_id=by_id, ever=ever)
            elif cmd == "report":
                _emit(event="report", report=controller.report() if controller is not None else None,
                      time=time.time())
            elif cmd == "start_job":
                current = ShuffleJob(sc, spec).start()
                _emit(event="job_started", group=current.group, started=current.started)
            elif cmd == "wait_stage":
                assert current is not None, "no job started"
                sid = current.wait_stage(spec.get("stage", "reduce"), int(spec.get("attempt", 0)),
                                         int(spec.get("min_done", 1)), float(spec.get("timeout", 300)))
                _emit(event="stage_reached", stage_id=sid, time=time.time())
            elif cmd == "progress":
                assert current is not None, "no job started"
                _emit(event="progress", **current.progress(), time=time.time())
            elif cmd == "attempts":
                assert current is not None, "no job started"
                _emit(event="attempts", attempts=records(current.group))
            elif cmd == "wait_job":
                assert current is not None, "no job started"
                current.thread.join(float(spec.get("timeout", 600)))
                if current.thread.is_alive():
                    _emit(event="job_done", checksum=None, aborted=False, error="timeout", running=True,
                          attempts=[])
                else:
                    time.sleep(1.0)  # the status store is fed asynchronously by the listener bus
                    _emit(event="job_done", **current.result, attempts=records(current.group),
                          group=current.group)
            elif cmd == "keep":
                name = str(spec.get("name", "kept"))
                kept[name] = KeptData(sc, spec)
                group = f"{name}-{int(time.time() * 1000)}"
                _emit(event="kept", group=group, **kept[name].read(group), attempts=records(group))
            elif cmd == "reread":
                group = f"{spec.get('name', 'kept')}-{int(time.time() * 1000)}"
                result = kept[str(spec.get("name", "kept"))].read(group)
                time.sleep(1.0)  # the status store is fed asynchronously by the listener bus
                _emit(event="reread", group=group, **result, attempts=records(group))
            elif cmd == "kill_executor":  # as an operator or dynamic allocation would; no replacement asked
                _emit(event="killed", executor=spec["id"], ok=bool(sc._jsc.sc().killExecutor(str(spec["id"]))))
            elif cmd == "stop":
                break
            else:
                _emit(event="error", error=f"unknown command {cmd!r}")
        except Exception as e:  # noqa: BLE001 - report, keep serving
            _emit(event="error", command=cmd, error=f"{type(e).__name__}: {e}"[:2000])
    if controller is not None:
        controller.stop()
    spark.stop()
    _emit(event="stopped")
    return 0


class SparkApp:
    """Runs the driver above in a subprocess against `lab` (see the module docstring)."""

    def __init__(self, lab: YarnLab, executors: int = 2, conf: Mapping[str, str] | None = None,
                 name: str = "yarnlab-sparkapp", ready_timeout: float = 420.0, *, decom: bool = False,
                 poll_interval: str = "0.5s", ui: bool = True) -> None:
        self.lab = lab
        self.executors = executors
        self.decom = decom
        self.poll_interval = poll_interval
        self.conf = dict(lab.spark_conf())
        if ui:  # Spark's status REST API, bound to the driver address (spark.driver.bindAddress)
            self.conf.update({"spark.ui.enabled": "true", "spark.ui.port": "0",
                              "spark.ui.showConsoleProgress": "false"})
        self.conf.update(conf or {})
        self.name = name
        self.ready_timeout = ready_timeout
        self.app_id = ""
        self.executor_hosts: list[str] = []
        self.startup_seconds = 0.0
        self.log_path = lab.log_dir / f"sparkapp-{int(time.time())}.log"
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def __enter__(self) -> SparkApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> SparkApp:
        """Start the driver and wait for its executors. Spark 4.3's UI can fail to start on YARN with a
        ConcurrentModificationException (the AM's IP filter is added while jetty initialises its
        handlers): that start is retried, up to `attempts` in all. An app already running is left as it is
        (so `with app:` after start() does not start a second driver)."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        for i in range(attempts):
            try:
                return self._start_once()
            except LabError:
                # Look in the whole driver log: the exception is often more than the error's log tail
                # away from the end (Python traceback, then Spark's shutdown lines).
                if i + 1 >= attempts or not self._ui_start_race():
                    raise
                self.stop(timeout=30)
                self.log_path = self.lab.log_dir / f"sparkapp-{int(time.time())}-retry{i + 1}.log"
        raise AssertionError("unreachable")

    def _start_once(self) -> SparkApp:
        self._lines = queue.Queue()
        argv = [sys.executable, "-m", "yarnlab.sparkapp", "--executors", str(self.executors), "--name", self.name]
        if self.decom:
            argv += ["--decom", "--poll-interval", self.poll_interval]
        for k, v in self.conf.items():
            argv += ["--conf", f"{k}={v}"]
        env = dict(os.environ)
        env.update(self.lab.spark_env())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                          env.get("PYTHONPATH")]))
        self._log = open(self.log_path, "w")
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      text=True, env=env, cwd=str(self.lab.workdir), start_new_session=True)
        threading.Thread(target=self._reader, daemon=True).start()
        ev = self._wait_event("ready", self.ready_timeout)
        self.app_id = ev["app_id"]
        self.executor_hosts = list(ev["executors"])
        self.startup_seconds = float(ev["seconds"])
        return self

    def _ui_start_race(self) -> bool:
        try:
            log = self.log_path.read_text(errors="replace")
        except OSError:
            return False
        return "ConcurrentModificationException" in log

    def _reader(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self._lines.put(json.loads(line))
                except ValueError:
                    pass
        self._lines.put(None)

    def _wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                ev = {}
            if ev is None:
                raise LabError(f"Spark driver exited before '{name}'; {self.log_path}:\n{self.log_tail()}")
            if ev.get("event") == "error":
                raise LabError(f"Spark driver: {ev.get('error')}")
            if ev.get("event") in (name, "job_failed"):
                if ev["event"] == "job_failed" and name != "job_failed":
                    raise LabError(f"Spark job failed: {ev.get('error')}")
                return ev
            if time.monotonic() > deadline:
                raise LabError(f"no '{name}' from the Spark driver in {timeout:.0f}s; {self.log_path}:\n"
                               f"{self.log_tail()}")

    def _send(self, cmd: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(cmd + "\n")
        self._proc.stdin.flush()

    def run_job(self, timeout: float = 300.0) -> int:
        self._send("job")
        return int(self._wait_event("job", timeout)["checksum"])

    def request(self, cmd: str, reply: str, wait: float = 120.0, **spec: Any) -> dict[str, Any]:
        """Send `cmd {json spec}` to the driver and return its `reply` event (within `wait` s)."""
        self._send(f"{cmd} {json.dumps(spec)}" if spec else cmd)
        return self._wait_event(reply, wait)

    def start_job(self, **spec: Any) -> str:
        """Start the shuffle job (ShuffleJob: n, keys, maps, reduces, map_sleep, reduce_sleep, group; shape,
        mids, mid_sleep) in the background; returns its job group."""
        return str(self.request("start_job", "job_started", **spec)["group"])

    def wait_stage(self, stage: str = "reduce", attempt: int = 0, min_done: int = 1,
                   timeout: float = 300.0) -> int | None:
        """Block until attempt `attempt` of the job's map/reduce stage runs with >= min_done tasks done.
        Returns the stage id, or None when the job ended first."""
        ev = self.request("wait_stage", "stage_reached", timeout + 30, stage=stage, attempt=attempt,
                          min_done=min_done, timeout=timeout)
        return None if ev["stage_id"] is None else int(ev["stage_id"])

    def progress(self, timeout: float = 60.0) -> dict[str, Any]:
        """The running job: {"running": bool, "elapsed": s, "stages": [{id, attempt, name, done, active,
        failed, total}]} (its active stage attempts, from Spark's status tracker)."""
        return self.request("progress", "progress", timeout)

    def attempts(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Spark's own records of the running job's stage attempts and tasks."""
        return list(self.request("attempts", "attempts", timeout)["attempts"])

    def wait_job(self, timeout: float = 600.0) -> dict[str, Any]:
        """The job's outcome: checksum (None if it aborted), aborted, error, wall_s, attempts."""
        return self.request("wait_job", "job_done", timeout + 60, timeout=timeout)

    def report(self, timeout: float = 60.0) -> dict[str, Any] | None:
        """decom's Controller.report() in the driver (None without decom)."""
        rep = self.request("report", "report", timeout)["report"]
        return None if rep is None else dict(rep)

    def executor_ids(self, timeout: float = 60.0) -> dict[str, str]:
        """Live executors: id -> host (from Spark's status API)."""
        return dict(self.request("executors", "executors", timeout)["by_id"])

    def keep(self, name: str = "kept", timeout: float = 300.0, **spec: Any) -> dict[str, Any]:
        """Materialise a shuffle and a cached RDD (KeptData: n, keys, maps, reduces, parts) in one job
        each; returns their answers, partitions computed and stage records."""
        return self.request("keep", "kept", timeout, name=name, **spec)

    def reread(self, name: str = "kept", timeout: float = 300.0) -> dict[str, Any]:
        """Read the kept shuffle and cached RDD again; what was recomputed shows in maps_computed and
        cached_computed, Spark's records in attempts."""
        return self.request("reread", "reread", timeout, name=name)

    def kill_executor(self, executor_id: str, timeout: float = 60.0) -> bool:
        """SparkContext.killExecutor: the executor goes and the target drops by one (no replacement)."""
        return bool(self.request("kill_executor", "killed", timeout, id=executor_id)["ok"])

    def executors_ever(self, timeout: float = 60.0) -> dict[str, str]:
        """Every executor the app has had, live or gone: id -> host (Spark's status API)."""
        return dict(self.request("executors", "executors", timeout)["ever"])

    def current_executors(self, timeout: float = 60.0) -> list[str]:
        self._send("executors")
        return list(self._wait_event("executors", timeout)["executors"])

    def am_host(self) -> str:
        """Host of the app's current ApplicationMaster container (from the RM's REST API)."""
        app = self.lab.rest(f"/ws/v1/cluster/apps/{self.app_id}")["app"]
        return str(app.get("amHostHttpAddress", "")).rsplit(":", 1)[0]

    def log_tail(self, lines: int = 40) -> str:
        from .supervisor import tail

        return tail(self.log_path, lines)

    def kill_driver(self) -> None:
        """SIGKILL the driver's Python, as a crash: nothing is said to YARN or to the decom agent. Its JVM
        exits as the pipe from its Python closes (pyspark's gateway watches it)."""
        p = self._proc
        if p is None:
            return
        self._proc = None
        try:
            p.kill()
            p.wait(timeout=30)
        finally:
            self._log.close()

    def stop(self, timeout: float = 120.0) -> None:
        p = self._proc
        if p is None:
            return
        self._proc = None
        try:
            if p.poll() is None:
                try:
                    assert p.stdin is not None
                    p.stdin.write("stop\n")
                    p.stdin.flush()
                    p.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
                try:
                    p.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=30)
        finally:
            self._log.close()


if __name__ == "__main__":
    sys.exit(_driver_main())


def start_app_on(lab: YarnLab, hosts: set[str], *, avoid_am: str | None = None, need_on: str | None = None,
                 attempts: int = 6, **kw: Any) -> SparkApp:
    """A started SparkApp(lab, **kw) whose executors may run only on `hosts` (Spark's own
    spark.yarn.exclude.nodes), whose ApplicationMaster is not on `avoid_am` (its container would stay there
    for the app's life) and which has an executor on `need_on`: YARN places containers where it likes, so a
    start that misses is stopped and retried."""
    others = sorted(n.host for n in lab.nodes if n.host not in hosts)
    conf = {**kw.pop("conf", {}), "spark.yarn.exclude.nodes": ",".join(others)}
    for _ in range(attempts):
        app = SparkApp(lab, conf=conf, **kw).start()
        if app.am_host() != avoid_am and (need_on is None or need_on in app.executor_ids().values()):
            return app
        app.stop()
    raise LabError(f"{attempts} starts in a row put the AM on {avoid_am} or no executor on {need_on}")
