"""What the graceful scale-in lab tests share: the app's executors and a bounded wait."""

from __future__ import annotations

import time
from typing import Any

EXECUTORS = 4
#: Dynamic allocation up to 4, as a notebook or ETL app would; executors stay while idle for the test.
CONF = {
    "spark.dynamicAllocation.enabled": "true",
    "spark.dynamicAllocation.minExecutors": "0",
    "spark.dynamicAllocation.initialExecutors": str(EXECUTORS),
    "spark.dynamicAllocation.maxExecutors": str(EXECUTORS),
    "spark.dynamicAllocation.executorIdleTimeout": "600s",
    "spark.dynamicAllocation.schedulerBacklogTimeout": "1s",
    "spark.python.worker.reuse": "true",
}
#: Static executors: dynamic allocation off, spark.executor.instances (SparkApp's `executors`) fixed.
STATIC = {k: v for k, v in CONF.items() if not k.startswith("spark.dynamicAllocation.")} | {
    "spark.dynamicAllocation.enabled": "false"}


def wait_for(what: str, cond: Any, timeout: float, poll: float = 0.5) -> float:
    """Seconds until cond() holds; TimeoutError naming `what` after `timeout` s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(poll)
    raise TimeoutError(f"not within {timeout:.0f} s: {what}")
