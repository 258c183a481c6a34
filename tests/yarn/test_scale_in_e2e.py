"""End to end on the real YARN lab: a real Spark 4.3 app (client mode, executors in the lab's nodes,
the shuffle service in every NodeManager) with decom enabled in its driver, and real scale-in through
the ResourceManager. Every figure comes from Spark's own records (status REST API) or the RM.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.yarn_scenarios import BASE_CONF, NodeWatch, repair, run_scenario
from yarnlab.sparkapp import SparkApp, shuffle_checksum

pytestmark = pytest.mark.yarn


def _show(out: Any) -> None:
    print(f"\n{out.scenario}/{out.mode}: correct={out.correct} aborted={out.aborted} wall={out.wall_s}s "
          f"attempts={out.stage_attempts} FetchFailed={out.fetch_failed_tasks} outputs_lost={out.outputs_lost} "
          f"recomputed={out.map_tasks_recomputed} drain={out.drain_s}s victims={out.victims} "
          f"tasks_on_victims_after={out.tasks_on_victims_after} in_reaction_window={out.tasks_in_reaction_window} "
          f"error={out.error[:200]!r}")
    for c in out.timeline:
        print(f"  t={c['t']:+6.1f}s RM {c['host']}: {c['from']} -> {c['state']}")
    for e in (out.decom or {}).get("events", []):
        print(f"  t={e['t']:+6.1f}s decom {e['action']} {e['target']} {e.get('detail', '')}")


@pytest.mark.long  # ~2.5 min; make test has the same scale-in through spark-submit (test_submit_cluster_mode)
def test_graceful_decommission_mid_reduce_with_decom(lab: Any) -> None:
    """A node running executors (not the AM's) is gracefully decommissioned (YARN timeout 120 s) while
    the reduce stage runs: the answer is right, nothing fails to fetch, no task starts there once decom
    excluded it (a task may still start in the fraction of a second between decom seeing DECOMMISSIONING
    and the exclusion taking effect: that window is printed, not asserted). On Apache Hadoop the node
    stays until the app ends or YARN's timeout, so its drain time is printed, not asserted."""
    try:
        out = run_scenario(lab, "mid-reduce", "decom-ess-on", log=print)
    finally:
        repair(lab)
    _show(out)
    assert out.victims, "no node was decommissioned (the job ended first?)"
    assert not out.aborted, out.error
    assert out.checksum == out.expected, "wrong answer"
    assert out.fetch_failed_tasks == 0
    victim = out.victims[0]
    assert out.decom is not None and victim in out.decom["nodes"], "decom never saw the node"
    assert out.decom["nodes"][victim]["transitions"][0]["state"] == "DECOMMISSIONING"
    seen = out.decom["nodes"][victim]["transitions"][0]["t"]
    assert seen < out.job_end_t, f"decom saw DECOMMISSIONING at t={seen}s, after the job ended (t={out.job_end_t}s)"
    assert out.tasks_on_victims_after == 0, "tasks launched on the node after decom excluded it"
    print(f"drain time (graceful request -> DECOMMISSIONED, Apache Hadoop): {out.drain_s}s of YARN's 120 s timeout")


@pytest.mark.long  # ~4 min; make test has the same capability on local-cluster (tests/spark, both modes)
def test_repeated_loss_stock_aborts_decom_finishes(lab: Any) -> None:
    """spark.stage.maxConsecutiveAttempts=2; a node holding map outputs is decommissioned with a 5 s
    timeout during each of 2 consecutive attempts of the same reduce stage: stock Spark aborts, decom
    finishes with the right answer."""
    try:
        stock = run_scenario(lab, "repeated-loss", "stock", log=print)
    finally:
        repair(lab)
    _show(stock)
    try:
        dec = run_scenario(lab, "repeated-loss", "decom-ess-on", log=print)
    finally:
        repair(lab)
    _show(dec)
    assert stock.aborted, "stock Spark should abort after 2 failed attempts of the reduce stage"
    assert "maximum allowable number of times" in stock.error, f"aborted for another reason: {stock.error}"
    assert set(stock.fetch_failed_hosts) & set(stock.victims), \
        f"stock: no FetchFailed from a lost node {stock.victims}; fetch failures named {stock.fetch_failed_hosts}"
    # Stock Spark may fail both attempts on the first loss alone (reducers of the retry still fetch from
    # the dead node's shuffle service): then it never reaches the second event, and decom faced more.
    assert 1 <= len(stock.victims) <= 2, f"stock: {stock.victims}"
    assert len(dec.victims) == 2, f"decom: a node lost in 2 attempts, got {dec.victims}"
    assert not dec.aborted, dec.error
    assert dec.checksum == dec.expected


@pytest.mark.long  # ~1.5 min
def test_idle_session_node_drains_at_once_with_decom_on_emr_emulated(lab: Any) -> None:
    """EMR's drain, emulated (YarnLab.emulate_emr_drain: a node goes once its containers are; Apache Hadoop
    keeps it while the session lives). A notebook-like session holds its executors (idle timeout 10 min)
    between jobs. A node holding some of them is gracefully decommissioned (YARN timeout 120 s): decom
    releases the idle executors there, so such a YARN takes the node in seconds instead of when the
    session lets go; the next job runs elsewhere and its answer is right."""
    conf = {**BASE_CONF, "spark.dynamicAllocation.executorIdleTimeout": "600s"}
    victim = ""
    lab.emulate_emr_drain = True  # reset() turns it off again
    try:
        with NodeWatch(lab) as watch, SparkApp(lab, executors=4, conf=conf, decom=True, name="idle-session") as app:
            assert app.run_job() == shuffle_checksum(20000, 97)
            am = app.am_host()
            hosts = [h for h in app.executor_ids().values() if h != am]
            assert hosts, "no executor outside the AM's node"
            victim = max(set(hosts), key=hosts.count)
            t = time.time()
            lab.decommission([victim], timeout=120)
            gone = watch.wait(victim, {"DECOMMISSIONED"}, t, timeout=90)
            drain = None if gone is None else round(gone - t, 1)
            print(f"\nidle session, EMR drain emulated: {victim} drained in {drain}s (YARN timeout 120 s, "
                  "Spark idle timeout 600 s)")
            assert drain is not None and drain < 45, f"the node did not drain in 90 s ({drain})"
            assert app.run_job() == shuffle_checksum(20000, 97), "wrong answer after the scale-in"
            assert victim not in app.executor_ids().values(), "an executor is still on the decommissioned node"
            rep = app.report()
            assert rep is not None
            released = [e for e in rep["shim"]["events"]
                        if e["action"] == "executors-released" and e["target"] == victim]
            assert released and released[0]["detail"]["idle"], f"decom did not release the idle executors: {released}"
    finally:
        if victim:
            repair(lab)
