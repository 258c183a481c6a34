"""The scale-in benchmark on the real YARN lab: every scenario in every mode, in one invocation.

    python -m bench.yarn_bench [--scenario NAME ...] [--mode NAME ...] [--quick] [--repeat N] [--json]

Scenarios (bench/yarn_scenarios.py): mid-map, mid-reduce, mass (2 of 4 nodes at once mid-reduce),
repeated-loss (a node holding map outputs gracefully decommissioned with a 5 s timeout in each of
2 consecutive attempts of the reduce stage, spark.stage.maxConsecutiveAttempts=2), vanish (link down,
then YARN marks the node LOST), spot (graceful decommission with a 10 s timeout, shorter than
spark.decommissioning.timeout.threshold). Modes: stock (shuffle service on), native (shuffle service
off + spark.decommission.enabled), decom-ess-on, decom-ess-off, and one no-loss reference run.
--quick: one run of mid-reduce and repeated-loss in modes stock and decom-ess-on (no reference run:
the right answer is always computed without Spark).

Prints a table; writes bench/results/yarn.json, yarn.md and yarn.png (needs matplotlib:
pip install 'decom[bench]'). Figures, not assertions. Needs root and network namespaces (yarnlab).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ALL_SCENARIOS = ["mid-map", "mid-reduce", "mass", "repeated-loss", "vanish", "spot"]
ALL_MODES = ["stock", "native", "decom-ess-on", "decom-ess-off"]
QUICK_SCENARIOS = ["mid-reduce", "repeated-loss"]
QUICK_MODES = ["stock", "decom-ess-on"]
COLUMNS = [("scenario", "scenario", 13), ("mode", "mode", 13), ("wall_s", "wall s", 7),
           ("correct", "correct", 7), ("aborted", "aborted", 7), ("stage_attempts", "attempts", 8),
           ("executors_on_victims", "execs on victims", 16), ("outputs_lost", "outputs lost", 12),
           ("map_tasks_recomputed", "maps recomputed", 15),
           ("fetch_failed_tasks", "FetchFailed", 11), ("drain_s", "drain s", 7),
           ("tasks_on_victims_after", "tasks on victim after", 21)]


def fmt_row(row: dict[str, Any]) -> str:
    return "  ".join(f"{str(row.get(k, '')):>{w}}" for k, _, w in COLUMNS)


def header() -> str:
    return fmt_row({k: h for k, h, _ in COLUMNS})


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    seen: list[tuple[str, str]] = []
    for r in rows:
        if (r["scenario"], r["mode"]) not in seen:
            seen.append((r["scenario"], r["mode"]))
    for scenario, mode in seen:
        rs = [r for r in rows if r["scenario"] == scenario and r["mode"] == mode]
        drains = [r["drain_s"] for r in rs if r["drain_s"] is not None]
        out.append({
            "scenario": scenario, "mode": mode, "runs": len(rs),
            "wall_s_median": round(statistics.median(r["wall_s"] for r in rs), 1),
            "aborted": sum(r["aborted"] for r in rs), "correct": sum(r["correct"] for r in rs),
            "stage_attempts": sum(r["stage_attempts"] for r in rs),
            "fetch_failed_tasks": sum(r["fetch_failed_tasks"] for r in rs),
            "executors_on_victims": sum(r.get("executors_on_victims", 0) for r in rs),
            "outputs_lost": sum(r["outputs_lost"] for r in rs),
            "map_tasks_recomputed": sum(r["map_tasks_recomputed"] for r in rs),
            "drain_s_median": round(statistics.median(drains), 1) if drains else None,
            "tasks_on_victims_after": sum(r["tasks_on_victims_after"] for r in rs),
        })
    return out


def markdown(summ: list[dict[str, Any]], rows: list[dict[str, Any]], command: str, when: str) -> str:
    head = ("| scenario | mode | runs | wall s (median) | aborted | correct | stage attempts | executors on victims | "
            "map outputs lost | map tasks recomputed | FetchFailed tasks | drain s (median) | tasks on victim after |\n"
            + "|---" * 13 + "|\n")
    body = "".join(
        f"| {s['scenario']} | {s['mode']} | {s['runs']} | {s['wall_s_median']} | {s['aborted']} | {s['correct']} | "
        f"{s['stage_attempts']} | {s['executors_on_victims']} | {s['outputs_lost']} | {s['map_tasks_recomputed']} | "
        f"{s['fetch_failed_tasks']} | "
        f"{'-' if s['drain_s_median'] is None else s['drain_s_median']} | {s['tasks_on_victims_after']} |\n"
        for s in summ)
    errors = "".join(f"- {r['scenario']}/{r['mode']} run {r['run']}: {r['error'][:300]}\n"
                     for r in rows if r["aborted"])
    behaviours = sorted({str(r.get("yarn", "apache")) for r in rows}) or ["apache"]
    yarn = ", ".join("Apache Hadoop's (a DECOMMISSIONING node stays while an app that ran there lives)" if b == "apache"
                     else "EMR's drain emulated (wait-for-applications=false; not Apache Hadoop's)" for b in behaviours)
    return (
        "# Scale-in on a real YARN cluster (yarnlab)\n\n"
        f"Produced by `{command}` on {when} ({platform.node()}, {platform.machine()}).\n\n"
        f"YARN behaviour: {yarn}.\n\n"
        "Apache Hadoop 3.5.0 YARN, 4 NodeManagers in network namespaces on one 2-core machine, each with "
        "Spark's shuffle service; Spark 4.3.0 (pyspark, client mode), 4 executors (1 core, 1 GB), dynamic "
        "allocation (idle timeout 20 s), `spark.stage.maxConsecutiveAttempts=2`. Job: 40,000 rows, 8 map "
        "tasks, 24 reduce tasks sleeping 2 s each. Nodes are decommissioned through `rmadmin -refreshNodes -g` "
        "or made to vanish (link down). Figures come from Spark's status REST API (stage attempts, task "
        "status/host/launch time) and the RM's node states.\n\n"
        "Columns: wall = the job; stage attempts = all attempts of all its stages; executors on victims = "
        "executors running on the victim node(s) when told to go (YARN places them: one node may run two, "
        "which halves the slots left when it is excluded); map outputs lost = "
        "outputs held on the victim node(s) when they were decommissioned; drain = graceful request -> "
        "DECOMMISSIONED in the RM (while the app still runs); tasks on victim after = tasks launched on "
        "the node after decom (or, without decom, the RM) showed it leaving.\n\n"
        + head + body + ("\nAborted runs:\n" + errors if errors else ""))


def chart(summ: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'decom[bench]'): no chart", file=sys.stderr)
        return False
    scenarios = list(dict.fromkeys(s["scenario"] for s in summ))
    modes = list(dict.fromkeys(s["mode"] for s in summ))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.8 / max(1, len(modes))
    panels = [("wall_s_median", "job wall time (s); x = aborted"), ("fetch_failed_tasks", "FetchFailed tasks"),
              ("map_tasks_recomputed", "map tasks recomputed (black: outputs lost)")]
    for ax, (key, title) in zip(axes, panels, strict=True):
        for i, mode in enumerate(modes):
            xs, ys, aborted, lost = [], [], [], []
            for j, sc in enumerate(scenarios):
                s = next((s for s in summ if s["scenario"] == sc and s["mode"] == mode), None)
                if s is None:
                    continue
                xs.append(j + i * width)
                ys.append(s[key] or 0)
                aborted.append(s["aborted"] > 0)
                lost.append(s["outputs_lost"])
            bars = ax.bar(xs, ys, width, label=mode)
            if key == "map_tasks_recomputed":
                ax.scatter(xs, lost, marker="_", s=400, color="black", zorder=3,
                           label="outputs lost" if i == 0 else None)
            if key == "wall_s_median":
                for b, ab in zip(bars, aborted, strict=True):
                    if ab:
                        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), "x", ha="center", va="bottom",
                                color="red", fontsize=14, fontweight="bold")
        ax.set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(scenarios))])
        ax.set_xticklabels(scenarios, rotation=15)
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.suptitle("decom vs stock Spark 4.3 on a real YARN cluster (yarnlab)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def run(scenarios: list[str], modes: list[str], repeat: int, nodes: int, as_json: bool,
        quick: bool = False, emulate_emr_drain: bool = False) -> list[dict[str, Any]]:
    from yarnlab import YarnLab

    from .yarn_scenarios import repair, run_scenario

    def log(msg: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr if as_json else sys.stdout, flush=True)

    rows: list[dict[str, Any]] = []
    out = sys.stderr if as_json else sys.stdout
    with YarnLab(nodes=nodes, shuffle_service=True, emulate_emr_drain=emulate_emr_drain) as lab:
        log(f"lab: {nodes} nodes up in {lab.startup_seconds:.0f}s"
            + (", EMR's drain emulated (not Apache Hadoop's behaviour)" if emulate_emr_drain else ""))
        plan = ([] if quick else [("no-loss", "reference", 0)]) + [(sc, m, i) for sc in scenarios for m in modes
                                                                   for i in range(repeat)]
        print(header(), file=out, flush=True)
        for scenario, mode, i in plan:
            try:
                o = run_scenario(lab, scenario, mode, log=log)
                row = o.row() | {"run": i}
            except Exception as e:  # noqa: BLE001 - one broken run must not lose the others
                log(f"{scenario}/{mode}: run failed: {type(e).__name__}: {str(e)[:500]}")
                row = {"scenario": scenario, "mode": mode, "run": i, "failed": f"{type(e).__name__}: {e}"[:2000]}
            finally:
                repair(lab)
            rows.append(row)
            if "failed" not in row:
                print(fmt_row(row), file=out, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.yarn_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", action="append", choices=ALL_SCENARIOS, help="(repeatable) default: all")
    p.add_argument("--mode", action="append", choices=ALL_MODES, help="(repeatable) default: all")
    p.add_argument("--quick", action="store_true", help="mid-reduce + repeated-loss, stock + decom-ess-on, 1 run")
    p.add_argument("--repeat", type=int, default=None, help="runs per scenario and mode (default 1)")
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--emulate-emr-drain", action="store_true",
                   help="let a DECOMMISSIONING node go once its containers are gone, as EMR's private "
                        "wait-for-applications=false does; results say so (default: Apache Hadoop's behaviour)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout (progress on stderr)")
    p.add_argument("--out", default="yarn", help="results file stem under bench/results/ (default yarn)")
    p.add_argument("--replot", action="store_true", help="only redraw the chart from the saved JSON")
    args = p.parse_args(argv)
    if args.replot:
        doc = json.loads((RESULTS / f"{args.out}.json").read_text())
        return 0 if chart(doc["summary"], RESULTS / f"{args.out}.png") else 1
    scenarios = args.scenario or (QUICK_SCENARIOS if args.quick else ALL_SCENARIOS)
    modes = args.mode or (QUICK_MODES if args.quick else ALL_MODES)
    repeat = args.repeat or 1

    from yarnlab import LabUnavailable

    t0 = time.monotonic()
    try:
        rows = run(scenarios, modes, repeat, args.nodes, args.json, quick=args.quick,
                   emulate_emr_drain=args.emulate_emr_drain)
    except LabUnavailable as e:
        print(f"yarn_bench: the YARN lab is unavailable here: {e}", file=sys.stderr)
        return 2
    good = [r for r in rows if "failed" not in r]
    summ = summary(good)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m bench.yarn_bench" + (" " + " ".join(argv if argv is not None else sys.argv[1:])
                                              if (argv if argv is not None else sys.argv[1:]) else "")
    RESULTS.mkdir(exist_ok=True)
    doc = {"when": when, "command": command, "seconds": round(time.monotonic() - t0), "scenarios": scenarios,
           "modes": modes, "rows": rows, "summary": summ}
    (RESULTS / f"{args.out}.json").write_text(json.dumps(doc, indent=1, default=str))
    md = markdown(summ, good, command, when)
    (RESULTS / f"{args.out}.md").write_text(md)
    png = chart(summ, RESULTS / f"{args.out}.png")
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        print("\n" + md)
        print(f"saved {RESULTS / (args.out + '.json')}, .md" + (", .png" if png else "")
              + f" in {time.monotonic() - t0:.0f}s")
    return 1 if len(good) < len(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
