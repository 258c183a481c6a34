"""Chaos on the real YARN lab: seeded random scale-in schedules, each run with stock Spark and with decom.

    python -m bench.chaos [--seed S] [--runs N] [--mode stock|decom ...] [--nodes 4] [--json]
    python -m bench.chaos --long ...   # chaos at scale: seeded schedules, in chunks (bench/chaos_long.py)

Schedule `s` (seeds S .. S+N-1; without --seed, S is random and printed) is built by random.Random(s)
alone, so `--seed s --runs 1` replays it exactly (the lab's own timing still varies). A schedule is:

- a multi-stage job: a join, a chained aggregation or a cached RDD reused by three jobs (yarnlab.sparkapp
  SHAPES: join / agg / cached by s % 3), with dynamic allocation on (even s) or off (odd s);
- 1 to 3 scale-in events at random times of the job: a graceful decommission (YARN timeout 5-120 s),
  most of them recommissioned some seconds later, or a node vanishing (link down), brought back later
  (before or after YARN calls it LOST). Victims run executors, never the AM, and one node besides the
  AM's always stays.

Every run's answer is compared with the job's no-loss answer, computed without Spark
(yarnlab.sparkapp.job_checksum). Figures per mode: runs, scale-in events run, recoveries, aborts and
data mismatches (a job that finished with a wrong answer). The lab is repaired (every node RUNNING)
after each run. Prints a table; writes bench/results/chaos.json and chaos.md. Exit status 1 when a run
had a data mismatch, decom aborted a job stock Spark finished, or a run could not be carried out.
Needs root and network namespaces (yarnlab); ~2-3 minutes per run on a 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from .yarn_scenarios import Event

if TYPE_CHECKING:
    from yarnlab import YarnLab

RESULTS = Path(__file__).resolve().parent / "results"
#: chaos mode -> bench.yarn_scenarios mode
MODES = {"stock": "stock", "decom": "decom-ess-on"}
SHAPES = ("join", "agg", "cached")
#: The jobs: ~35-45 s on 4 executors when nothing is lost. Every stage sleeps, so any time is mid-stage.
JOBS: dict[str, dict[str, Any]] = {
    "join": {"shape": "join", "n": 40_000, "keys": 97, "maps": 16, "map_sleep": 2.5, "reduces": 48,
             "reduce_sleep": 2.0},
    "agg": {"shape": "agg", "n": 40_000, "keys": 97, "maps": 12, "map_sleep": 2.0, "mids": 16, "mid_sleep": 1.5,
            "reduces": 32, "reduce_sleep": 2.0},
    "cached": {"shape": "cached", "n": 40_000, "keys": 97, "maps": 12, "map_sleep": 2.0, "mids": 16,
               "mid_sleep": 1.5, "reduces": 32, "reduce_sleep": 2.0},
}
#: Events fire between these seconds after the job started.
WINDOW = (3.0, 32.0)
DA_OFF = {"spark.dynamicAllocation.enabled": "false"}


class Schedule(TypedDict):
    """A seed's schedule: the job (a yarnlab.sparkapp spec), dynamic allocation, the events."""

    seed: int
    shape: str
    dynamic_allocation: bool
    job: dict[str, Any]
    conf: dict[str, str]
    events: list[Event]


class ModeSummary(TypedDict):
    runs: int
    failed_runs: int
    events: int
    nodes_hit: int
    recoveries: int
    aborts: int
    data_mismatches: int
    correct: int


class ChaosDoc(TypedDict):
    """bench/results/chaos.json. A row (run_one) is one run's figures, as JSON."""

    when: str
    command: str
    seconds: int
    seeds: list[int]
    modes: list[str]
    schedules: dict[str, str]
    summary: dict[str, ModeSummary]
    broken_promises: list[str]
    rows: list[dict[str, Any]]


def schedule(seed: int) -> Schedule:
    """The schedule of `seed`: job, dynamic allocation, events. Depends on nothing but the seed."""
    rng = random.Random(seed)
    shape = SHAPES[seed % len(SHAPES)]
    dynamic = seed % 2 == 0
    events: list[Event] = []
    for _ in range(rng.randint(1, 3)):
        at = round(rng.uniform(*WINDOW), 1)
        nodes = 2 if rng.random() < 0.2 else 1
        if rng.random() < 0.65:
            timeout = rng.choice([5, 15, 30, 120])
            back = round(rng.uniform(5, 25), 1) if rng.random() < 0.75 else None
            events.append(Event(how="graceful", timeout=timeout, nodes=nodes, at_s=at, back_after=back))
        else:
            events.append(Event(how="vanish", nodes=nodes, at_s=at, back_after=round(rng.uniform(4, 30), 1)))
    events.sort(key=lambda e: e.at_s or 0.0)
    return {"seed": seed, "shape": shape, "dynamic_allocation": dynamic, "job": dict(JOBS[shape]),
            "conf": {} if dynamic else dict(DA_OFF), "events": events}


def describe(sched: Schedule) -> str:
    parts = []
    for e in sched["events"]:
        what = f"decommission(timeout {e.timeout}s)" if e.how == "graceful" else "vanish"
        back = "" if e.back_after is None else (" +recommission" if e.how == "graceful" else " +link up") \
            + f" {e.back_after}s later"
        parts.append(f"t={e.at_s}s {e.nodes} node(s) {what}{back}")
    return (f"seed {sched['seed']}: {sched['shape']} job, dynamic allocation "
            f"{'on' if sched['dynamic_allocation'] else 'off'}; " + "; ".join(parts))


@contextmanager
def recorded_run(lab: YarnLab, row: dict[str, Any], mode: str, log: Callable[[str], None]) -> Iterator[None]:
    """One chaos run: a failure is recorded in `row` ("failed": not carried out) and the next run goes on; the
    lab is repaired afterwards whatever happened, and a failed repair is recorded apart ("repair_failed": the
    run itself counts)."""
    from .yarn_scenarios import repair

    try:
        yield
    except Exception as e:  # noqa: BLE001 - one broken run must not lose the others
        log(f"[{mode}] run failed: {type(e).__name__}: {str(e)[:500]}")
        row["failed"] = f"{type(e).__name__}: {e}"[:2000]
    finally:
        try:
            repair(lab)
        except Exception as e:  # noqa: BLE001 - reported; the next run would fail loudly anyway
            log(f"repair failed: {type(e).__name__}: {e}")
            row["repair_failed"] = f"{type(e).__name__}: {e}"[:2000]


def run_one(lab: YarnLab, sched: Schedule, mode: str, log: Callable[[str], None]) -> dict[str, Any]:
    """One schedule in one mode; the lab is repaired afterwards whatever happened."""
    from .yarn_scenarios import run_scenario

    row: dict[str, Any] = {"seed": sched["seed"], "mode": mode, "shape": sched["shape"],
                           "dynamic_allocation": sched["dynamic_allocation"]}
    with recorded_run(lab, row, mode, log):
        o = run_scenario(lab, f"chaos-{sched['seed']}", MODES[mode], log=log, job=sched["job"],
                         extra_conf=sched["conf"], events=list(sched["events"]), wait_drain=False)
        row.update({
            "correct": o.correct, "aborted": o.aborted, "mismatch": not o.aborted and not o.correct,
            "checksum": o.checksum, "expected": o.expected, "error": o.error, "wall_s": o.wall_s,
            "events": len(o.events), "nodes_hit": len(o.victims), "recoveries": len(o.recoveries),
            "stage_attempts": o.stage_attempts,
            "fetch_failed_tasks": o.fetch_failed_tasks, "map_tasks_recomputed": o.map_tasks_recomputed,
            "timeline": [{k: v for k, v in e.items() if k in ("how", "timeout", "victims", "told_t", "stages")}
                         for e in o.events] + o.recoveries,
        })
        if o.decom is not None:
            row["decom_transitions"] = {h: [t["state"] for t in n["transitions"]] for h, n in o.decom["nodes"].items()}
    return row


def summary(rows: list[dict[str, Any]], modes: list[str]) -> dict[str, ModeSummary]:
    out: dict[str, ModeSummary] = {}
    for m in modes:
        rs = [r for r in rows if r["mode"] == m]
        ok = [r for r in rs if "failed" not in r]
        out[m] = {"runs": len(ok), "failed_runs": len(rs) - len(ok), "events": sum(r["events"] for r in ok),
                  "nodes_hit": sum(r.get("nodes_hit", 0) for r in ok),
                  "recoveries": sum(r["recoveries"] for r in ok), "aborts": sum(r["aborted"] for r in ok),
                  "data_mismatches": sum(r["mismatch"] for r in ok), "correct": sum(r["correct"] for r in ok)}
    return out


def broken_promises(rows: list[dict[str, Any]]) -> list[str]:
    """Seeds where decom aborted a job that stock Spark finished."""
    out = []
    for r in rows:
        if r["mode"] != "decom" or "failed" in r or not r["aborted"]:
            continue
        stock = next((s for s in rows if s["mode"] == "stock" and s["seed"] == r["seed"] and "failed" not in s), None)
        if stock is None or not stock["aborted"]:
            out.append(f"seed {r['seed']}: decom aborted ({r['error'][:200]})"
                       + (", stock Spark finished" if stock is not None else ""))
    return out


COLUMNS = [("seed", 5), ("mode", 6), ("shape", 7), ("dyn.alloc", 9), ("events", 6), ("recoveries", 10),
           ("wall s", 7), ("aborted", 7), ("correct", 7), ("FetchFailed", 11), ("attempts", 8)]


def table_row(r: dict[str, Any]) -> str:
    if "failed" in r:
        vals = [r["seed"], r["mode"], r["shape"], "on" if r["dynamic_allocation"] else "off", "RUN FAILED"]
        return "  ".join(str(v) for v in vals)
    vals = [r["seed"], r["mode"], r["shape"], "on" if r["dynamic_allocation"] else "off", r["events"],
            r["recoveries"], r["wall_s"], r["aborted"], r["correct"], r["fetch_failed_tasks"], r["stage_attempts"]]
    return "  ".join(f"{str(v):>{w}}" for v, (_, w) in zip(vals, COLUMNS, strict=True))


def table_header() -> str:
    return "  ".join(f"{h:>{w}}" for h, w in COLUMNS)


def markdown(doc: ChaosDoc) -> str:
    summ, rows = doc["summary"], doc["rows"]
    lines = [
        "# Chaos: random scale-in schedules on a real YARN cluster (yarnlab)", "",
        f"Produced by `{doc['command']}` on {doc['when']} ({platform.node()}, {doc['seconds']} s). "
        f"Seeds {doc['seeds'][0]}..{doc['seeds'][-1]}; replay one with `python -m bench.chaos --seed S --runs 1`.", "",
        "Apache Hadoop 3.5.0 YARN, 4 NodeManagers in network namespaces with Spark's shuffle service; Spark 4.3.0, "
        "4 executors, `spark.stage.maxConsecutiveAttempts=2`. Each schedule: a join, a chained aggregation or a "
        "cached RDD reused by three jobs, dynamic allocation on or off, and 1-3 events at random times: graceful "
        "decommissions (most recommissioned later) and vanishing nodes (link down, brought back later). A data "
        "mismatch is a job that finished with an answer other than its no-loss answer (computed without Spark).", "",
        "| mode | runs | scale-in events | nodes lost or drained | recoveries | aborts | data mismatches "
        "| runs not carried out |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, s in summ.items():
        lines.append(f"| {m} | {s['runs']} | {s['events']} | {s['nodes_hit']} | {s['recoveries']} | {s['aborts']} | "
                     f"{s['data_mismatches']} | {s['failed_runs']} |")
    lines += ["", "| seed | schedule | mode | events | recoveries | wall s | aborted | correct | FetchFailed |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sched = doc["schedules"][str(r["seed"])]
        if "failed" in r:
            lines.append(f"| {r['seed']} | {sched} | {r['mode']} | - | - | - | run failed: {r['failed'][:120]} "
                         "| - | - |")
            continue
        lines.append(f"| {r['seed']} | {sched} | {r['mode']} | {r['events']} | {r['recoveries']} | {r['wall_s']} | "
                     f"{r['aborted']} | {r['correct']} | {r['fetch_failed_tasks']} |")
    aborted = [r for r in rows if r.get("aborted")]
    if aborted:
        lines += ["", "Aborts:"] + [f"- seed {r['seed']} {r['mode']}: {r['error'][:300]}" for r in aborted]
    if doc["broken_promises"]:
        lines += ["", "decom aborted where stock Spark finished:"] + [f"- {b}" for b in doc["broken_promises"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=None, help="first seed (default: random, printed)")
    p.add_argument("--runs", type=int, default=4, help="schedules: seeds seed .. seed+runs-1 (default 4)")
    p.add_argument("--mode", action="append", choices=list(MODES), help="(repeatable) default: stock and decom")
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--out", default=None, help="results file stem under bench/results/ (default chaos; --long: "
                   "chaos-long-<seed>; --merge: chaos-long)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout (progress on stderr)")
    from . import chaos_long

    chaos_long.add_arguments(p)
    args = p.parse_args(args_in)
    if args.merge:
        return chaos_long.merge(args.merge, args.out or "chaos-long")
    if args.long:
        return chaos_long.run_chunk(args, args_in)
    args.out = args.out or "chaos"
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 100_000)
    seeds = list(range(first, first + max(1, args.runs)))
    modes = args.mode or list(MODES)
    out = sys.stderr if args.json else sys.stdout

    def log(msg: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {msg}", file=out, flush=True)

    print(f"chaos: seeds {seeds[0]}..{seeds[-1]}, modes {', '.join(modes)} "
          f"(replay a schedule with: python -m bench.chaos --seed S --runs 1)", file=out, flush=True)
    scheds = {s: schedule(s) for s in seeds}
    for s in seeds:
        print("  " + describe(scheds[s]), file=out, flush=True)

    from yarnlab import LabUnavailable, YarnLab

    t0 = time.monotonic()
    rows: list[dict[str, Any]] = []
    try:
        with YarnLab(nodes=args.nodes, shuffle_service=True) as lab:
            log(f"lab: {args.nodes} nodes up in {lab.startup_seconds:.0f}s")
            for s in seeds:
                for m in modes:
                    log(f"seed {s} / {m}: " + describe(scheds[s]))
                    rows.append(run_one(lab, scheds[s], m, log))
                    print(table_header() + "\n" + "\n".join(table_row(r) for r in rows), file=out, flush=True)
    except LabUnavailable as e:
        print(f"chaos: the YARN lab is unavailable here: {e}", file=sys.stderr)
        return 2
    summ = summary(rows, modes)
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python -m bench.chaos", *args_in])
    if args.seed is None:
        command += f" (seed {first} drawn at random)"
    doc: ChaosDoc = {"when": when, "command": command,
                     "seconds": round(time.monotonic() - t0), "seeds": seeds, "modes": modes,
                     "schedules": {str(s): describe(scheds[s]) for s in seeds}, "summary": summ,
                     "broken_promises": broken_promises(rows), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(doc, indent=1, default=str))
    md = markdown(doc)
    (RESULTS / f"{args.out}.md").write_text(md)
    if args.json:
        print(json.dumps(doc, indent=1, default=str))
    else:
        print("\n" + md)
    print(f"saved {RESULTS / (args.out + '.json')} and .md in {time.monotonic() - t0:.0f}s; "
          f"replay with --seed {first} --runs {len(seeds)}", file=out)
    bad = any(s["data_mismatches"] or s["failed_runs"] for s in summ.values()) or bool(doc["broken_promises"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
