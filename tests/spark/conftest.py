"""Local-cluster Spark sessions: real executor JVMs; one session per module (each start costs ~20 s)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark


def run_tasks(spark, group: str, n: int = 32) -> dict[str, int]:
    """Run an n-task job in a job group; return Spark's own count of its tasks per executor."""
    import time

    from bench.spark_probe import SparkProbe, summarize

    sc = spark.sparkContext
    sc.setJobGroup(group, group)
    assert sc.parallelize(range(n), n).map(lambda x: (time.sleep(0.05), x)[1]).sum() == sum(range(n))
    return summarize(SparkProbe(spark).attempts(group))["tasks_by_executor"]
