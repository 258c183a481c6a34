"""decom on local-cluster Spark: exclusion, early clean-up, mass scale-in, exemption.

Every assertion reads Spark's own task/stage records (its status REST API), never decom's word alone.
"""

from __future__ import annotations

import time

import pytest

from bench.local_scenarios import lost_outputs, repeated_loss, session
from bench.spark_probe import run_tasks, wait_for_executors

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def decom_spark():
    conf = {"spark.stage.maxConsecutiveAttempts": "2",
            "spark.blacklist.decommissioning.timeout": "20s"}
    with session("decom", conf=conf, app="test-decom", quick_jvms=True) as (spark, controller):
        yield spark, controller


def test_enable_is_idempotent_and_owns_the_retry_policy(decom_spark):
    import decom

    spark, controller = decom_spark
    assert decom.enable(spark) is controller
    policy = controller.report()["retry_policy"]
    assert policy["mode"] == "plugin" and policy["userLimit"] == 2
    assert policy["sparkLimit"] > 2, "Spark's own limit is raised so decom's count decides"


def test_jar_and_package_are_one_version_and_a_mismatch_is_named(decom_spark):
    import decom
    from decom._driver.jvm import check_versions

    spark, _ = decom_spark
    jar = spark.sparkContext._jvm.io.decom.DecomShim.version()
    assert jar == decom.__version__
    with pytest.raises(decom.ShimVersionMismatchError, match=f"version {jar}, this Python package is 9.9.9"):
        check_versions(jar, "9.9.9")


def test_decommissioning_executor_gets_no_new_tasks_until_recommissioned(decom_spark):
    spark, controller = decom_spark
    e = wait_for_executors(spark, 4)[0]
    controller.decommissioning(executors=[e])
    during = run_tasks(spark, "excluded")
    assert sum(during.values()) == 32
    assert during.get(e, 0) == 0, f"tasks ran on the excluded executor: {during}"
    controller.recommissioned(executors=[e])
    after = run_tasks(spark, "recommissioned")
    assert after.get(e, 0) > 0, f"the recommissioned executor got no tasks: {after}"
    node = controller.report()["nodes"][f"executor:{e}"]
    assert [t["state"] for t in node["transitions"]] == ["DECOMMISSIONING", "RUNNING"]
    assert node["executors_excluded"] == [e]


def test_exclusion_expires_after_the_timeout(decom_spark):
    spark, controller = decom_spark
    e = wait_for_executors(spark, 4)[1]
    controller.decommissioning(executors=[e])
    assert run_tasks(spark, "before-expiry").get(e, 0) == 0
    deadline = time.monotonic() + 60
    while controller.report()["nodes"][f"executor:{e}"]["excluded"]:
        assert time.monotonic() < deadline, "exclusion did not expire after 20s"
        time.sleep(0.5)
    assert run_tasks(spark, "after-expiry").get(e, 0) > 0
    events = [x for x in controller.report()["shim"]["events"]
              if x["action"] == "unexcluded" and x["target"] == f"executor:{e}"]
    assert events and events[-1]["detail"]["reason"] == "exclusion timeout expired"
    controller.recommissioned(executors=[e])  # back to RUNNING in decom's lifecycle too


# make test keeps the mass loss (every lost node's outputs in one map attempt); one node is long.
@pytest.mark.parametrize("lose", [pytest.param(1, marks=pytest.mark.long), 2], ids=["one-node", "mass-2-of-4"])
def test_decommissioned_outputs_are_recomputed_at_once_without_fetch_failures(decom_spark, lose):
    spark, controller = decom_spark
    out = lost_outputs(spark, controller, "decom", lose=lose, tell="before")
    assert out.correct, out.row()
    assert out.fetch_failed_tasks == 0, out.row()
    assert out.outputs_lost > 0
    assert out.map_tasks_recomputed == out.outputs_lost, out.row()
    assert out.map_stage_attempts == 1, "all lost outputs of every lost node in ONE map attempt"
    assert out.result_stage_attempts == 1, out.row()
    assert out.tasks_on_victims_after == 0
    assert out.decom_outputs_unregistered is not None and out.decom_outputs_unregistered >= out.outputs_lost


@pytest.mark.parametrize("tell", ["before", pytest.param("after", marks=pytest.mark.long)],
                         ids=["told-before-vanish", "told-2s-after"])
def test_nodes_lost_in_consecutive_attempts_do_not_abort_the_job(decom_spark, tell):
    spark, controller = decom_spark
    out = repeated_loss(spark, controller, "decom", losses=2, tell=tell)
    assert not out.aborted, out.row()
    assert out.correct, out.row()
    assert out.result_stage_attempts >= 2, "the scenario really failed attempts"
    assert len(out.exempted_attempts) >= 1, out.row()


def test_status_shows_the_running_drivers_counters(decom_spark):
    """`decom status --ui` reads the plugin's gauges from the driver's /metrics/json; they match
    the controller's own report."""
    import json

    from click.testing import CliRunner

    from decom._cli.main import main

    spark, controller = decom_spark
    e = wait_for_executors(spark, 4)[2]
    controller.decommissioning(executors=[e])
    try:
        result = CliRunner().invoke(main, ["status", "--ui", spark.sparkContext.uiWebUrl, "--json"])
        assert result.exit_code == 0, result.output
        figures = json.loads(result.output)
        nodes = controller.report()["nodes"].values()
        excluded = {x for n in nodes for x in n["executors_excluded"]}
        assert e in excluded
        assert figures["executorsExcluded"] == len(excluded)
        assert figures["nodesDecommissioned"] == sum(1 for n in nodes if n["state"] == "DECOMMISSIONED")
        assert figures["fetchFailures"] == controller.report()["shim"]["fetchFailures"]["total"]
    finally:
        controller.recommissioned(executors=[e])
