"""The bounded version of `make chaos` (bench/chaos.py): seeded random scale-in schedules on the real YARN
lab, with decom only. Each job's answer must be its no-loss answer (computed without Spark), the job must
not abort, and decom must have seen the nodes YARN decommissioned. ~2-3 minutes per schedule.

A failure prints the schedule; replay it with `python -m bench.chaos --seed S --runs 1 --mode decom`.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.chaos import describe, run_one, schedule

pytestmark = pytest.mark.yarn

#: A join with dynamic allocation off: a node vanishes (link down, back ~22 s later, after YARN called
#: it LOST) and, a moment later, another is gracefully decommissioned (5 s timeout) and recommissioned.
SEEDS = [9]


@pytest.mark.long  # ~2.5 min a schedule; make chaos runs many
@pytest.mark.parametrize("seed", SEEDS)
def test_random_scale_in_schedule_with_decom(lab: Any, seed: int) -> None:
    sched = schedule(seed)
    print("\n" + describe(sched))
    row = run_one(lab, sched, "decom", print)
    print({k: v for k, v in row.items() if k != "timeline"})
    for step in row.get("timeline", []):
        print("  ", step)
    assert "failed" not in row, f"the run could not be carried out: {row.get('failed')}"
    assert row["events"] >= 1, "the job ended before any scale-in event: the schedule proved nothing"
    assert not row["aborted"], f"decom's job aborted: {row['error']}"
    assert row["checksum"] == row["expected"], "the job's answer differs from its no-loss answer"
    # Every node YARN gracefully decommissioned during the job is one decom saw leaving.
    graceful = {v for e in row["timeline"] if e.get("how") == "graceful" for v in e["victims"]}
    seen = {h for h, states in row.get("decom_transitions", {}).items()
            if {"DECOMMISSIONING", "DECOMMISSIONED"} & set(states)}
    assert graceful <= seen, f"decom did not see {sorted(graceful - seen)} leave"
