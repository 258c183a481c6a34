"""Read what Spark itself recorded (its status REST API) and reach executors' processes.

Shared by the integration tests, the demo and the benchmarks, so all three judge a run the same way.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Task:
    stage: int
    attempt: int
    index: int
    executor: str
    status: str
    error: str

    @property
    def fetch_failed(self) -> bool:
        return self.status == "FAILED" and self.error.startswith("FetchFailed")


@dataclass
class StageAttempt:
    stage: int
    attempt: int
    name: str
    status: str
    num_tasks: int
    failure: str
    tasks: list[Task] = field(default_factory=list)


class SparkProbe:
    """Spark's own stage/task records for the jobs of a job group, via the UI's REST API."""

    def __init__(self, spark: Any) -> None:
        self.sc = spark.sparkContext
        self.base = f"{self.sc.uiWebUrl}/api/v1/applications/{self.sc.applicationId}"

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return json.load(r)

    def stage_ids(self, group: str) -> list[int]:
        st = self.sc.statusTracker()
        ids: set[int] = set()
        for j in st.getJobIdsForGroup(group):
            info = st.getJobInfo(j)
            if info is not None:
                ids.update(info.stageIds)
        return sorted(ids)

    def attempts(self, group: str, settle: float = 1.0) -> list[StageAttempt]:
        """Every attempt of every stage the group's jobs ran, with their tasks."""
        time.sleep(settle)  # the status store is fed asynchronously by the listener bus
        out = []
        for sid in self.stage_ids(group):
            try:
                stage_attempts = self._get(f"/stages/{sid}")
            except Exception:  # noqa: BLE001 - a skipped stage has no record
                continue
            for a in stage_attempts:
                if a.get("status") == "SKIPPED":
                    continue
                tl = self._get(f"/stages/{sid}/{a['attemptId']}/taskList?length=100000")
                tasks = [Task(sid, a["attemptId"], t["index"], t["executorId"], t["status"],
                              t.get("errorMessage", "") or "") for t in tl]
                out.append(StageAttempt(sid, a["attemptId"], a.get("name", ""), a["status"],
                                        a["numTasks"], a.get("failureReason", "") or "", tasks))
        return out

    def executors(self) -> list[dict[str, Any]]:
        return [e for e in self._get("/executors") if e["id"] != "driver"]


def summarize(attempts: list[StageAttempt]) -> dict[str, Any]:
    tasks = [t for a in attempts for t in a.tasks]
    return {
        "stage_attempts": len(attempts),
        "failed_stage_attempts": sum(1 for a in attempts if a.status == "FAILED"),
        "tasks": len(tasks),
        "fetch_failed_tasks": sum(1 for t in tasks if t.fetch_failed),
        "tasks_by_executor": dict(Counter(t.executor for t in tasks)),
    }


def map_outputs_by_executor(attempts: list[StageAttempt], stage: int) -> dict[str, list[int]]:
    """Partition index -> executor of the successful map task that holds each output."""
    holder: dict[int, str] = {}
    for a in sorted((a for a in attempts if a.stage == stage), key=lambda a: a.attempt):
        for t in a.tasks:
            if t.status == "SUCCESS":
                holder[t.index] = t.executor
    by_exec: dict[str, list[int]] = {}
    for idx, ex in sorted(holder.items()):
        by_exec.setdefault(ex, []).append(idx)
    return by_exec


def executor_pid(app_id: str, executor_id: str) -> int:
    """PID of a local-cluster executor JVM, from /proc."""
    want = ["--executor-id", executor_id]
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "org.apache.spark.executor.CoarseGrainedExecutorBackend" not in argv or app_id not in argv:
            continue
        for i in range(len(argv) - 1):
            if argv[i : i + 2] == want:
                return int(pid)
    raise LookupError(f"no executor {executor_id} of {app_id} running here")


class Vanisher:
    """Freeze executor JVMs (SIGSTOP: no reply, connections stay open, like a reclaimed host) and
    always clean them up afterwards."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self.frozen: list[int] = []

    def vanish(self, executor_id: str) -> int | None:
        """Freeze the executor; None when it has already exited (e.g. decom released it first)."""
        try:
            pid = executor_pid(self.app_id, executor_id)
        except LookupError:
            return None
        os.kill(pid, signal.SIGSTOP)
        self.frozen.append(pid)
        return pid

    def cleanup(self) -> None:
        for pid in self.frozen:
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        self.frozen.clear()

    def __enter__(self) -> Vanisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def wait_for_executors(spark: Any, n: int, timeout: float = 120.0,
                       exclude: set[str] | None = None) -> list[str]:
    """Ids of at least n live executors (not in `exclude`), waiting for replacements to start."""
    probe = SparkProbe(spark)
    deadline = time.monotonic() + timeout
    while True:
        try:
            ids = sorted((e["id"] for e in probe.executors() if e.get("isActive")
                          and e["id"] not in (exclude or set())), key=int)
        except Exception:  # noqa: BLE001 - UI not up yet
            ids = []
        if len(ids) >= n:
            return ids
        if time.monotonic() > deadline:
            raise TimeoutError(f"only executors {ids} after {timeout}s, wanted {n}")
        time.sleep(0.5)


def wait_stage_attempt(spark: Any, group: str, attempt: int, min_done: int = 1,
                       timeout: float = 300.0, result_stage_only: bool = True) -> int | None:
    """Block until the group's last stage is running attempt `attempt` with `min_done` tasks done.
    Returns the stage id, or None if the job ended first."""
    sc = spark.sparkContext
    st = sc.statusTracker()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [st.getJobInfo(j) for j in st.getJobIdsForGroup(group)]
        jobs = [j for j in jobs if j is not None]
        if jobs and all(j.status in ("SUCCEEDED", "FAILED") for j in jobs):
            return None
        for j in jobs:
            if not j.stageIds:
                continue
            sid = max(j.stageIds) if result_stage_only else min(j.stageIds)
            info = st.getStageInfo(sid)
            if (info is not None and info.currentAttemptId == attempt
                    and info.numCompletedTasks >= min_done and info.numActiveTasks > 0):
                return int(sid)
        time.sleep(0.05)
    raise TimeoutError(f"stage attempt {attempt} of group {group} did not start in {timeout}s")


def run_tasks(spark: Any, group: str, n: int = 32) -> dict[str, int]:
    """Run an n-task job in a job group; return Spark's own count of its tasks per executor."""
    sc = spark.sparkContext
    sc.setJobGroup(group, group)
    total = sc.parallelize(range(n), n).map(lambda x: (time.sleep(0.05), x)[1]).sum()
    assert total == sum(range(n)), f"wrong answer {total}"
    return dict(summarize(SparkProbe(spark).attempts(group))["tasks_by_executor"])
