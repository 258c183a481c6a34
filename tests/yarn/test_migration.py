"""Graceful scale-in, part 2, on Apache Hadoop 3.5 with the shuffle service on: a DECOMMISSIONING node's
executors move their shuffle outputs and cached blocks to healthy nodes (Spark's own block migration,
which decom triggers and follows; SPARK-39018 gates only Spark's YARN trigger), decom lets them go and
then says the app holds nothing on the node. When the node then vanishes, nothing it held is lost.
Every figure comes from Spark's own records (status REST API, accumulators) or the RM.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bench.yarn_scenarios import pick_victims
from yarnlab.sparkapp import SparkApp, shuffle_checksum

pytestmark = pytest.mark.yarn

EXECUTORS = 4
CONF = {
    "spark.dynamicAllocation.enabled": "true",
    "spark.dynamicAllocation.minExecutors": "0",
    "spark.dynamicAllocation.initialExecutors": str(EXECUTORS),
    "spark.dynamicAllocation.maxExecutors": str(EXECUTORS),
    "spark.dynamicAllocation.executorIdleTimeout": "600s",
    "spark.python.worker.reuse": "true",
}


def _wait(what: str, cond: Any, timeout: float, poll: float = 0.5) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(poll)
    raise TimeoutError(f"not within {timeout:.0f} s: {what}")


def _map_outputs_on(kept: dict[str, Any], host: str) -> int:
    """Map outputs of the kept shuffle written on `host`: its map stage's successful tasks there."""
    map_stage = min(a["stage"] for a in kept["attempts"])
    return sum(1 for a in kept["attempts"] if a["stage"] == map_stage
               for t in a["tasks"] if t["host"] == host and t["status"] == "SUCCESS")


def test_moved_outputs_and_cached_blocks_outlive_the_node(lab: Any) -> None:
    """A shuffle and a cached RDD are materialised on 4 executors. A node with executors is gracefully
    decommissioned (600 s): its executors move their map outputs and cached blocks to the other nodes,
    decom lets them go and says the app holds nothing there. The node then vanishes. Reading the shuffle
    and the cached RDD again recomputes nothing (no map task, no cached partition), meets no FetchFailed,
    and gives the right answers; outputs decom had to drop (recomputed) equal the orphans (none here)."""
    spec = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 8, "parts": 8}
    with SparkApp(lab, executors=EXECUTORS, conf=CONF, decom=True, name="migrate-then-vanish") as app:
        first = app.keep(**spec)
        assert not first["aborted"], first["error"]
        victims, _ = pick_victims(app, 1, {app.am_host()})
        assert victims, f"no executor node besides the AM's: {app.executor_ids()}"
        victim = victims[0]
        held = _map_outputs_on(first, victim)
        lab.decommission([victim], timeout=600)

        def let_go() -> dict[str, Any] | None:
            rep = app.report()
            node = (rep or {}).get("nodes", {}).get(victim, {})
            return node if node.get("let_go_at") else None

        let_go_s = _wait(f"decom lets go of {victim}", lambda: let_go() is not None, timeout=120)
        moved = let_go()
        assert moved is not None
        lab.vanish(victim)
        try:
            _wait(f"the RM says {victim} is LOST", lambda: lab.node_states().get(victim) == "LOST", timeout=90)
            _wait("decom handles the node as gone",
                  lambda: (app.report() or {})["nodes"][victim]["state"] == "DECOMMISSIONED", timeout=30)
            again = app.reread()
            rep = app.report()
        finally:
            lab.restore(victim)
    assert rep is not None
    node = rep["nodes"][victim]
    print(f"\n{victim} held {held} map output(s); let go {let_go_s:.1f}s after the graceful request: "
          f"migrated {moved['outputs_migrated']}, orphaned {moved['outputs_orphaned']}, "
          f"{moved['bytes_migrated']} bytes; after the vanish: unregistered {node['outputs_unregistered']}; "
          f"re-read {again['wall_s']}s, map tasks {again['maps_computed']}, cached partitions "
          f"{again['cached_computed']}, fetch failures {rep['fetch_failures']}")
    assert held > 0, f"the victim {victim} held no map output: nothing to move"
    assert not again["aborted"], again["error"]
    assert again["checksum"] == shuffle_checksum(spec["n"], spec["keys"]), "wrong answer (shuffle)"
    assert again["cached_sum"] == sum(range(spec["n"])), "wrong answer (cached)"
    assert moved["outputs_migrated"] == held, f"moved {moved['outputs_migrated']} of the {held} outputs there"
    assert moved["bytes_migrated"] > 0
    assert again["cached_computed"] == 0, "cached partitions were recomputed: their blocks were lost"
    assert again["maps_computed"] == node["outputs_unregistered"] == node["outputs_orphaned"] == 0
    assert sum(a["fetch_failed"] for a in again["attempts"]) == 0, "a reducer fetched from the gone node"
