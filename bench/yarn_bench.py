"""The scale-in benchmark on the real YARN lab, as users run Spark: Apache Hadoop's behaviour, Spark's
default network timeouts and shuffle retries, the shuffle service on, dynamic allocation, a synthetic
job and TPC-H, 3 runs per cell, all in one invocation.

    python -m bench.yarn_bench [--quick] [--runs N] [--scenario NAME ...] [--mode NAME ...]
                               [--workload NAME ...] [--default-expiry] [--out STEM]

Scenarios (bench/yarn_scenarios.py): mid-map, mid-reduce, mass (2 of 4 nodes at once mid-reduce),
repeated-loss (a node holding map outputs gracefully decommissioned with a 5 s timeout in each of 2
consecutive attempts of the reduce stage, spark.stage.maxConsecutiveAttempts=2), spot (graceful with a
15 s timeout), vanish (link down; YARN marks the node LOST after the lab's NodeManager liveness expiry,
10 s). Graceful decommissions go through `rmadmin -refreshNodes -g` with the scenario's timeout.

Modes: stock (Spark 4.3), decom (decom with the shuffle service on), decom-agent (the same, reporting
to the lab's decom agent, which finishes a node's decommission once no app needs it).

Cells (workload x geometry x scenario x mode), each run --runs times (3), interleaved by run, ~2 hours:
- synthetic, 4 executors (room for replacements on the 4-node lab): every scenario, every mode;
- synthetic, 7 executors (the lab full: no room for replacements): mid-reduce, stock and decom-agent;
- TPC-H SF 1, q9 (DuckDB's dbgen, answers checked against DuckDB's): mid-reduce, stock and decom-agent
  (--workload tpch-q18 adds q18).
--default-expiry runs only the vanish, on a lab with YARN's default liveness expiry (10 min), stock and
decom-agent. --quick: synthetic mid-reduce, stock and decom-agent, one run each.

After its job each app stays up 5 s (an app with more to do), then stops: on Apache Hadoop a node that
ran the app's containers leaves DECOMMISSIONING only then, or once the agent releases it.

Prints a table; writes bench/results/<stem>.json (every run, written as it goes), .md and .png (needs
matplotlib: pip install 'decom[bench]'). Figures, not assertions. Needs root and network namespaces.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TPCH_ROOT = Path(__file__).resolve().parent.parent / ".bench-data" / "tpch"
TPCH_SF = 1.0
ALL_SCENARIOS = ["mid-map", "mid-reduce", "mass", "repeated-loss", "spot", "vanish"]
#: bench name -> yarn_scenarios mode
MODES = {"stock": "stock", "decom": "decom-ess-on", "decom-agent": "decom-agent",
         # Spark's own decommissioning (shuffle service off, blocks migrated): on request only.
         "native": "native"}
DEFAULT_MODES = ["stock", "decom", "decom-agent"]
HEADROOM_EXECUTORS = 4
FULL_EXECUTORS = 7  # 4 nodes x 2 vcores, less the AM's
TPCH_QUERIES = (9,)
#: Extra TPC-H queries --workload can name (not in the default plan: it would not fit in 2 hours).
MORE_TPCH_QUERIES = (18,)
TPCH_SCENARIOS = ("mid-reduce",)
TAIL_S = 5.0
#: The synthetic job of the benchmark: yarn_scenarios.JOB with 24 reduce tasks (2 s each).
SYNTHETIC = {"reduces": 24}
DEFAULT_EXPIRY_MS = 600_000  # yarn.nm.liveness-monitor.expiry-interval-ms's default


@dataclass(frozen=True)
class Cell:
    workload: str  # "synthetic" or "tpch-q<N>"
    executors: int
    scenario: str
    mode: str
    nm_expiry_s: float = 10.0

    @property
    def key(self) -> str:
        geometry = "no headroom" if self.executors >= FULL_EXECUTORS else "headroom"
        expiry = f", expiry {self.nm_expiry_s:g}s" if self.nm_expiry_s != 10.0 else ""
        return f"{self.workload} / {geometry}{expiry} / {self.scenario}"


def plan(scenarios: list[str], modes: list[str], workloads: list[str], runs: int, quick: bool,
         default_expiry: bool) -> list[tuple[Cell, int]]:
    """Every (cell, run index), interleaved by run so that drift on the machine hits every mode alike.
    default_expiry: only the vanish runs at YARN's default liveness expiry (stock and decom-agent)."""
    if quick:
        return [(Cell("synthetic", HEADROOM_EXECUTORS, "mid-reduce", m), 0) for m in ("stock", "decom-agent")]
    if default_expiry:
        return [(Cell("synthetic", HEADROOM_EXECUTORS, "vanish", m, DEFAULT_EXPIRY_MS / 1000), i)
                for i in range(runs) for m in modes if m != "decom"]
    cells: list[Cell] = []
    if "synthetic" in workloads:
        cells += [Cell("synthetic", HEADROOM_EXECUTORS, sc, m) for sc in scenarios for m in modes]
        if "mid-reduce" in scenarios:  # the geometry without headroom: stock against decom at its fullest
            cells += [Cell("synthetic", FULL_EXECUTORS, "mid-reduce", m) for m in modes if m != "decom"]
    for q in TPCH_QUERIES + MORE_TPCH_QUERIES:
        if f"tpch-q{q}" in workloads:
            cells += [Cell(f"tpch-q{q}", HEADROOM_EXECUTORS, sc, m) for sc in TPCH_SCENARIOS if sc in scenarios
                      for m in modes if m != "decom"]
    return [(c, i) for i in range(runs) for c in cells]


# ---- the runs -------------------------------------------------------------------------------------------


def _tpch_job(query: int) -> tuple[dict[str, Any], Callable[[list[list[Any]]], str | None]]:
    """The sql job spec of TPC-H query `query` at SF 1, and the check of Spark's rows against DuckDB's."""
    from yarnlab.sparkapp import decode_cell

    from .tpch import TABLES, Mismatch, Tpch, compare

    tpch = Tpch(TPCH_ROOT, TPCH_SF).ensure()
    expected = tpch.duckdb_answer(query)

    def check(rows: list[list[Any]]) -> str | None:
        try:
            compare(query, [tuple(decode_cell(v) for v in r) for r in rows], expected)
        except Mismatch as e:
            return str(e)
        return None

    spec = {"shape": "sql", "sql": tpch.query(query),
            "tables": {t: str(tpch.data_dir / f"{t}.parquet") for t in TABLES}}
    return spec, check


def run(todo: list[tuple[Cell, int]], log: Callable[[str], None], save: Callable[[list[dict[str, Any]]], None]
        ) -> list[dict[str, Any]]:
    from yarnlab import YarnLab

    from .yarn_scenarios import AGENT_MODES, SPARK_DEFAULTS_CONF, repair, run_scenario

    rows: list[dict[str, Any]] = []
    jobs = {w: _tpch_job(int(w.removeprefix("tpch-q"))) for w in {c.workload for c, _ in todo}
            if w.startswith("tpch-q")}
    for expiry_s in dict.fromkeys(c.nm_expiry_s for c, _ in todo):
        batch = [(c, i) for c, i in todo if c.nm_expiry_s == expiry_s]
        # quick_spark_jvms (C1 only, serial GC): shorter app starts on 2 cores; the same for every mode.
        with YarnLab(nodes=4, shuffle_service=True, nm_expiry_ms=int(expiry_s * 1000), quick_spark_jvms=True) as lab:
            log(f"lab: 4 nodes up in {lab.startup_seconds:.0f}s (Apache Hadoop's behaviour; NodeManager "
                f"liveness expiry {expiry_s:g}s); {len(batch)} runs")
            for n, (cell, i) in enumerate(batch, 1):
                mode = MODES[cell.mode]
                job, check = jobs.get(cell.workload, (SYNTHETIC, None))
                t0 = time.monotonic()
                log(f"[{n}/{len(batch)}] {cell.key} / {cell.mode}, run {i + 1}")
                try:
                    if mode not in AGENT_MODES:
                        lab.stop_agent()
                    o = run_scenario(lab, cell.scenario, mode, log=log, job=job, check_rows=check,
                                     base_conf=SPARK_DEFAULTS_CONF, executors=cell.executors,
                                     workload=cell.workload, tail_s=TAIL_S)
                    row = o.row() | {"mode": cell.mode, "run": i, "cell": cell.key}
                except Exception as e:  # noqa: BLE001 - one broken run must not lose the others
                    log(f"{cell.key} / {cell.mode}: run failed: {type(e).__name__}: {str(e)[:500]}")
                    row = {"scenario": cell.scenario, "mode": cell.mode, "run": i, "cell": cell.key,
                           "workload": cell.workload, "executors": cell.executors, "nm_expiry_s": expiry_s,
                           "failed": f"{type(e).__name__}: {e}"[:2000]}
                finally:
                    for attempt in (1, 2):  # a lab not repaired fails the next runs, which say so
                        try:
                            lab.stop_agent()
                            repair(lab)
                            break
                        except Exception as e:  # noqa: BLE001 - the runs so far must be kept
                            log(f"repair after {cell.key} / {cell.mode} failed (attempt {attempt}): {e}")
                row["run_s"] = round(time.monotonic() - t0, 1)
                rows.append(row)
                save(rows)
                if "failed" not in row:
                    print(fmt_row(row), flush=True)
    return rows


# ---- figures ----------------------------------------------------------------------------------------------

COLUMNS = [("mode", "mode", 11), ("run", "run", 3), ("wall_s", "wall s", 7), ("correct", "right", 5),
           ("aborted", "aborted", 7), ("fetch_failed_tasks", "FF", 3), ("stage_attempts", "attempts", 8),
           ("outputs_lost", "lost", 4), ("outputs_migrated", "migrated", 8), ("outputs_orphaned", "orphaned", 8),
           ("tasks_recomputed", "recomputed", 10), ("tasks_on_victims_after", "after", 5),
           ("let_go_s", "let go s", 8), ("drain_s", "drain s", 7), ("cell", "cell", 40)]


def fmt_row(row: dict[str, Any]) -> str:
    return "  ".join(f"{'-' if row.get(k) is None else str(row.get(k)):>{w}}" for k, _, w in COLUMNS)


def header() -> str:
    return fmt_row({k: h for k, h, _ in COLUMNS})


def _median(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(statistics.median(vals), 1) if vals else None


def _worst(xs: Iterable[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(max(vals), 1) if vals else None


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell and mode: medians and the worst run. Wall time counts finished runs only."""
    out = []
    for cell, mode in dict.fromkeys((r["cell"], r["mode"]) for r in rows):
        rs = [r for r in rows if r["cell"] == cell and r["mode"] == mode]
        done = [r for r in rs if not r["aborted"]]
        out.append({
            "cell": cell, "mode": mode, "scenario": rs[0]["scenario"], "workload": rs[0]["workload"],
            "executors": rs[0]["executors"], "nm_expiry_s": rs[0]["nm_expiry_s"], "runs": len(rs),
            "aborted": sum(r["aborted"] for r in rs), "correct": sum(r["correct"] for r in rs),
            "wrong": sum(1 for r in done if not r["correct"]),
            "wall_s_median": _median(r["wall_s"] for r in done), "wall_s_worst": _worst(r["wall_s"] for r in done),
            "fetch_failed_median": _median(r["fetch_failed_tasks"] for r in rs),
            "fetch_failed_worst": _worst(r["fetch_failed_tasks"] for r in rs),
            "stage_attempts_median": _median(r["stage_attempts"] for r in rs),
            "outputs_lost": sum(r["outputs_lost"] for r in rs),
            "outputs_migrated": sum(r["outputs_migrated"] for r in rs),
            "outputs_orphaned": sum(r["outputs_orphaned"] for r in rs),
            "tasks_recomputed": sum(r["tasks_recomputed"] for r in rs),
            "map_tasks_recomputed": sum(r["map_tasks_recomputed"] for r in rs),
            "tasks_on_victims_after": sum(r["tasks_on_victims_after"] for r in rs),
            "let_go_s_median": _median(r["let_go_s"] for r in rs),
            "drain_s_median": _median(r["drain_s"] for r in rs), "drain_s_worst": _worst(r["drain_s"] for r in rs),
        })
    return out


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """decom's job time over stock's, per cell and decom mode, on paired runs (the same run index): the median
    of decom's over the median of stock's, on the runs both finished. Where stock aborted, whether decom
    finished; where stock finished, whether decom aborted."""
    out = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        stock = {r["run"]: r for r in rows if r["cell"] == cell and r["mode"] == "stock"}
        for mode in ("decom", "decom-agent"):
            dec = {r["run"]: r for r in rows if r["cell"] == cell and r["mode"] == mode}
            pairs = [i for i in dec if i in stock]
            if not pairs:
                continue
            both = [i for i in pairs if not stock[i]["aborted"] and not dec[i]["aborted"]]
            s = _median(stock[i]["wall_s"] for i in both)
            d = _median(dec[i]["wall_s"] for i in both)
            out.append({"cell": cell, "mode": mode, "scenario": dec[pairs[0]]["scenario"], "runs_compared": len(both),
                        "stock_median_s": s, "decom_median_s": d, "ratio": round(d / s, 2) if s and d else None,
                        "ratio_worst": round(max(dec[i]["wall_s"] / stock[i]["wall_s"] for i in both), 2)
                        if both else None,
                        "stock_aborted": sum(stock[i]["aborted"] for i in pairs),
                        "decom_aborted": sum(dec[i]["aborted"] for i in pairs),
                        "decom_finished_where_stock_aborted": sum(
                            1 for i in pairs if stock[i]["aborted"] and not dec[i]["aborted"]),
                        "decom_aborted_where_stock_finished": sum(
                            1 for i in pairs if dec[i]["aborted"] and not stock[i]["aborted"])})
    return out


def _cellfmt(s: dict[str, Any]) -> str:
    wall = "-" if s["wall_s_median"] is None else f"{s['wall_s_median']} s ({s['wall_s_worst']})"
    bits = [wall, f"{s['aborted']}/{s['runs']} aborted" if s["aborted"] else "",
            f"{s['wrong']} WRONG" if s["wrong"] else "",
            f"FF {s['fetch_failed_median']:g} ({s['fetch_failed_worst']:g})",
            f"after {s['tasks_on_victims_after']}"]
    if s["mode"] != "stock":
        bits.append(f"mig/orph {s['outputs_migrated']}/{s['outputs_orphaned']}")
    if s["outputs_lost"] or s["tasks_recomputed"]:
        bits.append(f"recomp/held {s['tasks_recomputed']}/{s['outputs_lost']}")
    if s["drain_s_median"] is not None:
        bits.append(f"drain {s['drain_s_median']} s ({s['drain_s_worst']})")
    if s["let_go_s_median"] is not None:
        bits.append(f"let go {s['let_go_s_median']} s")
    return ", ".join(b for b in bits if b)


def markdown(doc: dict[str, Any]) -> str:
    summ, rat = doc["summary"], doc["ratios"]
    modes = list(dict.fromkeys(s["mode"] for s in summ))
    head = "| cell | " + " | ".join(modes) + " | decom-agent / stock |\n" + "|---" * (len(modes) + 2) + "|\n"
    body = ""
    for cell in dict.fromkeys(s["cell"] for s in summ):
        cells = {s["mode"]: s for s in summ if s["cell"] == cell}
        r = next((x for x in rat if x["cell"] == cell and x["mode"] == "decom-agent"), None)
        ratio = "-" if r is None or r["ratio"] is None else f"{r['ratio']}x (worst pair {r['ratio_worst']}x" + (
            f"; {r['runs_compared']} runs both finished)" if r["stock_aborted"] or r["decom_aborted"] else ")")
        body += f"| {cell} | " + " | ".join(_cellfmt(cells[m]) if m in cells else "" for m in modes) + \
            f" | {ratio} |\n"
    failed = "".join(f"- {r['cell']} / {r['mode']} run {r['run'] + 1}: {r['failed'][:300]}\n"
                     for r in doc["rows"] if "failed" in r)
    aborted = "".join(f"- {r['cell']} / {r['mode']} run {r['run'] + 1}: {r['error'][:300]}\n"
                      for r in doc["rows"] if r.get("aborted") or (r.get("error") or "").startswith("WRONG"))
    return (
        "# Scale-in on a real YARN cluster (yarnlab)\n\n"
        f"Produced by `{doc['command']}` on {doc['when']} in {doc['seconds'] / 60:.0f} min "
        f"({platform.node()}, {platform.machine()}, 2 cores).\n\n"
        "Apache Hadoop 3.5.0 YARN with its own behaviour (a DECOMMISSIONING node stays while an app that ran "
        "there lives, or until its timeout), 4 NodeManagers in network namespaces, each with Spark's shuffle "
        "service. Spark 4.3.0 (pyspark, client mode) with Spark's default network timeouts and shuffle retries; "
        "executors of 1 core and 1 GB; dynamic allocation (idle timeout 20 s) with 4 executors (headroom: the "
        "lab has room for 7) or 7 (no headroom); `spark.stage.maxConsecutiveAttempts=2`. NodeManager liveness "
        "expiry 10 s (YARN's default is 10 min) unless the cell says otherwise: a vanished node is LOST in the "
        "RM after it. Each app stays up 5 s after its job (less once every victim is DECOMMISSIONED; after a "
        "vanish, until the node is LOST), then stops. The Spark JVMs run with "
        "`-XX:TieredStopAtLevel=1 -XX:+UseSerialGC` (the lab's quick_spark_jvms, for shorter app starts on 2 "
        "cores), in every mode.\n\n"
        "Workloads: synthetic = 40,000 rows, 8 map tasks sleeping 0.5 s (4 s in mid-map), 24 reduce tasks "
        "sleeping 2 s each; tpch-qN = TPC-H query N at SF 1 (DuckDB's dbgen, Parquet), every answer checked "
        "against DuckDB's. A TPC-H query runs as several jobs (adaptive query execution): its \"mid-reduce\" "
        "event fires once the last stage of any of them has 2 tasks done, and its \"map stage\" is the query's "
        "first.\n\n"
        "Each cell: median job time of the finished runs (worst), aborted runs, FetchFailed tasks median (worst), "
        "tasks launched on a victim after it was known to be leaving (all runs), decom's outputs migrated/"
        "orphaned (all runs), tasks recomputed in later stage attempts / map outputs held on the victims when "
        "they were told to go (all runs; held is not lost: migrated or still served ones need no recompute), drain = "
        "graceful request -> DECOMMISSIONED median (worst), let go = request -> the app let go of the node. "
        "decom-agent / stock: the median of decom's job times over stock's, on the runs both finished (same run "
        "index), and the worst such pair.\n\n"
        + head + body
        + ("\nAborted or wrong runs:\n" + aborted if aborted else "")
        + ("\nRuns that failed to run (not counted):\n" + failed if failed else ""))


def readme_table(doc: dict[str, Any]) -> str:
    """The README's compact table: per cell, each mode's median job time (worst) and aborted runs, the
    ratios to stock, FetchFailed medians and drain medians."""
    summ, rat = doc["summary"], doc["ratios"]
    modes = [m for m in MODES if any(s["mode"] == m for s in summ)]

    def get(cell: str, mode: str) -> dict[str, Any] | None:
        return next((s for s in summ if s["cell"] == cell and s["mode"] == mode), None)

    def wall(s: dict[str, Any] | None) -> str:
        if s is None:
            return ""
        w = "-" if s["wall_s_median"] is None else f"{s['wall_s_median']} ({s['wall_s_worst']})"
        return w + (f", **{s['aborted']}/{s['runs']} aborted**" if s["aborted"] else "") + \
            (f", **{s['wrong']} wrong**" if s["wrong"] else "")

    def ratio(cell: str, mode: str) -> str:
        r = next((x for x in rat if x["cell"] == cell and x["mode"] == mode), None)
        if r is None or r["ratio"] is None:
            return "-"
        return f"{r['ratio']}x" + (f" ({r['runs_compared']} pairs)" if r["stock_aborted"] or r["decom_aborted"] else "")

    def per_mode(cell: str, key: str) -> str:
        vals = [get(cell, m) for m in modes]
        return " / ".join("" if v is None or v[key] is None else f"{v[key]:g}" for v in vals)

    decoms = [m for m in modes if m != "stock"]
    head = ("| cell | " + " | ".join(f"{m}: job s" for m in modes) + " | "
            + " | ".join(f"{m} / stock" for m in decoms) + f" | FetchFailed ({' / '.join(modes)}) | "
            f"drain s ({' / '.join(modes)}) |\n" + "|---" * (2 * len(modes) + 2) + "|\n")
    body = "".join(
        f"| {cell} | " + " | ".join(wall(get(cell, m)) for m in modes) + " | "
        + " | ".join(ratio(cell, m) for m in decoms) + f" | {per_mode(cell, 'fetch_failed_median')} | "
        f"{per_mode(cell, 'drain_s_median')} |\n"
        for cell in dict.fromkeys(s["cell"] for s in summ))
    return head + body


def chart(doc: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'decom[bench]'): no chart", file=sys.stderr)
        return False
    summ = doc["summary"]
    cells = list(dict.fromkeys(s["cell"] for s in summ))
    modes = list(dict.fromkeys(s["mode"] for s in summ))
    fig, axes = plt.subplots(1, 2, figsize=(16, max(4.0, 0.5 * len(cells) + 1.5)), sharey=True)
    height = 0.8 / max(1, len(modes))
    for ax, (key, title) in zip(axes, [("wall_s", "job time, s (median; bar: worst; x: aborted)"),
                                       ("drain_s", "drain, s (graceful request -> DECOMMISSIONED)")], strict=True):
        for i, mode in enumerate(modes):
            ys, med, err, aborted = [], [], [], []
            for j, cell in enumerate(cells):
                s = next((s for s in summ if s["cell"] == cell and s["mode"] == mode), None)
                if s is None or s[f"{key}_median"] is None:
                    continue
                ys.append(j + i * height)
                med.append(s[f"{key}_median"])
                err.append(s[f"{key}_worst"] - s[f"{key}_median"])
                aborted.append(s["aborted"] > 0)
            ax.barh(ys, med, height, xerr=[[0] * len(err), err], label=mode, capsize=2)
            if key == "wall_s":
                for y, m, ab in zip(ys, med, aborted, strict=True):
                    if ab:
                        ax.text(m, y, " x", va="center", color="red", fontweight="bold")
        ax.set_title(title)
    axes[0].set_yticks([j + height * (len(modes) - 1) / 2 for j in range(len(cells))])
    axes[0].set_yticklabels(cells, fontsize=8)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=8)
    fig.suptitle(f"decom vs stock Spark 4.3 on Apache YARN (yarnlab), {doc['when']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _write(path: Path, text: str) -> None:
    """Write-then-rename: a kill mid-write leaves the previous copy whole."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def finish(doc: dict[str, Any], stem: str) -> tuple[str, bool]:
    good = [r for r in doc["rows"] if "failed" not in r]
    doc["summary"] = summary(good)
    doc["ratios"] = ratios(good)
    md = markdown(doc) + "\nCompact (the README's):\n\n" + readme_table(doc)
    _write(RESULTS / f"{stem}.md", md)
    _write(RESULTS / f"{stem}.json", json.dumps(doc, indent=1, default=str))
    return md, chart(doc, RESULTS / f"{stem}.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.yarn_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", action="append", choices=ALL_SCENARIOS, help="(repeatable) default: all")
    p.add_argument("--mode", action="append", choices=list(MODES),
                   help="(repeatable) default: " + ", ".join(DEFAULT_MODES))
    p.add_argument("--workload", action="append",
                   choices=["synthetic", *(f"tpch-q{q}" for q in TPCH_QUERIES + MORE_TPCH_QUERIES)],
                   help="(repeatable) default: synthetic and " + ", ".join(f"tpch-q{q}" for q in TPCH_QUERIES))
    p.add_argument("--runs", type=int, default=None, help="runs per cell (default 3)")
    p.add_argument("--quick", action="store_true", help="one cell: synthetic mid-reduce, stock and decom-agent, 1 run")
    p.add_argument("--default-expiry", action="store_true",
                   help="only the vanish runs on a lab with YARN's default NodeManager liveness expiry (10 min), "
                        "stock and decom-agent, --runs each (default 1)")
    p.add_argument("--out", default=None,
                   help="results file stem under bench/results/ (default yarn; yarn-quick with --quick, "
                        "yarn-default-expiry with --default-expiry)")
    p.add_argument("--replot", action="store_true", help="only redo the table and chart from the saved JSON")
    args = p.parse_args(argv)
    RESULTS.mkdir(exist_ok=True)
    args.out = args.out or ("yarn-quick" if args.quick else "yarn-default-expiry" if args.default_expiry else "yarn")
    if args.replot:
        saved = json.loads((RESULTS / f"{args.out}.json").read_text())
        print(finish(saved, args.out)[0])
        return 0
    todo = plan(args.scenario or ALL_SCENARIOS, args.mode or DEFAULT_MODES,
                args.workload or ["synthetic", *(f"tpch-q{q}" for q in TPCH_QUERIES)],
                args.runs or (1 if args.default_expiry else 3), args.quick, args.default_expiry)
    given = argv if argv is not None else sys.argv[1:]
    doc: dict[str, Any] = {"when": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "command": "python -m bench.yarn_bench" + (" " + " ".join(given) if given else ""),
                           "seconds": 0, "rows": []}
    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {msg}", flush=True)

    def save(rows: list[dict[str, Any]]) -> None:
        doc["rows"], doc["seconds"] = rows, round(time.monotonic() - t0)
        _write(RESULTS / f"{args.out}.json", json.dumps(doc, indent=1, default=str))

    from yarnlab import LabUnavailable

    print(f"{len(todo)} runs; " + header(), flush=True)
    try:
        rows = run(todo, log, save)
    except LabUnavailable as e:
        print(f"yarn_bench: the YARN lab is unavailable here: {e}", file=sys.stderr)
        return 2
    doc["seconds"] = round(time.monotonic() - t0)
    md, png = finish(doc, args.out)
    print("\n" + md)
    print(f"saved {RESULTS / (args.out + '.json')}, .md" + (", .png" if png else "") + f" in {doc['seconds']}s")
    return 1 if any("failed" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
