"""Graceful scale-in on Apache Hadoop 3.5 (the lab's default: a DECOMMISSIONING node stays while the app
that ran there lives, or until YARN's timeout). A real Spark 4.3 app with decom in its driver, the
shuffle service in every NodeManager, Spark's default network timeouts. Every figure comes from Spark's
own records (status REST API, task records) or the RM.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bench.yarn_scenarios import pick_victims
from tests.yarn.graceful import CONF, EXECUTORS, STATIC
from tests.yarn.graceful import wait_for as _wait
from yarnlab.sparkapp import SparkApp, job_checksum

pytestmark = pytest.mark.yarn


#: The shuffle service off, with Spark's own decommissioning on (its executors migrate their blocks when
#: told; Spark's YARN trigger acts on DECOMMISSIONING nodes only with the shuffle service off).
NATIVE = {
    "spark.shuffle.service.enabled": "false",
    "spark.dynamicAllocation.shuffleTracking.enabled": "true",
    "spark.decommission.enabled": "true",
    "spark.storage.decommission.enabled": "true",
    "spark.storage.decommission.shuffleBlocks.enabled": "true",
    "spark.storage.decommission.rddBlocks.enabled": "true",
}
#: Where the map outputs live: the node's shuffle service (make test), or the executors themselves next to
#: Spark's native decommissioning (long).
SHUFFLE = pytest.mark.parametrize("shuffle", ["service", pytest.param("native", marks=pytest.mark.long)])


def _shuffle_conf(shuffle: str) -> dict[str, str]:
    return {**CONF, **NATIVE} if shuffle == "native" else dict(CONF)


def _tasks(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t | {"stage": a["stage"], "stage_attempt": a["attempt"]} for a in attempts for t in a["tasks"]]


def _excluded_at(rep: dict[str, Any], host: str) -> float:
    """When the shim's exclusion of `host` took effect (driver clock, like Spark's launch times)."""
    times = [e["time"] / 1000 for e in rep["shim"]["events"]
             if e.get("action") in ("excluded", "decommissioned") and e.get("target") == host]
    assert times, f"decom never acted on {host}: {rep['nodes'].get(host)}"
    return min(times)


def _victim_mid_reduce(app: SparkApp, spec: dict[str, Any], min_done: int = 2) -> str:
    """Start the job, wait for its reduce stage to run, and pick a node with executors (not the AM's)."""
    app.start_job(**spec)
    app.wait_stage("reduce", 0, min_done=min_done, timeout=240)
    victims, _ = pick_victims(app, 1, {app.am_host()})
    assert victims, f"no executor node besides the AM's: {app.executor_ids()}"
    return victims[0]


@pytest.mark.parametrize("allocation", ["dynamic", pytest.param("static", marks=pytest.mark.long)])
def test_capacity_comes_back_while_the_node_stays_decommissioning(lab: Any, allocation: str) -> None:
    """A node with executors is gracefully decommissioned (timeout 600 s) mid-reduce. On Apache Hadoop it
    stays DECOMMISSIONING while the app lives; decom lets its executors go as their tasks end, so the app's
    working executors return to their number before the exclusion (YARN places the replacements on other
    nodes), no task runs on the node afterwards, the node's shuffle service keeps serving its outputs (no
    FetchFailed, nothing recomputed) and the answer is right. No runaway requests: the app gets exactly one
    new executor per one let go, and never has more requests outstanding at the RM than it let go.
    Dynamic allocation (up to 4) and static executors (4) alike."""
    spec = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 48, "map_sleep": 0.5, "reduce_sleep": 2.0}
    conf = CONF if allocation == "dynamic" else STATIC
    with SparkApp(lab, executors=EXECUTORS, conf=conf, decom=True, name=f"graceful-capacity-{allocation}") as app:
        victim = _victim_mid_reduce(app, spec)
        before = app.executor_ids()
        lab.decommission([victim], timeout=600)
        t_decom = time.monotonic()
        pending: list[int] = []

        def working() -> dict[str, str]:
            pending.append(lab.app_containers(app.app_id).outstanding)
            return {e: h for e, h in app.executor_ids().items() if h != victim}

        back_s = _wait(f"{len(before)} working executors off {victim} (before: {before})",
                       lambda: len(working()) >= len(before), timeout=150, poll=1.0)
        print(f"\n{allocation}: capacity back {back_s:.1f}s after the graceful request: {working()} "
              f"(before: {before})")
        assert lab.node_states()[victim] == "DECOMMISSIONING", "Apache Hadoop keeps the node while the app lives"
        out = app.wait_job(timeout=420)
        pending.append(lab.app_containers(app.app_id).outstanding)
        ever = app.executors_ever()
        rep = app.report()
    assert rep is not None
    assert not out["aborted"], out["error"]
    assert out["checksum"] == job_checksum(spec), "wrong answer"
    since = _excluded_at(rep, victim)
    late = [t for t in _tasks(out["attempts"]) if t["host"] == victim and (t["launch"] or 0) >= since]
    assert late == [], f"tasks launched on {victim} after decom excluded it: {late}"
    assert sum(a["fetch_failed"] for a in out["attempts"]) == 0, "the node's shuffle service stopped serving"
    assert len({a["stage"] for a in out["attempts"]}) == len(out["attempts"]), "a stage was retried"
    node = rep["nodes"][victim]
    assert node["state"] == "DECOMMISSIONING" and node["executors_released"], node
    released = [e for e in rep["shim"]["events"] if e["action"] == "executors-released" and e["target"] == victim]
    assert released and all(e["detail"]["outputsKept"] for e in released), released
    if allocation == "dynamic":
        # The plugin turned spark.decommission.enabled on for the executors' sake only: dynamic allocation
        # still kills idle executors (shuffle service on) instead of decommissioning them.
        started = next(e for e in rep["shim"]["events"] if e["action"] == "shim-started")["detail"]
        assert started["tellExecutors"] and started["sparkScaleDownKept"], started
    let_go = [e for e, h in before.items() if h == victim]
    new = {e: h for e, h in ever.items() if e not in before}
    print(f"job {out['wall_s']}s; released {node['executors_released']} at "
          f"{[round(e['time'] / 1000 - since, 1) for e in released]}s after the exclusion; "
          f"{time.monotonic() - t_decom:.0f}s after the request the node is still DECOMMISSIONING; "
          f"new executors {new}; outstanding requests seen {sorted(set(pending))}")
    assert sorted(node["executors_released"]) == sorted(let_go), (node["executors_released"], before)
    assert len(new) == len(let_go) and victim not in new.values(), f"replacements: {new} for {let_go}"
    assert max(pending) <= len(let_go) and pending[-1] == 0, f"outstanding container requests: {pending}"


def _cluster_full(lab: Any, app_id: str) -> bool:
    """The RM holds requests of the app it cannot place: no RUNNING node has room for one more."""
    at_rm = lab.app_containers(app_id)
    return at_rm.outstanding > 0 and all(int(n["availMemoryMB"]) < at_rm.ask_mb
                                         for n in lab.nodes_rest(["RUNNING"]))


@pytest.mark.long  # ~2 min
def test_a_full_cluster_never_blocks_the_job(lab: Any) -> None:
    """Dynamic allocation may ask for more executors than the cluster holds: the app takes every container
    YARN can place and the RM keeps the rest of its requests outstanding. A node with executors is then
    gracefully decommissioned (600 s) mid-reduce. decom lets its executors go though no replacement can
    come (YARN places nothing on a DECOMMISSIONING node, and the rest is full); the job goes on with the
    executors it has: right answer, no abort, no task on the node after the exclusion, no FetchFailed.
    Outstanding requests never exceed what dynamic allocation itself wants (its max minus running)."""
    most = 16
    conf = {**CONF, "spark.dynamicAllocation.maxExecutors": str(most)}
    spec = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 96, "map_sleep": 0.5, "reduce_sleep": 2.0}
    with SparkApp(lab, executors=EXECUTORS, conf=conf, decom=True, name="graceful-full-cluster") as app:
        app.start_job(**spec)
        app.wait_stage("reduce", 0, min_done=1, timeout=240)
        full_s = _wait("the cluster full with the app's requests outstanding",
                       lambda: _cluster_full(lab, app.app_id), timeout=120, poll=1.0)
        time.sleep(3)  # let the last containers placed register as executors
        before = app.executor_ids()
        victims, _ = pick_victims(app, 1, {app.am_host()})
        assert victims, f"no executor node besides the AM's: {before}"
        victim = victims[0]
        lab.decommission([victim], timeout=600)
        seen: list[tuple[int, int]] = []  # (outstanding requests, executor containers running), each second
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                at_rm = lab.app_containers(app.app_id)
                seen.append((at_rm.outstanding, at_rm.running - 1))  # less the AM's

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            out = app.wait_job(timeout=420)
            ever = app.executors_ever()
            rep = app.report()
        finally:
            done.set()
            sampler.join()
    assert rep is not None
    node = rep["nodes"][victim]
    let_go = sorted(e for e, h in before.items() if h == victim)
    print(f"\nfull {full_s:.0f}s into the reduce with {len(before)} executors; released {node['executors_released']}; "
          f"executors ever {len(ever)}; job {out['wall_s']}s; (outstanding, running) seen: {sorted(set(seen))}")
    assert not out["aborted"], out["error"]
    assert out["checksum"] == job_checksum(spec), "wrong answer"
    assert sorted(node["executors_released"]) == let_go, (node["executors_released"], before)
    assert set(ever) == set(before), f"a replacement came, so the cluster was not full: {ever}"
    since = _excluded_at(rep, victim)
    late = [t for t in _tasks(out["attempts"]) if t["host"] == victim and (t["launch"] or 0) >= since]
    assert late == [], f"tasks launched on {victim} after decom excluded it: {late}"
    assert sum(a["fetch_failed"] for a in out["attempts"]) == 0, "the node's shuffle service stopped serving"
    assert all(asked + running <= most for asked, running in seen), f"runaway requests: {seen}"


@SHUFFLE
def test_a_short_yarn_timeout_read_over_rpc_moves_the_data_then_drops_the_rest(lab: Any, shuffle: str) -> None:
    """The node's graceful timeout is 15 s, which YARN reports only over RPC, mid-reduce. decom reads it in
    the driver; 15 s is inside spark.decommissioning.timeout.threshold (20 s), but the node's executors
    were told to move their blocks when decom excluded it, so decom handles the node as gone only
    spark.decom.migrationMargin (5 s) before the deadline, dropping in one step what did not move. Every
    output whose writer lived moves; the job reads them from the receivers: no abort, at most one extra
    attempt of each stage, and every FetchFailed is one decom caused on purpose (all exempt; none if nothing
    was left to drop). With the shuffle service, and without it next to Spark's native decommissioning."""
    spec = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 32, "map_sleep": 0.5, "reduce_sleep": 1.0}
    with SparkApp(lab, executors=EXECUTORS, conf=_shuffle_conf(shuffle), decom=True,
                  name=f"graceful-rpc-deadline-{shuffle}") as app:
        victim = _victim_mid_reduce(app, spec)
        attempts = app.attempts()
        map_stage = min(a["stage"] for a in attempts)
        held = sum(1 for a in attempts if a["stage"] == map_stage
                   for t in a["tasks"] if t["status"] == "SUCCESS" and t["host"] == victim)
        t_request = time.time()
        lab.decommission([victim], timeout=15)

        def decom_state() -> str:
            rep = app.report()
            return "" if rep is None else str(rep["nodes"].get(victim, {}).get("state", ""))

        _wait("decom handles the node as gone", lambda: decom_state() == "DECOMMISSIONED", timeout=60)
        gone_s = time.time() - t_request
        yarn_state = lab.node_states()[victim]
        out = app.wait_job(timeout=420)
        rep = app.report()
    assert rep is not None
    node = rep["nodes"][victim]
    gone_at = next(tr["at"] for tr in node["transitions"] if tr["state"] == "DECOMMISSIONED")
    print(f"\n{shuffle}: decom: gone {gone_s:.1f}s after the 15 s graceful request, {node['deadline'] - gone_at:.1f}s "
          f"before the deadline (YARN then: {yarn_state}); deadline from {node['deadline_source']}; job "
          f"{out['wall_s']}s; {held} map output(s) there: moved {node['outputs_migrated']}, orphaned "
          f"{node['outputs_orphaned']}, dropped {node['outputs_unregistered']}; fetch failures {rep['fetch_failures']}")
    assert node["deadline_source"] == "rpc", node
    assert node["deadline"] is not None and abs(node["deadline"] - (node["transitions"][0]["at"] + 15)) < 1
    assert gone_s < 15, f"decom acted {gone_s:.1f}s after the request: not before YARN's own timeout"
    assert 4 <= node["deadline"] - gone_at <= 6, "not handled as gone at the 5 s migration margin"
    assert not out["aborted"], out["error"]
    assert out["checksum"] == job_checksum(spec), "wrong answer"
    assert held > 0 and node["outputs_migrated"] == held - node["outputs_orphaned"], "an output that could move did not"
    assert node["outputs_unregistered"] == node["outputs_orphaned"], "dropped outputs that could have moved"
    per_stage: dict[int, int] = {}
    for a in out["attempts"]:
        per_stage[a["stage"]] = per_stage.get(a["stage"], 0) + 1
    assert max(per_stage.values()) <= 2, f"more than one extra attempt of a stage: {per_stage}"
    failures = rep["fetch_failures"]
    assert failures["total"] == failures["exempt"], f"a FetchFailed decom did not cause: {failures}"
    if node["outputs_unregistered"] == 0:
        assert failures["total"] == 0, f"FetchFailed though every output moved: {failures}, {node}"


@SHUFFLE
def test_a_reducer_fetching_from_a_vanished_host_is_retried_within_seconds(lab: Any, shuffle: str) -> None:
    """A node holding map outputs vanishes (link down) while the reduce runs, with Spark's default network
    timeouts (spark.shuffle.io.connectionTimeout 120 s). Reducers connecting to its shuffle service would
    hang that long; once the RM says LOST, decom drops the node's outputs and retries the tasks reading
    them against the map outputs as they are now. The job ends well within the 120 s, with the right
    answer and no abort. The same with the shuffle service off (reducers fetch from the node's executors,
    next to Spark's native decommissioning, which a vanished node gives no chance)."""
    spec = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 32, "map_sleep": 0.5, "reduce_sleep": 1.0}
    with SparkApp(lab, executors=EXECUTORS, conf=_shuffle_conf(shuffle), decom=True,
                  name=f"vanish-fetch-{shuffle}") as app:
        victim = _victim_mid_reduce(app, spec, min_done=1)
        t_vanish = time.time()
        lab.vanish(victim)
        try:
            _wait(f"the RM says {victim} is LOST", lambda: lab.node_states().get(victim) == "LOST", timeout=90)
            t_lost = time.time()
            out = app.wait_job(timeout=300)
            rep = app.report()
        finally:
            lab.restore(victim)
    assert rep is not None
    retried = [e for e in rep["shim"]["events"] if e["action"] == "fetching-tasks-retried"]
    ended = out["ended"] - t_vanish
    print(f"\n{shuffle}: LOST {t_lost - t_vanish:.1f}s after the vanish; job ended {ended:.1f}s after it; retried: "
          f"{[len(e['detail']['tasks']) for e in retried]} task(s); fetch failures {rep['fetch_failures']}")
    assert not out["aborted"], out["error"]
    assert out["checksum"] == job_checksum(spec), "wrong answer"
    assert ended < 90, f"the job ended {ended:.0f}s after the vanish: reducers waited out the network timeout"
    node = rep["nodes"][victim]
    assert node["state"] == "DECOMMISSIONED"
    gone_at = next(tr["at"] for tr in node["transitions"] if tr["state"] == "DECOMMISSIONED")
    assert all(e["time"] / 1000 - gone_at < 5 for e in retried), "tasks were retried late"


@pytest.mark.long  # ~2 min
def test_shuffle_service_off_next_to_sparks_native_decommissioning(lab: Any) -> None:
    """Shuffle service off, Spark's native decommissioning on, decom on. A node with executors is
    decommissioned (600 s) mid-reduce. decom's exclusion tells the executors to decommission (Spark's own
    trigger would skip executors decom had marked silently), so they migrate their outputs to peers and
    exit; their replacements come; no task runs on the node afterwards; no abort; right answer; every
    FetchFailed is exempt."""
    spec = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 64, "map_sleep": 0.5, "reduce_sleep": 2.0}
    with SparkApp(lab, executors=EXECUTORS, conf={**CONF, **NATIVE}, decom=True, name="graceful-native") as app:
        victim = _victim_mid_reduce(app, spec)
        before = app.executor_ids()
        lab.decommission([victim], timeout=600)

        def working() -> dict[str, str]:
            return {e: h for e, h in app.executor_ids().items() if h != victim}

        back_s = _wait(f"{len(before)} working executors off {victim} (before: {before})",
                       lambda: len(working()) >= len(before), timeout=150, poll=1.0)
        out = app.wait_job(timeout=420)
        rep = app.report()
    assert rep is not None
    print(f"\nESS off + native: capacity back {back_s:.1f}s after the request; job {out['wall_s']}s; "
          f"fetch failures {rep['fetch_failures']}")
    assert not out["aborted"], out["error"]
    assert out["checksum"] == job_checksum(spec), "wrong answer"
    since = _excluded_at(rep, victim)
    late = [t for t in _tasks(out["attempts"]) if t["host"] == victim and (t["launch"] or 0) >= since]
    assert late == [], f"tasks launched on {victim} after decom excluded it: {late}"
    failures = rep["fetch_failures"]
    assert failures["total"] == failures["exempt"], f"a FetchFailed decom did not cause: {failures}"
