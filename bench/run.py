"""`make bench-local`: the local-cluster scale-in benchmark, stock Spark vs decom in the same run.

Prints a table and saves bench/results/local-cluster.json and .md. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .local_scenarios import Outcome, lost_outputs, repeated_loss, session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: A scenario run in one session: (spark, decom's controller or None, mode) -> its outcome.
Scenario = Callable[["SparkSession", Any, str], Outcome]

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = [("scenario", "scenario"), ("mode", "mode"), ("wall_s", "wall s"), ("correct", "correct"),
           ("aborted", "aborted"), ("fetch_failed_tasks", "FetchFailed"), ("outputs_lost", "outputs lost"),
           ("map_tasks_recomputed", "map recomputed"), ("map_stage_attempts", "map attempts"),
           ("result_stage_attempts", "result attempts")]


def scenarios(quick: bool) -> list[tuple[str, Scenario]]:
    s: list[tuple[str, Scenario]] = [
        ("lost-outputs-1", lambda sp, c, m: lost_outputs(sp, c, m, lose=1)),
        ("mass-2-of-4", lambda sp, c, m: lost_outputs(sp, c, m, lose=2)),
        ("repeated-loss-2", lambda sp, c, m: repeated_loss(sp, c, m, losses=2, tell="before")),
    ]
    if not quick:
        s.append(("repeated-loss-2-told-late",
                  lambda sp, c, m: repeated_loss(sp, c, m, losses=2, tell="after")))
    return s


def run(modes: list[str], quick: bool, repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for mode in modes:
        with session(mode, conf={"spark.stage.maxConsecutiveAttempts": "2"}, app="bench") as (spark, ctl):
            for name, fn in scenarios(quick):
                if mode == "stock" and name.endswith("told-late"):
                    continue  # nothing is told on stock Spark: same as repeated-loss-2
                for i in range(repeat):
                    out: Outcome = fn(spark, ctl, mode)
                    row = out.row() | {"scenario": name, "run": i}
                    rows.append(row)
                    print(fmt_row(row), flush=True)
    return rows


def fmt_row(row: dict[str, Any]) -> str:
    return "  ".join(f"{str(row[k]):>{max(len(h), 8)}}" for k, h in COLUMNS)


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["scenario"], r["mode"]) for r in rows})
    for scenario, mode in keys:
        rs = [r for r in rows if r["scenario"] == scenario and r["mode"] == mode]
        out.append({
            "scenario": scenario, "mode": mode, "runs": len(rs),
            "wall_s_median": round(statistics.median(r["wall_s"] for r in rs), 2),
            "aborted": sum(r["aborted"] for r in rs), "correct": sum(r["correct"] for r in rs),
            "fetch_failed_tasks": sum(r["fetch_failed_tasks"] for r in rs),
            "outputs_lost": sum(r["outputs_lost"] for r in rs),
            "map_tasks_recomputed": sum(r["map_tasks_recomputed"] for r in rs),
            "result_stage_attempts": sum(r["result_stage_attempts"] for r in rs),
        })
    return out


def markdown(summ: list[dict[str, Any]], command: str, when: str) -> str:
    head = ("| scenario | mode | runs | wall s (median) | aborted | correct | FetchFailed tasks | "
            "outputs lost | map tasks recomputed | result-stage attempts |\n" + "|---" * 10 + "|\n")
    body = "".join(
        f"| {s['scenario']} | {s['mode']} | {s['runs']} | {s['wall_s_median']} | {s['aborted']} | {s['correct']} | "
        f"{s['fetch_failed_tasks']} | {s['outputs_lost']} | {s['map_tasks_recomputed']} | "
        f"{s['result_stage_attempts']} |\n" for s in summ)
    return (f"Local-cluster Spark 4.3.0, 4 executors (1 core, 1 GB), `spark.stage.maxConsecutiveAttempts=2`, "
            f"executors vanish by SIGSTOP.\nProduced by `{command}` on {when} ({platform.node()}, "
            f"{platform.machine()}).\nWall time is the reduce job after the loss (repeated-loss: the whole job).\n\n"
            + head + body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer scenarios, one run each")
    p.add_argument("--repeat", type=int, default=None, help="runs per scenario and mode (default 3, quick 1)")
    p.add_argument("--modes", default="stock,decom")
    p.add_argument("--name", default="local-cluster")
    args = p.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    print(fmt_row({k: h for k, h in COLUMNS}))
    rows = run(args.modes.split(","), args.quick, repeat)
    summ = summary(rows)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "make bench-local" if not argv else "python -m bench.run " + " ".join(argv)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"when": when, "command": command, "rows": rows,
                                                          "summary": summ}, indent=1))
    md = markdown(summ, command, when)
    (RESULTS / f"{args.name}.md").write_text(md)
    print("\n" + md)
    print(f"saved {RESULTS / (args.name + '.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
