"""What Spark itself recorded about a job group, read from the driver's status REST API.

One reader for the lab's driver process (yarnlab.sparkapp), the local-cluster benchmarks and the tests,
so every one of them judges a run from the same records: stage attempts, and each task's index,
executor, host, status, launch time and error, and the partition it computed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession


def spark_time(s: str | None) -> float | None:
    """Epoch seconds of a status-API time like '2026-11-22T12:34:56.789GMT'."""
    if not s:
        return None
    t = dt.datetime.strptime(s.replace("GMT", ""), "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=dt.timezone.utc).timestamp()


@dataclass
class Task:
    stage: int
    attempt: int
    index: int
    executor: str
    status: str
    error: str
    host: str = ""
    launch: float | None = None
    #: The partition computed: a later attempt runs only the missing ones, so its task indexes start at 0 again.
    partition: int = -1

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
    #: The RDDs the stage computes: a later job that needs a lost shuffle output again runs its map stage
    #: under a new stage id, with the same RDDs.
    rdds: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able record with errors cut short (a FetchFailed trace runs to kilobytes per task)."""
        return {"stage": self.stage, "attempt": self.attempt, "name": self.name, "status": self.status,
                "num_tasks": self.num_tasks, "failure": self.failure[:500], "rdds": self.rdds,
                "fetch_failed": sum(1 for t in self.tasks if t.fetch_failed),
                "tasks": [{"index": t.index, "partition": t.partition, "executor": t.executor, "host": t.host,
                           "status": t.status, "launch": t.launch, "error": t.error[:300]} for t in self.tasks]}


class SparkProbe:
    """Spark's own stage/task records for the jobs of a job group. Takes a SparkSession or SparkContext."""

    def __init__(self, spark: SparkSession | SparkContext) -> None:
        from pyspark.sql import SparkSession

        self.sc: SparkContext = spark.sparkContext if isinstance(spark, SparkSession) else spark
        url = self.sc.uiWebUrl
        self.base = f"{url}/api/v1/applications/{self.sc.applicationId}" if url else ""

    def _get(self, path: str) -> Any:
        if not self.base:
            raise RuntimeError("the Spark UI is disabled: no status REST API to read task records from")
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
        """Every attempt of every stage the group's jobs ran, with their tasks. `settle`: seconds to
        wait first, as the status store is fed asynchronously by the listener bus."""
        if not self.base:
            raise RuntimeError("the Spark UI is disabled: no status REST API to read task records from")
        time.sleep(settle)
        out = []
        for sid in self.stage_ids(group):
            try:
                stage_attempts = self._get(f"/stages/{sid}")
            except Exception:  # noqa: BLE001 - a stage that never ran has no record
                continue
            for a in stage_attempts:
                if a.get("status") == "SKIPPED":
                    continue
                tl = self._get(f"/stages/{sid}/{a['attemptId']}/taskList?length=100000")
                tasks = [Task(sid, a["attemptId"], t["index"], t.get("executorId", ""), t.get("status", ""),
                              t.get("errorMessage") or "", t.get("host", ""), spark_time(t.get("launchTime")),
                              t.get("partitionId", t["index"]))
                         for t in tl]
                out.append(StageAttempt(sid, a["attemptId"], a.get("name", ""), a.get("status", ""),
                                        a.get("numTasks", 0), a.get("failureReason") or "", tasks,
                                        sorted(a.get("rddIds") or [])))
        return out

    def executors(self) -> list[dict[str, Any]]:
        """The status API's executor records (active and dead), the driver left out."""
        return [e for e in self._get("/allexecutors") if e["id"] != "driver"]

    def executor_hosts(self) -> dict[str, str]:
        """Active executors: id -> host."""
        return {e["id"]: e["hostPort"].rsplit(":", 1)[0] for e in self.executors() if e.get("isActive")}
