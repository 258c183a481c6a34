"""make chaos's long mode without a lab: its schedules (seeded, versioned) and the figures it merges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import chaos_long
from bench.chaos_long import GENERATOR, SCALE_IN, abort_cause, decom_dropped, schedule, summarize
from yarnlab.sparkapp import MOD, job_checksum


def test_a_seed_always_means_the_same_schedule_and_seeds_differ() -> None:
    assert schedule(7) == schedule(7) and schedule(7, ha=True) == schedule(7, ha=True)
    assert len({chaos_long.describe(schedule(s)) for s in range(1, 30)}) == 29
    assert schedule(7)["generator"] == GENERATOR and schedule(7) != schedule(7, generator=2)


def test_an_older_generator_still_makes_the_schedules_it_made() -> None:
    # as bench/results/chaos-long-1.md (2026-12-02) printed seed 11, which ran with generator 2
    assert chaos_long.describe(schedule(11, generator=2)) == (
        "seed 11 (gen 2): join, shuffle service on, dynamic allocation off; t=4.0s NodeManager restart (3.5s down); "
        "t=5.4s 2 node(s) vanish, back 27.2s later; t=9.7s 1 node(s) vanish, back 24.0s later; t=29.5s 1 node(s) "
        "vanish, back 8.0s later; t=34.4s decommission 1 node(s), timeout 120s; t=35.5s decommission 1 node(s), "
        "timeout 3600s; t=36.0s decommission 1 node(s), timeout 900s")
    with pytest.raises(ValueError, match="generator 1 is not one of"):
        schedule(1, generator=1)


@pytest.mark.parametrize("generator", chaos_long.GENERATORS)
def test_fifty_seeds_hold_every_event_kind_and_over_200_scale_in_events(generator: int) -> None:
    scheds = [schedule(s, generator=generator) for s in range(1, 51)]
    kinds = {e.how for s in scheds for e in s["events"]}
    assert kinds == {"graceful", "vanish", "nm-restart", "rm-restart", "agent-restart"}
    assert "rm-failover" in {e.how for s in range(1, 11) for e in schedule(s, ha=True, generator=generator)["events"]}
    assert sum(e.how in SCALE_IN for s in scheds for e in s["events"]) >= (200 if generator == 2 else 250)
    graceful = [e for s in scheds for e in s["events"] if e.how == "graceful"]
    assert min(e.timeout for e in graceful) == 10 and max(e.timeout for e in graceful) == 3600
    assert any(e.back_after is not None and e.back_after < e.timeout for e in graceful), "no recommission"
    assert {e.nodes for e in graceful} == {1, 2, 3}
    assert {s["workload"] for s in scheds} >= {"join", "agg", "cached", "session", "tpch-q3", "tpch-q9"}
    assert {(s["shuffle_service"], s["dynamic_allocation"]) for s in scheds} == {
        (True, True), (True, False), (False, True), (False, False)}
    for s in scheds:  # recommissions come before the timeout, and every event lands inside its job
        assert all(e.back_after is None or e.how != "graceful" or e.back_after < e.timeout for e in s["events"])
        assert all(3.0 <= (e.at_s or 0) <= chaos_long.DURATION[s["workload"]] for e in s["events"])


def test_a_session_answers_the_sum_of_its_queries() -> None:
    session = chaos_long.SESSION
    assert job_checksum(session) == sum(job_checksum(q) for q in session["queries"]) % MOD  # type: ignore[union-attr]


def _row(seed: int, mode: str, wall: float, **kw: Any) -> dict[str, Any]:
    row = {"seed": seed, "generator": 2, "ha": False, "mode": mode, "dynamic_allocation": True, "wall_s": wall,
           "correct": True, "aborted": False, "mismatch": False, "error": "", "scale_in_events": 4, "other_events": 1,
           "fetch_failed_tasks": 0, "outputs_lost": 3, "outputs_unregistered": 3, "tasks_recomputed": 3,
           "drain_by_node": {"n1": 5.0}, "timeline": [], "abort_cause": None, "stage_attempts": 2}
    row.update(kw)
    return row


@pytest.mark.parametrize(("error", "timeline", "cause"), [
    ("Job aborted due to stage failure: ShuffleMapStage 3 has failed the maximum allowable number of times: 2",
     [{"how": "graceful"}], "scale-in"),
    ("SparkContext was shut down", [{"how": "rm-restart"}], "rm-outage"),
    ("SparkContext was shut down", [{"how": "vanish"}], "other"),
    ("Job aborted due to stage failure: Task 3 in stage 1.0 failed 4 times: OOM", [{"how": "rm-restart"}], "other"),
])
def test_aborts_are_put_down_to_their_cause(error: str, timeline: list[dict[str, str]], cause: str) -> None:
    scale_in = sum(e["how"] in SCALE_IN for e in timeline)
    assert abort_cause({"aborted": True, "error": error, "timeline": timeline, "dynamic_allocation": False
                        if "failed 4" in error else True, "scale_in_events": scale_in}) == cause


def test_ratios_count_only_seeds_stock_finished_and_name_the_slow_ones() -> None:
    rows = [_row(1, "stock", 40.0), _row(1, "decom", 60.0),
            _row(2, "stock", 40.0), _row(2, "decom", 40.0, outputs_unregistered=4, tasks_recomputed=5),
            _row(4, "stock", 40.0, outputs_lost=2, tasks_recomputed=5),
            _row(3, "stock", 50.0, aborted=True, correct=False, abort_cause="scale-in", error="stage failure"),
            _row(3, "decom", 45.0)]
    s = summarize(rows)
    assert s["decom_over_stock"]["seeds"] == 2 and s["decom_over_stock"]["max"] == 1.5
    assert s["decom_over_stock"]["over_1_2x"] == [{"seed": 1, "generator": 2, "ha": False, "ratio": 1.5}]
    assert s["recompute_differs"] == [{"seed": 2, "generator": 2, "ha": False, "mode": "decom", "lost": 4,
                                       "recomputed": 5}]
    assert s["stock"]["aborts_by_cause"]["scale-in"] == 1 and s["decom"]["aborts"] == 0
    assert s["decom"]["scale_in_events"] == 12


def test_lost_is_every_output_decom_dropped_also_on_a_node_the_rm_showed_running() -> None:
    # HA seed 6's shape: an NM restart within the liveness expiry (the RM never showed the node change) took
    # 2 outputs with its local dirs; a later decommission unregistered 1. The node figures saw 0.
    events = [{"t": 12.2, "action": "outputs-unregistered", "target": "n1", "detail": {"outputs": 0}},
              {"t": 31.1, "action": "local-dirs-gone", "target": "n2", "detail": {"executors": ["3"], "outputs": 2}},
              {"t": 34.6, "action": "outputs-unregistered", "target": "n6", "detail": {"outputs": 1}},
              {"t": 34.6, "action": "outputs-migrated", "target": "n4", "detail": {"outputs": 5}}]
    row = _row(6, "decom", 50.0, outputs_unregistered=0, tasks_recomputed=3, shim_events=events)
    assert decom_dropped(row) == 3
    assert decom_dropped(_row(6, "decom", 50.0, outputs_unregistered=4)) == 4  # rows without the shim's events
    assert summarize([_row(6, "stock", 50.0), row])["recompute_differs"] == []
    assert summarize([_row(6, "stock", 50.0), {**row, "tasks_recomputed": 4}])["recompute_differs"][0]["lost"] == 3


def test_merge_joins_chunks_of_both_generators_and_leaves_out_unknown_ones_and_repeats(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos_long, "RESULTS", tmp_path)

    def chunk(name: str, rows: list[dict[str, Any]], generator: int = 2, modes: list[str] | None = None) -> Path:
        if generator == 2:  # as the chunks made before generator 3 were written: one generator, seed keys
            for r in rows:
                del r["generator"]
            head: dict[str, Any] = {"generator": 2, "schedules": {str(r["seed"]): f"s{r['seed']}" for r in rows}}
        else:
            for r in rows:
                r["generator"] = generator
            head = {"generators": [generator], "schedules": {f"g{generator}-{r['seed']}": f"g{generator} s{r['seed']}"
                                                             for r in rows}}
        doc = {**head, "chunks": [{"command": name, "when": "w", "seconds": 1, "seeds": [], "ha": False,
                                   **({"modes": modes} if modes else {})}], "rows": rows}
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
        return tmp_path / f"{name}.json"

    paths = [chunk("a", [_row(1, "stock", 40.0), _row(1, "decom", 41.0), _row(3, "decom", 0.0, failed="lab")]),
             chunk("b", [_row(1, "decom", 99.0), _row(2, "stock", 40.0), _row(2, "decom", 42.0)]),
             chunk("c", [_row(3, "decom", 43.0)]),
             chunk("d", [_row(2, "stock", 50.0)]),
             chunk("new", [_row(1, "stock", 40.0), _row(1, "decom", 80.0)], generator=3),
             chunk("replay", [_row(2, "decom", 30.0)], generator=3, modes=["decom"]),  # --mode: left out
             chunk("g2-decom-only", [_row(4, "decom", 30.0)]),  # a replay from before chunks said their modes
             chunk("old", [_row(9, "decom", 1.0, generator=1)], generator=1)]
    assert chaos_long.merge(paths, "merged") == 0
    doc = json.loads((tmp_path / "merged.json").read_text())
    assert [(r["generator"], r["seed"], r["mode"], r["wall_s"]) for r in doc["rows"]] == [
        (2, 1, "stock", 40.0), (2, 1, "decom", 41.0), (2, 3, "decom", 43.0), (2, 2, "stock", 40.0),
        (2, 2, "decom", 42.0), (3, 1, "stock", 40.0), (3, 1, "decom", 80.0)]
    assert [c["command"] for c in doc["chunks"]] == ["a", "b", "c", "new"], "a chunk that added nothing is listed"
    assert [c["generator"] for c in doc["chunks"]] == [2, 2, 2, 3]
    # seed 1 of generator 3 is another schedule than seed 1 of generator 2: its ratio is its own
    assert doc["summary"]["decom_over_stock"]["over_1_2x"] == [{"seed": 1, "generator": 3, "ha": False, "ratio": 2.0}]
    md = (tmp_path / "merged.md").read_text()
    assert doc["summary"]["decom"]["runs"] == 4 and "| decom | 4 |" in md
    assert "| 1 | g3 s1 | decom | 80.0 |" in md and "| 1 | s1 | decom | 41.0 |" in md
    assert "generators (bench/chaos_long.py): 2 (5 NodeManagers), 3 (6 NodeManagers)" in md


def test_a_partition_computed_again_counts_once_per_rerun_also_in_a_later_job_or_attempt() -> None:
    from types import SimpleNamespace

    from bench.yarn_scenarios import YarnOutcome, _figures

    def attempt(stage: int, attempt: int, rdds: list[int], parts: list[int]) -> dict[str, Any]:
        # a later attempt runs only the missing partitions: its task indexes start at 0 again
        return {"stage": stage, "attempt": attempt, "rdds": rdds, "fetch_failed": 0,
                "tasks": [{"index": i, "partition": p, "status": "SUCCESS", "host": "h", "launch": 1.0, "error": ""}
                          for i, p in enumerate(parts)]}

    attempts = [attempt(1, 0, [1, 2], [0, 1, 2, 3]),
                attempt(1, 1, [1, 2], [3]),  # a lost output, re-run by the next attempt
                attempt(2, 0, [3], [0, 1]),  # the first job's result stage: not a map stage
                attempt(5, 0, [1, 2], [2]),  # a later job needed partition 2 of the same map stage again
                attempt(6, 0, [4], [0])]  # the later job's result stage
    watch = SimpleNamespace(changes=[], first=lambda *a: None)
    out = YarnOutcome(scenario="s", mode="decom")
    _figures(out, attempts, None, watch, {}, 0.0)  # type: ignore[arg-type]
    assert (out.tasks_recomputed, out.partitions_recomputed_twice) == (2, 0)
    out = YarnOutcome(scenario="s", mode="decom")
    _figures(out, [*attempts, attempt(5, 1, [1, 2], [2])], None, watch, {}, 0.0)  # type: ignore[arg-type]
    assert (out.tasks_recomputed, out.partitions_recomputed_twice) == (3, 1)
