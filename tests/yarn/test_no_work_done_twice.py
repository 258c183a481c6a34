"""Nothing computed twice when decom lets a leaving node's executors go while a map stage runs. Found by
`make chaos --long` (seeds 1 and 11 of generator 2): Spark re-runs a lost executor's finished map tasks of a
running stage unless it can tell their outputs live on, and how decom let executors go decided that.

Real Spark 4.3 on the Apache lab, Spark's own records (status REST API) for every figure.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.yarn_scenarios import pick_victims, reruns
from tests.yarn.graceful import CONF, EXECUTORS, STATIC
from tests.yarn.test_graceful_apache import NATIVE
from yarnlab.sparkapp import SparkApp, job_checksum

pytestmark = [pytest.mark.yarn, pytest.mark.long]

#: A map stage long enough (~15 s on 4 executors) that executors leave while it still runs.
SPEC = {"n": 40_000, "keys": 97, "maps": 32, "map_sleep": 2.0, "reduces": 8, "reduce_sleep": 0.5}


def _shim_events(rep: dict[str, Any], *actions: str) -> list[dict[str, Any]]:
    return [e for e in rep["shim"]["events"] if e["action"] in actions]


def _assert_right(out: dict[str, Any]) -> None:
    assert not out["aborted"], out["error"]
    assert out["checksum"] == job_checksum(SPEC), "wrong answer"


def test_executors_with_no_peer_leave_without_their_outputs_being_recomputed(lab: Any) -> None:
    """Shuffle service on, 2 static executors. Mid-map, every node running one is gracefully decommissioned
    (600 s), so no executor is left to take their blocks. Told to move them then, an executor finds no peer,
    reports its migration done and exits, and Spark re-ran its finished map tasks though the node's shuffle
    service still served their outputs. decom lets such executors go when idle (their outputs stay served:
    Apache keeps the node while the app lives) and tells the busy ones once a replacement is up. The job
    finishes right with no partition computed twice and no FetchFailed."""
    with SparkApp(lab, executors=2, conf=STATIC, decom=True, name="no-peer") as app:
        app.start_job(**SPEC)
        app.wait_stage("map", 0, min_done=4, timeout=240)
        before = app.executor_ids()
        leaving = sorted(set(before.values()))
        lab.decommission(leaving, timeout=600)
        out = app.wait_job(timeout=420)
        rep = app.report()
        ever = app.executors_ever()
    assert rep is not None
    recomputed, _ = reruns(out["attempts"])
    told = _shim_events(rep, "executors-told")
    released = _shim_events(rep, "executors-released")
    print(f"\nno peer: decommissioned {leaving}; job {out['wall_s']}s; recomputed {recomputed}; executors ever {ever}; "
          f"released {[e['detail']['executors'] for e in released]}; told once a peer was up "
          f"{[e['detail']['executors'] for e in told]}; fetch failures {rep['fetch_failures']}")
    _assert_right(out)
    assert recomputed == 0, f"{recomputed} map task(s) re-run though every output stayed served"
    assert sum(a["fetch_failed"] for a in out["attempts"]) == 0
    assert any(h not in leaving for h in ever.values()), f"no replacement off the leaving nodes: {ever}"
    # the new path ran: each leaving executor was let go by decom while idle, or told once a peer was up
    handled = {x for e in released + told for x in e["detail"]["executors"]}
    assert set(before) <= handled, f"executors neither let go nor told late: {set(before) - handled}"


def test_outputs_moved_off_a_leaving_node_are_not_recomputed_with_the_shuffle_service_off(lab: Any) -> None:
    """Shuffle service off, Spark's native decommissioning on, dynamic allocation up to 4. Mid-map, a node
    with executors is gracefully decommissioned (600 s): its executors move their map outputs to peers and
    decom lets them go once idle. Killed first, Spark lost them as "killed" and re-ran every map task they
    had finished, moved outputs too; dropped as decommissioned first, it re-runs only what did not move. So
    the partitions re-run are at most the victim's outputs that did not move, and the answer is right."""
    with SparkApp(lab, executors=EXECUTORS, conf={**CONF, **NATIVE}, decom=True, name="moved-not-rerun") as app:
        app.start_job(**SPEC)
        app.wait_stage("map", 0, min_done=6, timeout=240)
        victims, _ = pick_victims(app, 1, {app.am_host()})
        assert victims, f"no executor node besides the AM's: {app.executor_ids()}"
        victim = victims[0]
        lab.decommission([victim], timeout=600)
        out = app.wait_job(timeout=420)
        rep = app.report()
    assert rep is not None
    node = rep["nodes"][victim]
    map_stage = min(a["stage"] for a in out["attempts"])
    # the victim's outputs: partitions whose first successful map run was there
    first: dict[int, str] = {}
    for a in sorted((a for a in out["attempts"] if a["stage"] == map_stage), key=lambda a: a["attempt"]):
        for t in a["tasks"]:
            if t["status"] == "SUCCESS":
                first.setdefault(t["partition"], t["host"])
    held = sum(1 for h in first.values() if h == victim)
    recomputed, twice = reruns(out["attempts"])
    released = _shim_events(rep, "executors-released")
    print(f"\nshuffle service off: {victim} wrote {held} map output(s), {node['outputs_migrated']} moved; "
          f"recomputed {recomputed} (computed 3+ times: {twice}); released "
          f"{[e['detail']['executors'] for e in released if e['target'] == victim]}; job {out['wall_s']}s")
    _assert_right(out)
    assert held > 0 and node["outputs_migrated"] > 0, f"nothing moved off {victim}: {node}"
    # decom let the victim's executors go (rather than their own exit after migrating, which Spark reports as
    # a decommission anyway): the release path is what this test is about
    assert any(e["target"] == victim for e in released), f"decom released no executor on {victim}"
    assert recomputed <= held - node["outputs_migrated"], (
        f"{recomputed} map task(s) re-run, more than the {held - node['outputs_migrated']} outputs that did not move")
    assert twice == 0
