"""Chaos at scale (make chaos's long mode): many seeded schedules on the real YARN lab, each run with stock
Spark and with decom (+ the decom agent) on the same schedule, in chunks that fit a 2-hour window, merged
into one table.

    python -m bench.chaos --long --seed S --runs N [--ha] [--generator 3] [--budget-min 110] [--out chaos-long-S]
    python -m bench.chaos --merge bench/results/chaos-long-*.json      # -> chaos-long.{json,md}

A schedule is made by :func:`schedule` from its seed and the generator version alone, so
``--long --seed s --runs 1 --generator g`` replays it (``--ha`` too if it was an HA chunk); the lab's own
timing still varies. Generator 2:

- a workload: a join, a chained aggregation or a cached RDD reused (yarnlab.sparkapp shapes, ~40 s), a
  notebook-like session (three queries with 25 s idle gaps, longer than dynamic allocation's idle timeout),
  or TPC-H q3 / q9 at SF 1 (DuckDB's dbgen; every answer checked against DuckDB's);
- the shuffle service on or off, dynamic allocation on or off; Spark's default network timeouts; Apache
  Hadoop's YARN behaviour (no vendor emulation); 5 NodeManagers;
- 4 to 7 events at random times of the job: graceful decommissions (YARN timeout 10 s to 1 h; 1-3 nodes;
  some recommissioned before their timeout), a node vanishing (link down) and coming back, a NodeManager
  crash and restart (its process killed; NodeManager recovery is off, Apache's default, so the restarted
  one does not know the executors that live on and YARN counts their containers lost), the RM restarted
  (down 2-15 s), the decom agent stopped and started (decom runs only: stock has no agent),
  and on an HA lab (``--ha``, shuffle service on) RM failovers. The AM's node and one more always stay.

Generator 3 (the default) is generator 2 on 6 NodeManagers with 5 to 8 events and fewer 2-3 node
decommissions: on 5 nodes about a third of generator 2's scale-in events did not run (seeds 1-11: 35 of 52
ran), nearly all because no node could be taken (the AM's node and one more stay, 3 were out already).

Scale-in events are the node events (graceful, vanish, NodeManager restart); RM and agent events are
counted apart. Per run: the answer (right or not), abort and its cause, FetchFailed tasks, stage attempts,
lost map outputs against recomputed map tasks (the job's first stage, from Spark's own records), wall time
and its ratio to stock's on the same seed, and each decommissioned node's drain time. The chunk's file is
rewritten after every run, so a stopped chunk keeps what it ran. Needs root (yarnlab); ~5 min per seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from .chaos import JOBS, recorded_run
from .yarn_scenarios import ESS_OFF, Event

if TYPE_CHECKING:
    from yarnlab import YarnLab

RESULTS = Path(__file__).resolve().parent / "results"
#: The newest schedule generator. A new one is added whenever schedule() would turn a seed into something
#: else, so old seeds keep their meaning; every generator stays replayable.
GENERATOR = 3
GENERATORS = (2, 3)
#: generator -> NodeManagers in its lab
NODES = {2: 5, 3: 6}
EXECUTORS = 4
#: chaos mode -> bench.yarn_scenarios mode, by shuffle service on / off
MODES = {"stock": ("stock", "stock"), "decom": ("decom-agent", "decom-agent-ess-off")}
SCALE_IN = frozenset({"graceful", "vanish", "nm-restart"})
GRACEFUL_TIMEOUTS = (10, 30, 60, 120, 300, 900, 3600)
#: The notebook-like session: three queries, idle gaps longer than executorIdleTimeout (20 s).
SESSION = {"shape": "session", "gap_s": 25.0, "queries": [
    {"shape": "agg", "n": 40_000, "keys": 97, "maps": 8, "map_sleep": 1.5, "mids": 12, "mid_sleep": 1.0,
     "reduces": 16, "reduce_sleep": 1.5},
    {"shape": "join", "n": 40_000, "keys": 97, "maps": 8, "map_sleep": 1.5, "reduces": 24, "reduce_sleep": 1.5},
    {"shape": "cached", "n": 40_000, "keys": 97, "maps": 8, "map_sleep": 1.5, "mids": 12, "mid_sleep": 1.0,
     "reduces": 16, "reduce_sleep": 1.5}]}
TPCH = (3, 9)
#: workload -> seconds the job takes when nothing happens (events fire within ~85% of it)
DURATION = {"join": 45.0, "agg": 40.0, "cached": 45.0, "session": 120.0, "tpch-q3": 25.0, "tpch-q9": 35.0}
DA_OFF = {"spark.dynamicAllocation.enabled": "false"}


class Schedule(TypedDict):
    seed: int
    generator: int
    ha: bool
    workload: str
    shuffle_service: bool
    dynamic_allocation: bool
    events: list[Event]


def schedule(seed: int, ha: bool = False, generator: int = GENERATOR) -> Schedule:
    """The schedule of `seed` by `generator` (on an HA lab if `ha`). Depends on nothing else."""
    if generator not in GENERATORS:
        raise ValueError(f"schedule generator {generator} is not one of {GENERATORS}")
    rng = random.Random(f"decom-chaos-{generator}-{seed}")
    r = rng.random()
    if r < 0.45:
        workload = rng.choice(("join", "agg", "cached"))
    elif r < 0.65:
        workload = "session"
    else:
        workload = f"tpch-q{rng.choice(TPCH)}"
    ess = True if ha else rng.random() < 0.7
    dynamic = rng.random() < 0.6
    window = (3.0, 0.85 * DURATION[workload])
    kinds = ["graceful", "vanish", "nm-restart", "rm-restart", "agent-restart"] + (["rm-failover"] if ha else [])
    weights = [0.50, 0.20, 0.14, 0.08, 0.08] + ([0.12] if ha else [])
    events: list[Event] = []
    many, sizes = ((4, 7), (0.7, 0.2, 0.1)) if generator == 2 else ((5, 8), (0.75, 0.2, 0.05))
    for _ in range(rng.randint(*many)):
        at = round(rng.uniform(*window), 1)
        how = rng.choices(kinds, weights)[0]
        if how == "graceful":
            timeout = rng.choice(GRACEFUL_TIMEOUTS)
            nodes = rng.choices((1, 2, 3), sizes)[0]
            back = round(rng.uniform(3.0, min(timeout - 2.0, 40.0)), 1) if rng.random() < 0.3 else None
            events.append(Event(how=how, timeout=timeout, nodes=nodes, at_s=at, back_after=back))
        elif how == "vanish":
            events.append(Event(how=how, nodes=rng.choice((1, 1, 2)), at_s=at,
                                back_after=round(rng.uniform(5.0, 40.0), 1)))
        elif how == "nm-restart":
            events.append(Event(how=how, at_s=at, back_after=round(rng.uniform(3.0, 20.0), 1)))
        elif how == "rm-restart":
            events.append(Event(how=how, timeout=rng.randint(2, 15), at_s=at))
        elif how == "agent-restart":
            events.append(Event(how=how, at_s=at, back_after=round(rng.uniform(5.0, 40.0), 1)))
        else:
            events.append(Event(how=how, at_s=at))
    events.sort(key=lambda e: e.at_s or 0.0)
    return {"seed": seed, "generator": generator, "ha": ha, "workload": workload, "shuffle_service": ess,
            "dynamic_allocation": dynamic, "events": events}


def describe(s: Schedule) -> str:
    parts = []
    for e in s["events"]:
        if e.how == "graceful":
            what = f"decommission {e.nodes} node(s), timeout {e.timeout}s" + (
                f", recommissioned {e.back_after}s later" if e.back_after is not None else "")
        elif e.how == "vanish":
            what = f"{e.nodes} node(s) vanish, back {e.back_after}s later"
        elif e.how == "nm-restart":
            what = f"NodeManager restart ({e.back_after}s down)"
        elif e.how == "rm-restart":
            what = f"RM down {e.timeout}s"
        elif e.how == "agent-restart":
            what = f"agent down {e.back_after}s"
        else:
            what = "RM failover"
        parts.append(f"t={e.at_s}s {what}")
    ess, da = ("on" if s[k] else "off" for k in ("shuffle_service", "dynamic_allocation"))
    return (f"seed {s['seed']} (gen {s['generator']}{', HA' if s['ha'] else ''}): {s['workload']}, shuffle service "
            f"{ess}, dynamic allocation {da}; " + "; ".join(parts))


def abort_cause(row: dict[str, Any]) -> str | None:
    """Why a run aborted: "scale-in" (a stage or task failed from node loss), "rm-outage" (the app lost its
    RM while dynamic allocation asked for executors: Spark's known limit in client mode), or "other"."""
    if not row.get("aborted"):
        return None
    err = str(row.get("error") or "")
    if row.get("scale_in_events") and any(k in err for k in ("stage failure", "FetchFailed",
                                                             "maximum allowable number of times")):
        return "scale-in"
    rm_event = any(e.get("how") in ("rm-restart", "rm-failover") for e in row.get("timeline", []))
    if rm_event and row.get("dynamic_allocation"):
        return "rm-outage"
    return "other"


def run_one(lab: YarnLab, s: Schedule, mode: str, jobs: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """One schedule in one mode; the lab is repaired afterwards whatever happened."""
    from .yarn_scenarios import SPARK_DEFAULTS_CONF, run_scenario

    ymode = MODES[mode][0 if s["shuffle_service"] else 1]
    conf: dict[str, str] = {}
    if not s["shuffle_service"]:
        conf.update(ESS_OFF)
    if not s["dynamic_allocation"]:
        conf.update(DA_OFF)
    spec, check = jobs[s["workload"]]
    row: dict[str, Any] = {"seed": s["seed"], "generator": s["generator"], "ha": s["ha"], "mode": mode,
                           "spark_mode": ymode, "workload": s["workload"], "shuffle_service": s["shuffle_service"],
                           "dynamic_allocation": s["dynamic_allocation"], "yarn": "apache",
                           "timeouts": "spark-defaults"}
    with recorded_run(lab, row, mode, log):
        if mode == "stock":
            lab.stop_agent()
        o = run_scenario(lab, f"chaos{s['generator']}-{s['seed']}", ymode, log=log, job=spec, extra_conf=conf,
                         events=[Event(**e.__dict__) for e in s["events"]], wait_drain=True,
                         base_conf=SPARK_DEFAULTS_CONF, executors=EXECUTORS, check_rows=check,
                         workload=s["workload"], tail_s=5.0, drain_wait_s=60.0)
        kinds = [e["how"] for e in o.events]
        row.update({
            "correct": o.correct, "aborted": o.aborted, "mismatch": not o.aborted and not o.correct,
            "error": o.error, "wall_s": o.wall_s, "startup_s": o.startup_s,
            "events": len(o.events), "scale_in_events": sum(k in SCALE_IN for k in kinds),
            "other_events": sum(k not in SCALE_IN for k in kinds),
            "events_by_kind": {k: kinds.count(k) for k in sorted(set(kinds))},
            "nodes_hit": len(o.victims), "recoveries": len(o.recoveries),
            "stage_attempts": o.stage_attempts, "fetch_failed_tasks": o.fetch_failed_tasks,
            "outputs_lost": o.outputs_lost, "map_tasks_recomputed": o.map_tasks_recomputed,
            "tasks_recomputed": o.tasks_recomputed, "partitions_recomputed_twice": o.partitions_recomputed_twice,
            "outputs_unregistered": o.outputs_unregistered,
            "outputs_migrated": o.outputs_migrated, "outputs_orphaned": o.outputs_orphaned,
            "drain_by_node": o.drain_by_node, "tasks_on_victims_after": o.tasks_on_victims_after,
            "timeline": [{k: v for k, v in e.items() if k in ("how", "timeout", "victims", "told_t", "stages",
                                                              "outputs_there")} for e in o.events] + o.recoveries,
            # what the shim did, t in s since the job's start: a run is looked into after its lab logs are gone
            "shim_events": [{k: e.get(k) for k in ("t", "action", "target", "detail")}
                            for e in (o.decom or {}).get("events", [])],
        })
        row["abort_cause"] = abort_cause(row)
    return row


# ---- the figures -----------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def decom_dropped(row: dict[str, Any]) -> int:
    """Map outputs decom dropped in a run, no copy being left: its `outputs-unregistered` (a node gone),
    `local-dirs-gone` and `shuffle-service-lost` events, on any node. The run's `outputs_unregistered` counts
    only the nodes the RM showed changing, so it misses a drop on a node that stayed RUNNING (an NM restart
    within the liveness expiry); rows recorded before the shim's events were kept fall back to it."""
    events = row.get("shim_events")
    if not events:
        return int(row.get("outputs_unregistered") or 0)
    return sum(int((e.get("detail") or {}).get("outputs") or 0) for e in events
               if e.get("action") in ("outputs-unregistered", "local-dirs-gone", "shuffle-service-lost"))


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the README's reliability table holds, from every chunk's rows."""
    ok = [r for r in rows if "failed" not in r]
    out: dict[str, Any] = {}
    for m in MODES:
        rs = [r for r in ok if r["mode"] == m]
        out[m] = {"runs": len(rs), "runs_not_carried_out": sum(1 for r in rows if r["mode"] == m and "failed" in r),
                  "scale_in_events": sum(r["scale_in_events"] for r in rs),
                  "other_events": sum(r["other_events"] for r in rs),
                  "data_mismatches": sum(r["mismatch"] for r in rs), "correct": sum(r["correct"] for r in rs),
                  "aborts": sum(r["aborted"] for r in rs),
                  "aborts_by_cause": {c: sum(1 for r in rs if r.get("abort_cause") == c)
                                      for c in ("scale-in", "rm-outage", "other")},
                  "fetch_failed_tasks": sum(r["fetch_failed_tasks"] for r in rs)}
    ratios = []
    for r in ok:
        if r["mode"] != "decom" or r["aborted"] or not r["correct"]:
            continue
        stock = [x for x in ok if x["mode"] == "stock" and _which(x) == _which(r) and not x["aborted"] and x["correct"]]
        if stock and stock[0]["wall_s"]:
            ratios.append((r["wall_s"] / stock[0]["wall_s"], r))
    vals = [x[0] for x in ratios]
    out["decom_over_stock"] = {"seeds": len(vals), "median": round(statistics.median(vals), 2) if vals else None,
                               "p90": round(pct(vals, 0.9), 2) if vals else None,
                               "max": round(max(vals), 2) if vals else None,
                               "over_1_2x": [{**_which(r), "ratio": round(x, 2)} for x, r in ratios if x > 1.2]}
    # decom's promise: each lost output recomputed once. Lost: the map outputs decom dropped, no copy left
    # (decom_dropped); recomputed: a partition's successful runs after its first, over the stages but the last.
    # Fewer recomputed than lost is expected when a lost output's consumer had already finished; more is work
    # done twice.
    out["recompute_differs"] = [{**_which(r), "mode": r["mode"], "lost": decom_dropped(r),
                                 "recomputed": r["tasks_recomputed"]}
                                for r in ok if r["mode"] == "decom" and not r["aborted"]
                                and decom_dropped(r) != r["tasks_recomputed"]]
    # Recorded since 2026-12-02 (rows before have no such field): partitions computed three times or more.
    out["recomputed_more_than_once"] = [{**_which(r), "mode": r["mode"], "partitions": r["partitions_recomputed_twice"]}
                                        for r in ok if r.get("partitions_recomputed_twice")]
    out["decom_aborts_from_scale_in"] = [{**_which(r), "error": r["error"][:300]} for r in ok
                                         if r["mode"] == "decom" and r.get("abort_cause") == "scale-in"]
    out["aborts"] = [{**_which(r), "mode": r["mode"], "cause": r.get("abort_cause"),
                      "error": r["error"][:300]} for r in ok if r["aborted"]]
    drains = {m: [d for r in ok if r["mode"] == m for d in r["drain_by_node"].values() if d is not None]
              for m in MODES}
    out["drain_s_median"] = {m: round(statistics.median(d), 1) if d else None for m, d in drains.items()}
    out["drain_undrained"] = {m: sum(1 for r in ok if r["mode"] == m for d in r["drain_by_node"].values() if d is None)
                              for m in MODES}
    return out


def markdown(doc: dict[str, Any]) -> str:
    s, rows = doc["summary"], doc["rows"]
    lines = ["# Chaos at scale: seeded schedules on the YARN lab, stock Spark and decom on each", "",
             "Apache Hadoop 3.5 YARN behaviour (no vendor emulation), NodeManagers in network namespaces; Spark 4.3 "
             "with its default network timeouts and `spark.stage.maxConsecutiveAttempts=2`; decom with the decom "
             "agent. Schedule generators (bench/chaos_long.py): "
             + ", ".join(f"{g} ({NODES[g]} NodeManagers)" for g in sorted({r["generator"] for r in rows}))
             + ". Chunks:", ""]
    for c in doc["chunks"]:
        lines.append(f"- `{c['command']}`: {c['when']}, {c['seconds']} s, generator {c.get('generator', 2)}, "
                     f"decom {c.get('decom_commit') or 'not recorded'}, seeds {c['seeds']}")
    lines += ["", "| mode | runs | scale-in events | RM / agent events | right answers | data mismatches | aborts "
              "(scale-in / RM outage / other) | FetchFailed tasks | drain median s (not drained) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in MODES:
        x = s[m]
        c = x["aborts_by_cause"]
        lines.append(f"| {m} | {x['runs']} | {x['scale_in_events']} | {x['other_events']} | {x['correct']} | "
                     f"{x['data_mismatches']} | {x['aborts']} ({c['scale-in']} / {c['rm-outage']} / {c['other']}) | "
                     f"{x['fetch_failed_tasks']} | {s['drain_s_median'][m]} ({s['drain_undrained'][m]}) |")
    r = s["decom_over_stock"]
    lines += ["", f"decom's wall time over stock's on the {r['seeds']} seeds both finished: median {r['median']}x, "
              f"p90 {r['p90']}x, max {r['max']}x."]
    if r["over_1_2x"]:
        lines.append("Over 1.2x: " + ", ".join(f"{_label(x)} {x['ratio']}x" for x in r["over_1_2x"]) + ".")
    if s["aborts"]:
        lines += ["", "Aborts:"] + [f"- {_label(a)} {a['mode']} ({a['cause']}): {a['error']}" for a in s["aborts"]]
    if s["recompute_differs"]:
        lines += ["", "decom runs where the outputs it dropped (unregistered) and the tasks recomputed differ:"] + [
            f"- {_label(d)} {d['mode']}: lost {d['lost']}, recomputed {d['recomputed']}"
            for d in s["recompute_differs"]]
    if s.get("recomputed_more_than_once"):
        lines += ["", "Runs where a partition was computed three times or more:"] + [
            f"- {_label(d)} {d['mode']}: {d['partitions']} partition(s)" for d in s["recomputed_more_than_once"]]
    lines += ["", "On victims / unregistered / recomputed: the job's first stage's outputs on the victims when they "
              "were hit (both modes); the outputs decom dropped, no copy being left, on any node (decom only); a "
              "partition's successful runs after its first, in any attempt or job (both modes).", "",
              "| seed | schedule | mode | wall s | right | aborted | FetchFailed | attempts | on victims / "
              "unregistered / recomputed | drain s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        sched = doc["schedules"][_key(row)]
        if "failed" in row:
            lines.append(f"| {row['seed']} | {sched} | {row['mode']} | run not carried out: {row['failed'][:120]} "
                         "| | | | | | |")
            continue
        drains = ", ".join(f"{h} {d}" for h, d in row["drain_by_node"].items()) or "-"
        unreg = decom_dropped(row) if row["mode"] == "decom" else "-"
        lines.append(f"| {row['seed']} | {sched} | {row['mode']} | {row['wall_s']} | {row['correct']} | "
                     f"{row['aborted']} | {row['fetch_failed_tasks']} | {row['stage_attempts']} | "
                     f"{row['outputs_lost']} / {unreg} / {row['tasks_recomputed']} | {drains} |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    """The decom the chunk ran: its git commit ("+changes" when the tree differed from it) and the shim jar."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    try:  # the shim jar the drivers loaded: built from that tree, unless rebuilt since
        from decom._jar import jar_path

        jar = hashlib.sha256(Path(jar_path()).read_bytes()).hexdigest()[:12]
    except Exception:  # noqa: BLE001 - no jar: the runs would not have started either
        jar = "none"
    return head + ("+changes" if dirty else "") + f", shim jar sha256 {jar}"


def _key(r: Schedule | dict[str, Any]) -> str:
    """A schedule's name in the files (generator 2's were named by seed alone, and stay so)."""
    return ("" if r["generator"] == 2 else f"g{r['generator']}-") + f"{r['seed']}{'-ha' if r['ha'] else ''}"


def _which(r: dict[str, Any]) -> dict[str, Any]:
    return {"seed": r["seed"], "generator": r["generator"], "ha": r["ha"]}


def _label(w: dict[str, Any]) -> str:
    return f"seed {w['seed']} (gen {w['generator']}{', HA' if w['ha'] else ''})"


def _doc(chunks: list[dict[str, Any]], rows: list[dict[str, Any]], schedules: dict[str, str]) -> dict[str, Any]:
    return {"generators": sorted({r["generator"] for r in rows}), "chunks": chunks, "schedules": schedules,
            "summary": summarize(rows), "rows": rows}


def _save(doc: dict[str, Any], stem: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    for suffix, text in ((".json", json.dumps(doc, indent=1, default=str)), (".md", markdown(doc))):
        tmp = RESULTS / f".{stem}{suffix}.tmp"
        tmp.write_text(text)
        os.replace(tmp, RESULTS / f"{stem}{suffix}")


def _jobs(workloads: set[str]) -> dict[str, Any]:
    from .yarn_bench import _tpch_job

    jobs: dict[str, Any] = {}
    for w in workloads:
        if w.startswith("tpch-q"):
            jobs[w] = _tpch_job(int(w.removeprefix("tpch-q")))
        else:
            jobs[w] = (dict(SESSION) if w == "session" else dict(JOBS[w]), None)
    return jobs


def run_chunk(args: argparse.Namespace, argv: list[str]) -> int:
    if args.json:
        print("chaos --long prints as it goes; --json is the short mode's", file=sys.stderr)
        return 2
    # One mode (--mode, e.g. decom alone) replays a seed to look into it: its file is named apart.
    modes = tuple(m for m in MODES if not args.mode or m in args.mode)
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 100_000)
    seeds = list(range(first, first + max(1, args.runs)))
    gen = args.generator
    stem = args.out or (f"chaos-long-{_key({'seed': first, 'generator': gen, 'ha': args.ha})}"
                        + ("" if len(modes) == len(MODES) else f"-{'-'.join(modes)}-only"))
    scheds = {s: schedule(s, args.ha, gen) for s in seeds}
    nodes = NODES[gen]
    print(f"chaos --long: generator {gen} ({nodes} nodes), seeds {seeds[0]}..{seeds[-1]}"
          f"{' on an HA lab' if args.ha else ''}; "
          f"replay one with: python -m bench.chaos --long --seed S --runs 1 --generator {gen}"
          f"{' --ha' if args.ha else ''}", flush=True)
    for s in seeds:
        print("  " + describe(scheds[s]), flush=True)

    def log(msg: str) -> None:
        print(f"  {time.strftime('%H:%M:%S')} {msg}", flush=True)

    from yarnlab import LabUnavailable, YarnLab

    jobs = _jobs({s["workload"] for s in scheds.values()})
    t0 = time.monotonic()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python -m bench.chaos", *argv]) + ("" if args.seed is not None else f" (seed {first} drawn)")
    rows: list[dict[str, Any]] = []
    ran: list[int] = []
    commit = _commit()
    try:
        # quick_spark_jvms, as make bench: the Spark JVMs start in half the time on 2 cores, in both modes.
        with YarnLab(nodes=nodes, shuffle_service=True, ha=args.ha, quick_spark_jvms=True) as lab:
            log(f"lab: {nodes} nodes{' (HA)' if args.ha else ''} up in {lab.startup_seconds:.0f}s")
            for s in seeds:
                spent = (time.monotonic() - t0) / 60
                per_seed = spent / len(ran) if ran else 6.0
                if args.budget_min and spent + per_seed > args.budget_min:
                    log(f"stopping before seed {s}: {spent:.0f} min spent, a seed takes ~{per_seed:.0f} min, budget "
                        f"{args.budget_min} min (go on with --seed {s})")
                    break
                ran.append(s)
                for m in (modes if s % 2 == 0 else modes[::-1]):
                    log(f"seed {s} / {m}: {describe(scheds[s])}")
                    rows.append(run_one(lab, scheds[s], m, jobs, log))
                    r = rows[-1]
                    log(f"seed {s} / {m}: " + (f"RUN NOT CARRIED OUT: {r['failed'][:200]}" if "failed" in r else
                        f"wall {r['wall_s']}s right={r['correct']} aborted={r['aborted']} FF={r['fetch_failed_tasks']} "
                        f"unregistered {r['outputs_unregistered']} recomputed {r['tasks_recomputed']} "
                        f"migrated {r['outputs_migrated']} drains {r['drain_by_node']}"))
                    chunk = {"command": command, "when": when, "seconds": round(time.monotonic() - t0), "seeds": ran,
                             "ha": args.ha, "generator": gen, "decom_commit": commit, "modes": list(modes)}
                    _save(_doc([chunk], rows, {_key(scheds[x]): describe(scheds[x]) for x in ran}), stem)
    except LabUnavailable as e:
        print(f"chaos: the YARN lab is unavailable here: {e}", file=sys.stderr)
        return 2
    print(f"saved {RESULTS / stem}.json and .md ({time.monotonic() - t0:.0f}s)")
    summ = summarize(rows)
    bad = any(summ[m]["data_mismatches"] for m in MODES) or summ["decom_aborts_from_scale_in"]
    return 1 if bad else 0


def merge(paths: list[Path], stem: str) -> int:
    chunks: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    schedules: dict[str, str] = {}
    def key(r: dict[str, Any]) -> tuple[int, int, bool, str]:
        return r["generator"], r["seed"], r["ha"], r["mode"]

    for p in paths:  # in the order given; a seed run twice keeps its first run carried out
        doc = json.loads(p.read_text())
        # a chunk before generator 3 named its one generator; its rows and chunks inherit it
        made_by = doc.get("generators") or [doc.get("generator")]
        if not set(made_by) <= set(GENERATORS):
            print(f"chaos --merge: {p} was made by schedule generator(s) {made_by}, none of which is still "
                  f"known ({GENERATORS}); left out", file=sys.stderr)
            continue
        # A one-mode replay (--mode) looks into a seed; its runs ran apart from the other mode's: left out.
        # (Chunks record their modes since 2026-12-02 06:30 UTC; the replays before are named "...-only".)
        modes = doc["chunks"][0].get("modes") if doc["chunks"] else None
        if (set(modes) != set(MODES)) if modes else p.stem.endswith("-only"):
            print(f"chaos --merge: {p} holds one mode's runs (a --mode replay); left out", file=sys.stderr)
            continue
        for c in doc["chunks"]:
            c.setdefault("generator", made_by[0])
        taken = 0
        for r in doc["rows"]:
            r.setdefault("generator", made_by[0])
            i = next((j for j, x in enumerate(rows) if key(x) == key(r)), None)
            if i is None:
                rows.append(r)
            elif "failed" in rows[i] and "failed" not in r:
                rows[i] = r
            else:
                print(f"chaos --merge: {p} repeats {_label(r)} ({r['mode']}); left out", file=sys.stderr)
                continue
            taken += 1
            schedules[_key(r)] = doc["schedules"][_key(r)]
        if taken:
            chunks += doc["chunks"]
    doc = _doc(chunks, rows, schedules)
    _save(doc, stem)
    print(markdown(doc))
    print(f"merged {len(paths)} file(s) into {RESULTS / stem}.json and .md")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--long", action="store_true", help="the long mode (see bench/chaos_long.py): stock and "
                   "decom + agent on seeded schedules, Spark's default timeouts")
    p.add_argument("--generator", type=int, choices=GENERATORS, default=GENERATOR,
                   help=f"--long: the schedule generator (default {GENERATOR}; an older one replays its seeds)")
    p.add_argument("--ha", action="store_true", help="--long on an HA lab (two RMs; RM failovers in the schedules)")
    p.add_argument("--budget-min", type=float, default=110.0,
                   help="--long: start no seed that would end after this many minutes (default 110: a 2-hour window)")
    p.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                   help="merge --long chunks' JSON files into bench/results/chaos-long.{json,md} (or --out)")
