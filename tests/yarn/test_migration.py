"""Graceful scale-in, part 2, on Apache Hadoop 3.5 with the shuffle service on: a DECOMMISSIONING node's
executors move their shuffle outputs and cached blocks to healthy nodes (Spark's own block migration,
which decom triggers and follows; SPARK-39018 gates only Spark's YARN trigger), decom lets them go and
then says the app holds nothing on the node. When the node then vanishes, nothing it held is lost.
Every figure comes from Spark's own records (status REST API, accumulators) or the RM.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.yarn_scenarios import pick_victims
from tests.yarn.graceful import CONF, EXECUTORS, STATIC
from tests.yarn.graceful import wait_for as _wait
from yarnlab.sparkapp import SparkApp, shuffle_checksum

pytestmark = pytest.mark.yarn


#: The shuffle service off, shuffle tracking on: outputs live in the executors, which move them to peers.
NO_SERVICE = {"spark.shuffle.service.enabled": "false", "spark.dynamicAllocation.shuffleTracking.enabled": "true"}
SPEC = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 8, "parts": 8}


def _written(kept: dict[str, Any], which: str, where: Any) -> int:
    """Partitions the kept data's first run wrote where `where(task)` holds: map outputs of its shuffle
    ("map", the first stage) or cached blocks ("cached", the last stage), from Spark's task records."""
    stages = sorted({a["stage"] for a in kept["attempts"]})
    stage = stages[0] if which == "map" else stages[-1]
    return sum(1 for a in kept["attempts"] if a["stage"] == stage
               for t in a["tasks"] if t["status"] == "SUCCESS" and where(t))


def _keep_and_pick(app: SparkApp) -> tuple[dict[str, Any], str]:
    """Materialise the kept data (SPEC), then pick a node with executors that is not the AM's."""
    first = app.keep(**SPEC)
    assert not first["aborted"], first["error"]
    victims, _ = pick_victims(app, 1, {app.am_host()})
    assert victims, f"no executor node besides the AM's: {app.executor_ids()}"
    return first, victims[0]


def _assert_right(read: dict[str, Any]) -> None:
    """The kept data read again: no abort and both answers right."""
    assert not read["aborted"], read["error"]
    assert read["checksum"] == shuffle_checksum(SPEC["n"], SPEC["keys"]), "wrong answer (shuffle)"
    assert read["cached_sum"] == sum(range(SPEC["n"])), "wrong answer (cached)"


def _node(app: SparkApp, host: str) -> dict[str, Any]:
    return dict(((app.report() or {}).get("nodes") or {}).get(host) or {})


def _vanish_and_reread(lab: Any, app: SparkApp, victim: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The node vanishes (link down); once the RM says LOST and decom handled it, the kept data is read
    again. Returns (the re-read, decom's report)."""
    lab.vanish(victim)
    try:
        _wait(f"the RM says {victim} is LOST", lambda: lab.node_states().get(victim) == "LOST", timeout=90)
        _wait("decom handles the node as gone", lambda: _node(app, victim).get("state") == "DECOMMISSIONED",
              timeout=30)
        again = app.reread()
        rep = app.report()
    finally:
        lab.restore(victim)
    assert rep is not None
    return again, rep


def _executor_logs(lab: Any, app_id: str, host: str) -> str:
    """The stderr of every container of the app on the node (its NodeManager's log dir)."""
    node = next(n for n in lab.nodes if n.host == host)
    return "".join(f.read_text(errors="replace")
                   for f in sorted((node.workdir / "logs" / app_id).glob("container_*/stderr")))


# Long (~65 s): make test keeps migration on real YARN through test_agent_lab (moved, nothing recomputed on a
# re-read) and test_graceful_apache (every output that could move did, under a short timeout read over RPC).
@pytest.mark.long
@pytest.mark.parametrize("shuffle", ["service", "executors"])
def test_moved_outputs_and_cached_blocks_outlive_the_node(lab: Any, shuffle: str) -> None:
    """A shuffle and a cached RDD are materialised on 4 executors. A node with executors is gracefully
    decommissioned (600 s): its executors move their map outputs and cached blocks to the other nodes,
    decom lets them go and says the app holds nothing there. The node then vanishes. Reading the shuffle
    and the cached RDD again recomputes nothing (no map task, no cached partition), meets no FetchFailed,
    and gives the right answers; outputs decom had to drop (recomputed) equal the orphans (none here).
    With the shuffle service on, and off (outputs in the executors, Spark's own YARN trigger active too:
    each executor is told once, by one of the two)."""
    conf = CONF if shuffle == "service" else {**CONF, **NO_SERVICE}
    with SparkApp(lab, executors=EXECUTORS, conf=conf, decom=True, name=f"migrate-{shuffle}") as app:
        first, victim = _keep_and_pick(app)
        on_victim = sorted(e for e, h in app.executor_ids().items() if h == victim)
        held = _written(first, "map", lambda t: t["host"] == victim)
        lab.decommission([victim], timeout=600)
        let_go_s = _wait(f"decom lets go of {victim}", lambda: bool(_node(app, victim).get("let_go_at")),
                         timeout=120)
        moved = _node(app, victim)
        again, rep = _vanish_and_reread(lab, app, victim)
        logs = _executor_logs(lab, app.app_id, victim)
    node = rep["nodes"][victim]
    told = {e: logs.count(f"Decommission executor {e}.") for e in on_victim}
    print(f"\n{shuffle}: {victim} held {held} map output(s) on executors {on_victim}; let go {let_go_s:.1f}s "
          f"after the graceful request: migrated {moved['outputs_migrated']}, orphaned "
          f"{moved['outputs_orphaned']}, {moved['bytes_migrated']} bytes; told {told}; after the vanish: "
          f"unregistered {node['outputs_unregistered']}; re-read {again['wall_s']}s, map tasks "
          f"{again['maps_computed']}, cached partitions {again['cached_computed']}, "
          f"fetch failures {rep['fetch_failures']}")
    assert held > 0, f"the victim {victim} held no map output: nothing to move"
    _assert_right(again)
    assert moved["outputs_migrated"] == held, f"moved {moved['outputs_migrated']} of the {held} outputs there"
    assert moved["bytes_migrated"] > 0
    assert again["cached_computed"] == 0, "cached partitions were recomputed: their blocks were lost"
    assert again["maps_computed"] == node["outputs_unregistered"] == node["outputs_orphaned"] == 0
    assert sum(a["fetch_failed"] for a in again["attempts"]) == 0, "a reducer fetched from the gone node"
    assert all(n == 1 for n in told.values()), f"executors told to decommission other than once: {told}"
    # The plugin turned spark.decommission.enabled on for the executors' sake only: dynamic allocation
    # still kills idle executors (shuffle service or shuffle tracking on) instead of decommissioning them.
    started = next(e for e in rep["shim"]["events"] if e["action"] == "shim-started")["detail"]
    assert started["tellExecutors"] and started["sparkScaleDownKept"], started
    assert "already started decommissioning" not in logs, "decom and Spark's own trigger both told one executor"


@pytest.mark.long  # ~2 min
def test_orphaned_outputs_are_recomputed_exactly_once_the_node_goes(lab: Any) -> None:
    """Static executors, shuffle service on. After a shuffle and a cached RDD are materialised, one
    executor on a node is killed (as an operator or dynamic allocation would): its map outputs live on
    only in the node's shuffle service (orphans). The node is then gracefully decommissioned: its other
    executors' outputs move, the orphans cannot, so decom does not let go of the node while they are
    registered. The node vanishes: decom drops what is left in one step, and the re-read recomputes
    exactly the orphans (and the killed executor's cached partitions), with no FetchFailed."""
    with SparkApp(lab, executors=EXECUTORS, conf=STATIC, decom=True, name="migrate-orphans") as app:
        first, victim = _keep_and_pick(app)
        killed = min(e for e, h in app.executor_ids().items() if h == victim)
        assert app.kill_executor(killed)
        _wait(f"executor {killed} gone", lambda: killed not in app.executor_ids(), timeout=60)
        orphans = _written(first, "map", lambda t: t["executor"] == killed)
        lost_cached = _written(first, "cached", lambda t: t["executor"] == killed)
        lab.decommission([victim], timeout=600)
        _wait(f"the executors on {victim} move their data and go",
              lambda: victim not in app.executor_ids().values(), timeout=120)
        held = _node(app, victim)
        again, rep = _vanish_and_reread(lab, app, victim)
    node = rep["nodes"][victim]
    print(f"\nkilled executor {killed} on {victim}: {orphans} orphan output(s), {lost_cached} cached block(s) "
          f"lost; decom: orphaned {node['outputs_orphaned']}, migrated {node['outputs_migrated']}, let go "
          f"before the vanish: {held.get('let_go_at')}, unregistered {node['outputs_unregistered']}; re-read "
          f"map tasks {again['maps_computed']}, cached partitions {again['cached_computed']}, "
          f"fetch failures {rep['fetch_failures']}")
    assert orphans > 0, f"the killed executor {killed} wrote no map output"
    _assert_right(again)
    assert node["outputs_orphaned"] == orphans, "decom's orphan count is not Spark's"
    assert held.get("let_go_at") is None, "decom let go of a node whose shuffle service held orphans"
    assert again["maps_computed"] == node["outputs_unregistered"] == orphans, "recomputed other than the orphans"
    assert again["cached_computed"] == lost_cached
    assert sum(a["fetch_failed"] for a in again["attempts"]) == 0, "a reducer fetched from the gone node"
