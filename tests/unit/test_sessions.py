"""Session inventory and the idle-session reaper against a fake RM and a fake Livy."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from click.testing import CliRunner

import decom._cli.main as cli
import decom._cli.sessions as cli_sessions
from decom._sessions.inventory import collect_inventory
from decom._sessions.livy import LivyClient
from decom._sessions.reap import ReapFilters, execute_reap, plan_reap
from tests.fake_rm import NOW_MS, FakeApp, FakeRM, job
from tests.unit.shared_cluster_fakes import MIN, FakeLivy, clients, cluster, statement


def acting_requests(rm: FakeRM, livy: FakeLivy) -> list[str]:
    return [f"{r.method} {r.url.path}" for r in rm.requests + livy.requests if r.method not in ("GET", "HEAD")]


# ---- inventory -----------------------------------------------------------------------------------


def test_inventory_with_livy() -> None:
    rm, livy = cluster()
    inv = collect_inventory(*clients(rm, livy), now=NOW_MS / 1000)
    by_name = {s.name: s for s in inv.sessions}
    assert set(by_name) == {"livy-session-1", "livy-session-2", "livy-session-3", "livy-session-4",
                            "livy-session-6", "livy-session-9", "livy-session-10"}
    s1 = by_name["livy-session-1"]
    assert (s1.livy_id, s1.livy_state, s1.owner, s1.yarn_user) == (1, "idle", "alice", "livy")
    assert (s1.containers, s1.memory_mb, s1.vcores, s1.queue) == (3, 3072, 3, "default")
    assert s1.idle_s == pytest.approx(90 * 60) and s1.idle_source == "livy" and s1.age_s == pytest.approx(180 * 60)
    assert by_name["livy-session-2"].busy and by_name["livy-session-2"].idle_s == 0
    assert by_name["livy-session-3"].idle_s == pytest.approx(5 * 60)
    # Not Livy's: idle from its Spark jobs through the RM proxy; no job yet: since it started.
    assert by_name["livy-session-4"].idle_s == pytest.approx(50 * 60)
    assert by_name["livy-session-4"].idle_source == "spark" and by_name["livy-session-4"].livy_id is None
    assert by_name["livy-session-6"].idle_s == pytest.approx(200 * 60)
    # Dead and starting Livy sessions are listed, holding nothing.
    dead, starting = by_name["livy-session-9"], by_name["livy-session-10"]
    assert (dead.livy_state, dead.yarn_state, dead.memory_mb, dead.idle_s) == ("dead", None, 0, None)
    assert (starting.livy_state, starting.app_id) == ("starting", None)
    # The batch job is another app; the totals are the RM's.
    assert (inv.others.count, inv.others.containers, inv.others.memory_mb) == (1, 6, 7168)
    metrics = rm.metrics()["clusterMetrics"]
    assert inv.cluster.allocated_mb == metrics["allocatedMB"] == 3072 + 6144 + 2048 + 4096 + 7168 + 2048
    assert inv.cluster.available_mb == 4 * 8192 - metrics["allocatedMB"]
    assert inv.cluster.largest_free_mb == 8192 and inv.cluster.active_nodes == 4


def test_inventory_without_livy_uses_spark_ui_or_says_unknown() -> None:
    rm, _ = cluster()
    rm.apps[FakeApp(1, "").id].jobs = None  # UI off: unknown
    rm.apps[FakeApp(2, "").id].jobs = [job(0, ended_ms=NOW_MS - 10 * MIN), job(1, status="RUNNING")]
    rm.apps[FakeApp(3, "").id].jobs = [job(0, ended_ms=NOW_MS - 7 * MIN)]
    inv = collect_inventory(*clients(rm, None), now=NOW_MS / 1000)
    by_name = {s.name: s for s in inv.sessions}
    assert by_name["livy-session-1"].idle_s is None and "Spark UI" in by_name["livy-session-1"].note
    assert by_name["livy-session-2"].busy
    assert by_name["livy-session-3"].idle_s == pytest.approx(7 * 60)
    assert "livy-session-9" not in by_name  # killed in YARN, and no Livy to remember it


def test_livy_down_is_a_warning_for_the_inventory() -> None:
    rm, livy = cluster()
    rmc, _ = clients(rm, None)
    broken = LivyClient("http://livy:8998", transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    inv = collect_inventory(rmc, broken, now=NOW_MS / 1000)
    assert inv.warnings and "HTTP 503" in inv.warnings[0]
    assert {s.name for s in inv.sessions} >= {"livy-session-1", "livy-session-4"}


# ---- reap ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("filters", "expected"), [
    (ReapFilters(30 * 60), {"livy-session-1", "livy-session-4", "livy-session-6"}),
    (ReapFilters(60 * 60), {"livy-session-1", "livy-session-6"}),
    (ReapFilters(30 * 60, user="alice"), {"livy-session-1"}),
    (ReapFilters(30 * 60, user="carol"), {"livy-session-4"}),  # YARN user (not Livy's)
    (ReapFilters(30 * 60, queue="etl"), {"livy-session-6"}),
    (ReapFilters(30 * 60, queue="root.etl", user="bob"), {"livy-session-6"}),
    (ReapFilters(30 * 60, queue="etl", user="alice"), set()),
    (ReapFilters(60, name="nightly-*"), {"nightly-etl"}),
    (ReapFilters(60, name="livy-session-[13]"), {"livy-session-1", "livy-session-3"}),
    (ReapFilters(0), {"livy-session-1", "livy-session-3", "livy-session-4", "livy-session-6"}),
])
def test_plan_targets_exactly_the_matching_idle_sessions(filters: ReapFilters, expected: set[str]) -> None:
    rm, livy = cluster()
    inv = collect_inventory(*clients(rm, livy), name_pattern=filters.name, now=NOW_MS / 1000)
    plan = plan_reap(inv, filters)
    assert {s.name for s in plan.targets} == expected
    for s in plan.targets:
        assert filters.matches(s) and not s.busy and s.idle_s is not None and s.idle_s >= filters.idle_s
    reasons = {s.name: why for s, why in plan.kept}
    if "livy-session-2" in reasons:
        assert reasons["livy-session-2"].startswith("busy")
    if filters.name == "livy-session-*" and filters.user is None and filters.queue is None:
        assert reasons["livy-session-10"] == "Livy state starting"
        assert "livy-session-9" not in reasons  # dead, holds nothing: not even worth a line


def test_execute_through_livy_and_yarn_touches_nothing_else() -> None:
    rm, livy = cluster()
    rmc, lc = clients(rm, livy)
    plan = plan_reap(collect_inventory(rmc, lc, now=NOW_MS / 1000), ReapFilters(30 * 60))
    result = execute_reap(plan, rmc, lc, wait=5)
    assert livy.deleted == [1]  # the Livy session, through Livy
    assert sorted(rm.killed) == [FakeApp(4, "").id, FakeApp(6, "").id]  # the ones Livy does not know: YARN
    assert sorted(acting_requests(rm, livy)) == sorted([
        "DELETE /sessions/1", f"PUT /ws/v1/cluster/apps/{FakeApp(4, '').id}/state",
        f"PUT /ws/v1/cluster/apps/{FakeApp(6, '').id}/state"])
    assert sorted(o.how for o in result.outcomes) == ["Livy DELETE /sessions/1", "YARN REST kill", "YARN REST kill"]
    assert result.freed == (3 + 4 + 2, 3072 + 4096 + 2048, 3 + 4 + 2)
    assert result.after is not None
    assert result.after.available_mb - result.before.available_mb == 3072 + 4096 + 2048
    assert result.still_active == [] and not result.failed
    # Still running: the busy one, the recent one, the batch job.
    assert {a.name for a in rm.running()} == {"livy-session-2", "livy-session-3", "nightly-etl"}


def test_livy_404_on_delete_falls_back_to_yarn_kill() -> None:
    rm, livy = cluster()
    rmc, lc = clients(rm, livy)
    plan = plan_reap(collect_inventory(rmc, lc, now=NOW_MS / 1000), ReapFilters(60 * 60, user="alice"))
    del livy.sessions[1]  # Livy forgot it between the look and the delete (restart without recovery)
    result = execute_reap(plan, rmc, lc, wait=1, recheck=False)
    assert rm.killed == [FakeApp(1, "").id]
    assert result.outcomes[0].how == "YARN REST kill (Livy: Session '1' not found.)"


def test_a_session_that_became_busy_is_kept() -> None:
    rm, livy = cluster()
    rmc, lc = clients(rm, livy)
    plan = plan_reap(collect_inventory(rmc, lc, now=NOW_MS / 1000), ReapFilters(30 * 60))
    livy.sessions[1].statements.append(statement(2, state="running"))
    rm.apps[FakeApp(4, "").id].jobs = [job(2, status="RUNNING")]
    result = execute_reap(plan, rmc, lc, wait=1)
    assert livy.deleted == [] and rm.killed == [FakeApp(6, "").id]
    kept = [o for o in result.outcomes if not o.ended]
    assert [o.how for o in kept] == ["kept after a last look: busy: a statement is running",
                                     "kept after a last look: busy: a Spark job is running"]


def test_kill_failure_is_reported() -> None:
    rm, livy = cluster()
    rmc, _ = clients(rm, None)
    plan = plan_reap(collect_inventory(rmc, None, now=NOW_MS / 1000), ReapFilters(60 * 60, user="bob"))
    del rm.apps[FakeApp(6, "").id]  # gone from the RM before the kill
    result = execute_reap(plan, rmc, None, wait=0, recheck=False)
    assert len(result.failed) == 1 and "HTTP 404" in result.failed[0].how


# ---- CLI -----------------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, list(args))
    return result.exit_code, result.output


def test_cli_sessions_table(fakes: tuple[FakeRM, FakeLivy]) -> None:
    code, out = run("sessions", "--rm", "rm:8088", "--livy", "http://livy:8998")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["APP", "ID", "NAME", "LIVY", "YARN", "OWNER", "QUEUE", "CONTAINERS", "MEMORY",
                                "VCORES", "AGE", "IDLE"]
    row = next(line.split() for line in lines if "livy-session-1 " in line + " ")
    assert row[:11] == [FakeApp(1, "").id, "livy-session-1", "1", "idle", "RUNNING", "alice", "default", "3",
                        "3072", "MB", "3"]
    assert row[-2:] == ["90m", "(livy)"]  # idle 90 min: well inside the minutes band (120 s to 2 h)
    assert any("livy-session-2" in line and line.split()[-1] == "busy" for line in lines)
    assert any("dead" in line and "livy-session-9" in line for line in lines)
    assert "nightly-etl" not in out and "1 other app(s) hold 7 GB in 6 container(s)" in out
    assert "cluster: 24 GB of 32 GB memory used (8 GB free)" in out


def test_cli_sessions_json_filters(fakes: tuple[FakeRM, FakeLivy]) -> None:
    code, out = run("sessions", "--rm", "rm:8088", "--json", "--user", "carol")
    assert code == 0, out
    data = json.loads(out)
    assert [s["name"] for s in data["sessions"]] == ["livy-session-4"]
    assert data["sessions"][0]["idle_source"] == "spark" and data["cluster"]["total_mb"] == 32768


def test_cli_reap_is_a_dry_run_by_default(fakes: tuple[FakeRM, FakeLivy]) -> None:
    rm, livy = fakes
    code, out = run("reap", "--rm", "rm:8088", "--livy", "http://livy:8998", "--idle", "30m")
    assert code == 0, out
    assert acting_requests(rm, livy) == []
    assert "would end 3 idle session(s)" in out and "dry run: nothing ended" in out
    assert "would free 9 container(s), 9216 MB (9 GB), 9 vcore(s)" in out
    assert "livy-session-2" in out and "busy" in out  # listed as kept, with why
    code, out = run("reap", "--rm", "rm:8088", "--idle", "30m", "--dry-run")
    assert code == 0 and acting_requests(rm, livy) == []


def test_cli_reap_yes(fakes: tuple[FakeRM, FakeLivy]) -> None:
    rm, livy = fakes
    code, out = run("reap", "--rm", "rm:8088", "--livy", "http://livy:8998", "--idle", "1h", "--yes",
                    "--wait", "2s")
    assert code == 0, out
    assert livy.deleted == [1] and rm.killed == [FakeApp(6, "").id]
    assert "ended 2 of 2 session(s): freed 5 container(s), 5120 MB (5 GB), 5 vcore(s)" in out
    assert "cluster free memory 8192 MB (8 GB) -> 13312 MB (13 GB)" in out


def test_cli_reap_no_match(fakes: tuple[FakeRM, FakeLivy]) -> None:
    rm, livy = fakes
    code, out = run("reap", "--rm", "rm:8088", "--idle", "30m", "--user", "nobody", "--yes")
    assert code == 0, out
    assert "no session to end" in out and "user nobody" in out and "nothing done" in out
    assert acting_requests(rm, livy) == []


@pytest.mark.parametrize(("args", "words"), [
    (["--idle", "30m", "--yes", "--dry-run"], "contradict"),
    (["--idle", "soon"], "is not a duration"),
    (["--idle", "30m", "--name", " "], "--name must not be empty"),
])
def test_cli_reap_bad_input_exits_2(fakes: tuple[FakeRM, FakeLivy], args: list[str], words: str) -> None:
    rm, livy = fakes
    code, out = run("reap", "--rm", "rm:8088", *args)
    assert code == 2 and words in out
    assert acting_requests(rm, livy) == []


def test_cli_reap_livy_down_exits_2_and_hides_credentials(monkeypatch: pytest.MonkeyPatch,
                                                          fakes: tuple[FakeRM, FakeLivy]) -> None:
    rm, livy = fakes
    monkeypatch.setattr(cli_sessions, "LivyClient", LivyClient)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out = run("reap", "--rm", "rm:8088", "--livy", f"http://ann:t0psecret@127.0.0.1:{port}", "--idle", "1m",
                    "--yes", "--timeout", "2s")
    assert code == 2 and "connection refused" in out
    assert "t0psecret" not in out and "ann:" not in out
    assert acting_requests(rm, livy) == []


def test_cli_rm_down_exits_2() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for command in (["sessions"], ["reap", "--idle", "1m", "--yes"]):
        code, out = run(*command, "--rm", f"127.0.0.1:{port}", "--timeout", "2s")
        assert code == 2 and "connection refused" in out, out


# ---- admission guard -----------------------------------------------------------------------------


def test_admission_packs_containers_into_node_free_memory() -> None:
    from decom._sessions.admission import check_admission
    from decom._units import container_mb

    rm, _ = cluster()  # 24 GB of 4 x 8 GB used, filling nodes in order: nm4 has all 8 GB free
    rmc, _ = clients(rm, None)
    assert container_mb(1024) == 1408 and container_mb(10240) == 11264
    ok = check_admission(rmc, executors=4, executor_memory_mb=1024, driver_memory_mb=1024)
    assert ok.fits and ok.placed == 5 and ok.needed_mb == 5 * 1408
    # 5 x 1408 MB = 7040 fits nm4's 8192; 6 do not (8448), though they would in total memory terms.
    no = check_admission(rmc, executors=5, executor_memory_mb=1024, driver_memory_mb=1024)
    assert not no.fits and no.placed == 5
    inv = collect_inventory(rmc, None, now=NOW_MS / 1000)
    no = check_admission(rmc, executors=5, executor_memory_mb=1024, driver_memory_mb=1024, inventory=inv)
    assert [s.name for s in no.reap_suggestions] == ["livy-session-6"]  # the most idle first
    with pytest.raises(ValueError, match="at least 0"):
        check_admission(rmc, executors=-1, executor_memory_mb=1024)


def test_cli_admit(fakes: tuple[FakeRM, FakeLivy]) -> None:
    code, out = run("admit", "--rm", "rm:8088", "-e", "4")
    assert code == 0 and out.startswith("fits:"), out
    code, out = run("admit", "--rm", "rm:8088", "-e", "5", "--livy", "http://livy:8998")
    assert code == 1 and "does NOT fit" in out and "only 5 of 6 container(s)" in out
    assert FakeApp(6, "").id in out and "idle 3.3h" in out
    code, out = run("admit", "--rm", "rm:8088", "-e", "2", "--executor-memory", "lots")
    assert code == 2 and "not a memory size" in out


def test_livy_without_statement_times_falls_back_to_spark() -> None:
    rm, livy = cluster()
    # An old Livy: statements without started/completed. Livy alone would say "idle since start" (3 h).
    for st in livy.sessions[1].statements:
        del st["started"], st["completed"]
    rm.apps[FakeApp(1, "").id].jobs = [job(0, ended_ms=NOW_MS - 20 * MIN)]
    inv = collect_inventory(*clients(rm, livy), now=NOW_MS / 1000)
    s1 = next(s for s in inv.sessions if s.name == "livy-session-1")
    assert s1.idle_source == "spark" and s1.idle_s == pytest.approx(20 * 60)
