"""Each EMR key, set to false, turns its behaviour off (decom then behaves like stock Spark there)."""

from __future__ import annotations

import pytest

from bench.local_scenarios import lost_outputs, repeated_loss, session
from bench.spark_probe import run_tasks, wait_for_executors

# Long (~2 min): every key off behaves as stock Spark does. make test checks the keys' parsing
# (tests/unit/test_config.py, tests/fault/test_bad_input.py) and each key on, in test_decom_local_cluster.
pytestmark = [pytest.mark.spark, pytest.mark.long]

OFF = {
    "spark.blacklist.decommissioning.enabled": "false",
    "spark.resourceManager.cleanupExpiredHost": "false",
    "spark.stage.attempt.ignoreOnDecommissionFetchFailure": "false",
    "spark.stage.maxConsecutiveAttempts": "2",
}


@pytest.fixture(scope="module")
def keys_off():
    with session("decom", conf=OFF, app="test-keys-off", quick_jvms=True) as s:
        yield s


def test_keys_are_read(keys_off):
    _, controller = keys_off
    c = controller.config
    assert (c.exclude_enabled, c.cleanup_enabled, c.exempt_enabled) == (False, False, False)
    assert controller.report()["retry_policy"]["mode"] == "spark", "Spark keeps its own retry limit"


def test_exclusion_off_tasks_still_run_on_a_decommissioning_executor(keys_off):
    spark, controller = keys_off
    e = wait_for_executors(spark, 4)[0]
    controller.decommissioning(executors=[e])
    assert run_tasks(spark, "not-excluded").get(e, 0) > 0
    controller.recommissioned(executors=[e])


def test_cleanup_off_reducers_meet_the_vanished_executor(keys_off):
    spark, controller = keys_off
    out = lost_outputs(spark, controller, "decom-cleanup-off", lose=1, tell="before")
    assert out.correct, out.row()
    assert out.decom_outputs_unregistered == 0
    assert out.fetch_failed_tasks > 0, out.row()


def test_exemption_off_consecutive_losses_abort_as_on_stock_spark(keys_off):
    spark, controller = keys_off
    out = repeated_loss(spark, controller, "decom-exempt-off", losses=2, tell="before")
    assert out.aborted, out.row()
