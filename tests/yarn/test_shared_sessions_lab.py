"""Shared interactive clusters on a real YARN: `decom sessions` and `decom reap` against Spark apps named
like Livy's sessions (no Livy: idle times come from each app's Spark UI through the RM's web proxy).

Four tiny apps (1 executor of 512m each): livy-session-1 idle since it started, livy-session-2 idle
since its one job ended, livy-session-3 busy with a running job, and etl-nightly (idle, another name).
`decom reap --idle 15s --yes` must end exactly the first two, and the RM must show their resources free.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

import decom._cli.main as cli

pytestmark = pytest.mark.yarn

IDLE = 15.0  # seconds: the reap threshold
CONF = {"spark.executor.memory": "512m", "spark.yarn.am.memory": "512m",
        # The busy app's job: its tasks sleep; no retries or speculation to muddle it.
        "spark.task.maxFailures": "1", "spark.speculation": "false"}


def decom(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, list(args))
    return result.exit_code, result.output


def rm_apps(lab: Any, states: str = "RUNNING") -> dict[str, dict[str, Any]]:
    doc = lab.rest(f"/ws/v1/cluster/apps?states={states}")
    return {a["id"]: a for a in ((doc.get("apps") or {}).get("app") or [])}


def wait_until(what: str, cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def start_all(lab: Any, names: list[str]) -> dict[str, Any]:
    """Start one SparkApp per name at once (the box has 2 cores: in parallel it is ~2x faster)."""
    from yarnlab.sparkapp import SparkApp

    apps = {name: SparkApp(lab, executors=1, conf=CONF, name=name) for name in names}
    for name, app in apps.items():  # one driver log each (the default name is per second)
        app.log_path = lab.log_dir / f"sparkapp-{name}-{int(time.time())}.log"
    errors: list[BaseException] = []

    def start(app: Any) -> None:
        try:
            app.start()
        except BaseException as e:  # noqa: BLE001 - reported below, after every thread ended
            errors.append(e)

    threads = [threading.Thread(target=start, args=(a,)) for a in apps.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        stop_all(apps)
        raise errors[0]
    return apps


def stop_all(apps: dict[str, Any]) -> None:
    """Stop the drivers side by side: one at a time costs a Spark shutdown each."""
    threads = [threading.Thread(target=app.stop, kwargs={"timeout": 60}) for app in apps.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_sessions_lists_and_reap_ends_exactly_the_idle_matching_ones(lab: Any) -> None:
    rm = lab.rm_url
    names = ["livy-session-1", "livy-session-2", "livy-session-3", "etl-nightly"]
    apps = start_all(lab, names)
    try:
        ids = {name: app.app_id for name, app in apps.items()}
        apps["livy-session-2"].run_job()
        job_ended = time.time()
        apps["livy-session-3"].start_job(n=4000, maps=1, reduces=1, map_sleep=900, reduce_sleep=0)
        # The Spark UI sees the running job a moment later.
        wait_until("busy app's job running", lambda: _spark_busy(rm, ids["livy-session-3"]), 60)

        # ---- decom sessions: the three sessions, with the RM's own figures --------------------------
        asked = time.time()
        code, out = decom("sessions", "--rm", rm, "--timeout", "20s", "--json")
        answered = time.time()
        assert code == 0, out
        listed = json.loads(out)
        running = rm_apps(lab)
        by_name = {s["name"]: s for s in listed["sessions"]}
        assert set(by_name) == {"livy-session-1", "livy-session-2", "livy-session-3"}
        for name, s in by_name.items():
            app = running[ids[name]]
            assert s["app_id"] == ids[name] and s["yarn_state"] == "RUNNING"
            assert (s["containers"], s["memory_mb"], s["vcores"]) == \
                (app["runningContainers"], app["allocatedMB"], app["allocatedVCores"]), name
            assert s["queue"] == app["queue"] and s["owner"] == app["user"]
            assert s["containers"] == 2  # the AM and one executor
        assert by_name["livy-session-3"]["busy"] and by_name["livy-session-3"]["idle_s"] == 0
        s1, s2 = by_name["livy-session-1"], by_name["livy-session-2"]
        assert s1["idle_source"] == s2["idle_source"] == "spark"
        # Never ran a job: idle since it started. Ran one: idle since that job ended, well after its start.
        assert s1["idle_s"] == pytest.approx(s1["age_s"], abs=1.0)
        assert asked - job_ended - 2 <= s2["idle_s"] <= answered - job_ended + 1
        assert s2["idle_s"] < s2["age_s"] - 2
        other = running[ids["etl-nightly"]]
        assert listed["other_apps"]["count"] >= 1 and listed["other_apps"]["memory_mb"] >= other["allocatedMB"]
        metrics = lab.rest("/ws/v1/cluster/metrics")["clusterMetrics"]
        assert listed["cluster"]["total_mb"] == metrics["totalMB"]
        code, table = decom("sessions", "--rm", rm, "--timeout", "20s")
        assert code == 0 and "busy" in table and "cluster:" in table and "etl-nightly" not in table
        print("\n$ decom sessions --rm", rm, "\n" + table)

        # Wait until livy-session-2's job ended IDLE seconds ago.
        time.sleep(max(0.0, job_ended + IDLE + 1 - time.time()))

        # ---- filters that match nothing idle enough: nothing happens -------------------------------
        for extra in (["--user", "nobody-else"], ["--queue", "no-such-queue"], ["--name", "etl-*x"],
                      ["--idle", "10m"]):
            args = ["reap", "--rm", rm, "--timeout", "20s", "--idle", f"{IDLE:g}s", *extra, "--yes"]
            code, out = decom(*args)
            assert code == 0 and "no session to end" in out and "nothing done" in out, (extra, out)
        # Dry run (the default): says what it would end, ends nothing.
        code, dry = decom("reap", "--rm", rm, "--timeout", "20s", "--idle", f"{IDLE:g}s")
        assert code == 0 and "would end 2 idle session(s)" in dry and "dry run: nothing ended" in dry, dry
        assert set(rm_apps(lab)) >= set(ids.values())

        # ---- the reap: every filter given, and matching ---------------------------------------------
        user = running[ids["livy-session-1"]]["user"]
        before = lab.rest("/ws/v1/cluster/metrics")["clusterMetrics"]
        held = {n: (running[ids[n]]["allocatedMB"], running[ids[n]]["allocatedVCores"],
                    running[ids[n]]["runningContainers"]) for n in ("livy-session-1", "livy-session-2")}
        code, out = decom("reap", "--rm", rm, "--timeout", "20s", "--idle", f"{IDLE:g}s", "--user", user,
                          "--queue", "default", "--name", "livy-session-*", "--yes")
        print("\n$ decom reap --idle 15s --user", user, "--queue default --name 'livy-session-*' --yes\n" + out)
        assert code == 0, out
        assert "ended 2 of 2 session(s)" in out
        assert f"ended {ids['livy-session-1']} livy-session-1: YARN REST kill" in out
        assert f"ended {ids['livy-session-2']} livy-session-2: YARN REST kill" in out
        assert f"{ids['livy-session-3']} livy-session-3: busy: a Spark job is running" in out

        ended = rm_apps(lab, "KILLED,FINISHED,FAILED")
        assert {ids["livy-session-1"], ids["livy-session-2"]} <= set(ended)
        still = rm_apps(lab)
        assert ids["livy-session-3"] in still and ids["etl-nightly"] in still
        freed_mb = sum(h[0] for h in held.values())
        freed_vcores = sum(h[1] for h in held.values())
        # The RM's own totals show the freed resources.
        wait_until("RM metrics show the freed memory",
                   lambda: lab.rest("/ws/v1/cluster/metrics")["clusterMetrics"]["allocatedMB"]
                   == before["allocatedMB"] - freed_mb, 30)
        after = lab.rest("/ws/v1/cluster/metrics")["clusterMetrics"]
        assert after["availableMB"] == before["availableMB"] + freed_mb
        assert after["allocatedVirtualCores"] == before["allocatedVirtualCores"] - freed_vcores
        assert f"freed {sum(h[2] for h in held.values())} container(s), {freed_mb} MB" in out

        code, out = decom("sessions", "--rm", rm, "--timeout", "20s", "--json")
        assert code == 0 and [s["name"] for s in json.loads(out)["sessions"]] == ["livy-session-3"]
    finally:
        stop_all(apps)
    wait_until("all test apps gone from YARN", lambda: not set(rm_apps(lab, "RUNNING,ACCEPTED")) & set(ids.values()),
               60)


def _spark_busy(rm: str, app_id: str) -> bool:
    from decom._yarn import ResourceManagerClient

    with ResourceManagerClient([rm], timeout=20) as client:
        jobs = client.app_proxy_json(app_id, f"api/v1/applications/{app_id}/jobs")
    return isinstance(jobs, list) and any(j.get("status") == "RUNNING" for j in jobs)
