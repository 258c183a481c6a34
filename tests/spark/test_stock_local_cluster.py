"""The same scenarios on stock Spark, in the same test run: what decom's tests are measured against."""

from __future__ import annotations

import pytest

from bench.local_scenarios import lost_outputs, repeated_loss, session

# Long (~1.5 min): stock Spark's failures, the comparison's other side (make bench-local, make bench).
# make test proves decom's side: tests/spark/test_decom_local_cluster.py.
pytestmark = [pytest.mark.spark, pytest.mark.long]


@pytest.fixture(scope="module")
def stock_spark():
    with session("stock", conf={"spark.stage.maxConsecutiveAttempts": "2"}, app="test-stock", quick_jvms=True) as s:
        yield s[0]


def test_stock_spark_fetches_from_the_vanished_executor(stock_spark):
    out = lost_outputs(stock_spark, None, "stock", lose=1)
    assert out.correct, out.row()
    assert out.fetch_failed_tasks > 0, "stock Spark learns of the loss only through fetch failures"
    assert out.result_stage_attempts >= 2


def test_stock_spark_aborts_when_nodes_vanish_in_consecutive_attempts(stock_spark):
    out = repeated_loss(stock_spark, None, "stock", losses=2)
    assert out.aborted, out.row()
    assert "maximum allowable number of times: 2" in out.error, out.error
