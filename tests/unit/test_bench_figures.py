"""The scale-in benchmark's arithmetic (bench/yarn_bench.py): what it runs, and how runs become the README's
medians, worst runs and ratios. The runs themselves need the lab (make bench)."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

import pytest

from bench.tpch import Mismatch, compare
from bench.yarn_bench import FULL_EXECUTORS, Cell, markdown, plan, ratios, summary
from yarnlab.sparkapp import decode_cell, encode_cell


def row(mode: str, run: int, wall: float, *, scenario: str = "mid-reduce", aborted: bool = False,
        ff: int = 0, drain: float | None = 30.0, **kw: Any) -> dict[str, Any]:
    cell = Cell("synthetic", 4, scenario, mode)
    return {"cell": cell.key, "mode": mode, "run": run, "scenario": scenario, "workload": "synthetic",
            "executors": 4, "nm_expiry_s": 10.0, "wall_s": wall, "aborted": aborted, "correct": not aborted,
            "error": "aborted" if aborted else "", "fetch_failed_tasks": ff, "stage_attempts": 2 + ff,
            "outputs_lost": 0, "outputs_migrated": 0, "outputs_orphaned": 0, "tasks_recomputed": 0,
            "map_tasks_recomputed": 0, "tasks_on_victims_after": 0, "let_go_s": None, "drain_s": drain, **kw}


def test_the_plan_interleaves_runs_and_holds_every_cell_three_times() -> None:
    todo = plan(["mid-reduce", "vanish"], ["stock", "decom", "decom-agent"], ["synthetic", "tpch-q9"], 3,
                quick=False, default_expiry=False)
    cells = {c for c, _ in todo}
    # synthetic: 2 scenarios x 3 modes; without headroom and TPC-H: mid-reduce, stock and decom-agent
    assert len(cells) == 2 * 3 + 2 + 2
    assert all(sum(1 for c, _ in todo if c == cell) == 3 for cell in cells)
    assert [i for _, i in todo[:len(cells)]] == [0] * len(cells), "run 1 of every cell before any run 2"
    assert {c.mode for c in cells if c.executors == FULL_EXECUTORS} == {"stock", "decom-agent"}
    assert {c.scenario for c in cells if c.workload == "tpch-q9"} == {"mid-reduce"}
    assert all(c.nm_expiry_s == 10.0 for c in cells)
    slow = plan(["vanish"], ["stock", "decom", "decom-agent"], ["synthetic"], 1, quick=False, default_expiry=True)
    assert [(c.scenario, c.mode, c.nm_expiry_s) for c, _ in slow] == [("vanish", "stock", 600.0),
                                                                      ("vanish", "decom-agent", 600.0)]
    quick = plan([], [], [], 3, quick=True, default_expiry=False)
    assert [(c.scenario, c.mode, i) for c, i in quick] == [("mid-reduce", "stock", 0), ("mid-reduce", "decom-agent", 0)]


def test_summary_gives_the_median_and_the_worst_of_the_finished_runs() -> None:
    rows = [row("stock", 0, 50.0), row("stock", 1, 70.0, aborted=True), row("stock", 2, 40.0, ff=3),
            row("decom", 0, 55.0, drain=10.0), row("decom", 1, 52.0, drain=12.0), row("decom", 2, 90.0, drain=11.0)]
    s = {x["mode"]: x for x in summary(rows)}
    assert (s["stock"]["wall_s_median"], s["stock"]["wall_s_worst"], s["stock"]["aborted"]) == (45.0, 50.0, 1)
    assert (s["stock"]["fetch_failed_median"], s["stock"]["fetch_failed_worst"]) == (0, 3)
    assert (s["decom"]["wall_s_median"], s["decom"]["wall_s_worst"]) == (55.0, 90.0)
    assert (s["decom"]["drain_s_median"], s["decom"]["drain_s_worst"]) == (11.0, 12.0)


def test_ratios_pair_runs_and_compare_only_those_both_finished() -> None:
    rows = [row("stock", 0, 50.0, scenario="vanish"), row("stock", 1, 0.0, scenario="vanish", aborted=True),
            row("stock", 2, 60.0, scenario="vanish"), row("stock", 3, 40.0, scenario="vanish"),
            row("decom-agent", 0, 55.0, scenario="vanish"), row("decom-agent", 1, 300.0, scenario="vanish"),
            row("decom-agent", 2, 65.0, scenario="vanish"),
            row("decom-agent", 3, 0.0, scenario="vanish", aborted=True)]
    (r,) = ratios(rows)
    assert r["runs_compared"] == 2, "run 1 (stock aborted) and run 3 (decom aborted) are not compared"
    assert (r["stock_median_s"], r["decom_median_s"], r["ratio"], r["ratio_worst"]) == (55.0, 60.0, 1.09, 1.1)
    assert r["decom_finished_where_stock_aborted"] == 1 and r["decom_aborted_where_stock_finished"] == 1
    graceful = [row("stock", 0, 50.0), row("stock", 1, 40.0), row("decom-agent", 0, 45.0), row("decom-agent", 1, 55.0)]
    (g,) = ratios(graceful)
    assert (g["ratio"], g["ratio_worst"], g["runs_compared"]) == (1.11, 1.38, 2)


def test_the_markdown_names_the_command_and_flags_aborts() -> None:
    rows = [row("stock", 0, 50.0, aborted=True), row("decom-agent", 0, 45.0)]
    doc = {"command": "python -m bench.yarn_bench --runs 1", "when": "2026-12-01 23:00 UTC", "seconds": 600,
           "rows": rows, "summary": summary(rows), "ratios": ratios(rows)}
    md = markdown(doc)
    assert "`python -m bench.yarn_bench --runs 1` on 2026-12-01 23:00 UTC" in md
    assert "1/1 aborted" in md and "Aborted or wrong runs" in md


def test_result_cells_survive_json_exactly_and_a_wrong_answer_is_caught() -> None:
    rows = [(decimal.Decimal("12345.6789"), datetime.date(1995, 3, 15), "BRAZIL", 7, 0.5)]
    sent = json.loads(json.dumps([[encode_cell(v) for v in r] for r in rows]))
    back = [tuple(decode_cell(v) for v in r) for r in sent]
    assert back == rows
    compare(9, back, rows)
    off_by_a_cent = [(decimal.Decimal("12345.6689"), *rows[0][1:])]
    with pytest.raises(Mismatch):
        compare(9, back, off_by_a_cent)
