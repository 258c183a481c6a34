"""A NodeManager restarted mid-job (Apache's default: no NM recovery) deletes the app's local dirs as it
starts, while the executors it had started live on; YARN tells the app only once the NM re-registers. Found
by `make chaos --long` (generator 3, seed 8), twice:
- mid-map, one task failed 4 times within a second on two such executors and Spark aborted the job. decom
  drops those executors at the first such failure;
- mid-reduce (the generator-3 rerun of 2026-12-02), the node's shuffle service was down: a reader on that node failed at
  once, Spark dropped one executor's outputs, re-ran its map task on the same node, failed again and aborted
  at 2 stage attempts. decom drops the node's executors and all its outputs at the first refused fetch.

Real Spark 4.3, a real NodeManager killed and started again on the Apache lab; Spark's own records.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.yarn_scenarios import pick_victims
from tests.yarn.graceful import STATIC
from yarnlab.sparkapp import SparkApp, job_checksum

pytestmark = [pytest.mark.yarn, pytest.mark.long]

#: A map stage of ~20 s on 3 executors, so tasks keep starting on the victim across the NM's restart.
SPEC = {"n": 40_000, "keys": 97, "maps": 60, "map_sleep": 1.0, "reduces": 6, "reduce_sleep": 0.2}


def _restart_nm_mid_stage(lab: Any, app: SparkApp, spec: dict[str, Any], stage: str, min_done: int,
                          down_s: float) -> tuple[str, set[str]]:
    """Start the job; once `stage` has min_done tasks done, kill the NodeManager of a node running executors
    (not the AM's; its containers live on) and start it again `down_s` later, without recovery. Returns the
    node and the executors it ran then."""
    app.start_job(**spec)
    assert app.wait_stage(stage, 0, min_done=min_done, timeout=240) is not None, f"the job ended before its {stage}"
    victims, _ = pick_victims(app, 1, {app.am_host()})
    assert victims, f"no executor node besides the AM's: {app.executor_ids()}"
    victim = victims[0]
    on_victim = {e for e, h in app.executor_ids().items() if h == victim}
    lab.kill_nm(victim, containers=False)
    time.sleep(down_s)
    lab.start_nm(victim)
    return victim, on_victim


def test_executors_whose_local_dirs_a_restarted_nodemanager_deleted_are_dropped(lab: Any) -> None:
    """Shuffle service on, 3 static executors. Mid-map, the NodeManager of a node running executors is
    killed (its containers live on) and started again: it deletes the app's dirs, and every task offered to
    those executors fails at once. decom drops them (and the outputs they held) at the first such failure:
    the job finishes right, and no task starts on them after decom acted."""
    with SparkApp(lab, executors=3, conf=STATIC, decom=True, name="nm-restart") as app:
        victim, on_victim = _restart_nm_mid_stage(lab, app, SPEC, "map", min_done=6, down_s=0.0)
        out = app.wait_job(timeout=420)
        rep = app.report()
    assert rep is not None
    gone = [e for e in rep["shim"]["events"] if e["action"] == "local-dirs-gone"]
    tasks = [t for a in out["attempts"] for t in a["tasks"]]
    dir_failures = [t for t in tasks if "blockmgr-" in (t.get("error") or "")]
    print(f"\nNM restart on {victim}: job {out['wall_s']}s, aborted {out['aborted']}; decom: "
          f"{[(e['target'], e['detail']['executors'], e['detail']['outputs']) for e in gone]}; "
          f"task failures for missing local dirs: {len(dir_failures)}")
    assert not out["aborted"], out["error"]
    assert out["checksum"] == job_checksum(SPEC), "wrong answer"
    assert gone, f"decom never dropped executors for missing local dirs ({len(dir_failures)} such task failures)"
    assert all(e["target"] == victim for e in gone), gone
    dropped = {x for e in gone for x in e["detail"]["executors"]}
    assert dropped == on_victim, f"dropped {dropped}, on {victim} when its NM went: {on_victim}"
    # decom acts at the first failure it hears of; Spark may see one or two more before (spark.task.maxFailures=4)
    assert len(dir_failures) < 4, f"{len(dir_failures)} task failures for missing local dirs"
    acted = min(e["time"] for e in gone) / 1000
    late = [t for t in tasks if t["executor"] in dropped and t["launch"] is not None and t["launch"] > acted + 1]
    assert not late, f"tasks started on executors decom had dropped: {late}"


#: Short maps, then 30 reducers of ~1 s on 3 executors: readers keep starting while the NodeManager is down.
READ_SPEC = {"n": 40_000, "keys": 97, "maps": 12, "map_sleep": 0.5, "reduces": 30, "reduce_sleep": 1.0}


def test_a_node_whose_shuffle_service_is_down_mid_read_is_dropped_whole(lab: Any) -> None:
    """Shuffle service on, 3 static executors, spark.stage.maxConsecutiveAttempts=2 as in the chaos runs.
    While the reduce stage reads, the NodeManager of a node running executors (so holding map outputs) is
    killed (the shuffle service with it; its containers live on), left down 8 s and started again without
    recovery, within the lab's NM liveness expiry (the RM never shows the node LOST).
    Remote readers' fetches there are refused until their retry runs out (one retry, 5 s: so it does within
    the outage; Spark's default of 3 outlasts the lab's expiry, and the node would go LOST). decom drops the
    node's executors and every output there at the first such fetch failure: the job finishes right, not
    aborted, and no task starts on those executors after."""
    conf = STATIC | {"spark.shuffle.io.maxRetries": "1", "spark.stage.maxConsecutiveAttempts": "2"}
    with SparkApp(lab, executors=3, conf=conf, decom=True, name="nm-down-read") as app:
        # Down past the readers' one fetch retry (spark.shuffle.io.retryWait, 5 s).
        victim, on_victim = _restart_nm_mid_stage(lab, app, READ_SPEC, "reduce", min_done=3, down_s=8.0)
        out = app.wait_job(timeout=420)
        rep = app.report()
    assert rep is not None
    drops = [e for e in rep["shim"]["events"] if e["action"] in ("shuffle-service-lost", "local-dirs-gone")]
    tasks = [t for a in out["attempts"] for t in a["tasks"]]
    fetch_failed = [t for t in tasks if "FetchFailed" in (t.get("error") or "")]
    print(f"\nNM down mid-read on {victim} (executors {sorted(on_victim)}): job {out['wall_s']}s, aborted "
          f"{out['aborted']}, stage attempts {len(out['attempts'])}, FetchFailed tasks {len(fetch_failed)}; decom: "
          f"{[(e['action'], e['target'], e['detail']['executors'], e['detail']['outputs']) for e in drops]}")
    assert not out["aborted"], out["error"]
    assert out["checksum"] == job_checksum(READ_SPEC), "wrong answer"
    assert any(e["action"] == "shuffle-service-lost" for e in drops), \
        f"decom never dropped {victim} for its shuffle service ({len(fetch_failed)} fetch failures): {drops}"
    assert all(e["target"] == victim for e in drops), drops
    dropped = {x for e in drops for x in e["detail"]["executors"]}
    # YARN may report the containers lost first (the NM re-registered): then Spark dropped them, not decom.
    assert dropped <= on_victim, f"dropped {dropped}, on {victim} when its NM went: {on_victim}"
    acted = min(e["time"] for e in drops) / 1000
    late = [t for t in tasks if t["executor"] in on_victim and t["launch"] is not None and t["launch"] > acted + 1]
    assert not late, f"tasks started on {victim}'s executors after decom dropped the node's outputs: {late}"
