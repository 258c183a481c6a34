"""decom diagnose: the common notebook errors, what to do, and the live numbers from a fake RM/Livy."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import decom._cli.main as cli
from decom._sessions.diagnose import RULES, diagnose
from tests.fake_rm import FakeApp, FakeRM
from tests.unit.shared_cluster_fakes import FakeLivy, clients, cluster

# Error texts as sparkmagic, Livy, YARN and Spark print them.
SPARKMAGIC_404 = ("An error was encountered:\nInvalid status code '404' from "
                  "http://alice:hunter2@livy.example:8998/sessions/8 with error payload: "
                  "{\"msg\":\"Session '8' not found.\"}")
STARTUP = "Session 5 did not start up in 60 seconds."
CASES = [
    (SPARKMAGIC_404, "session-not-found", 8),
    ("Session '12' not found.", "session-not-found", 12),
    (STARTUP, "startup-timeout", 5),
    ("The code failed because of a fatal error:\n\tSession 0 did not start up in 180 seconds..", "startup-timeout", 0),
    ("diagnostics: [Sun Nov 22 14:00:00 +0000 2026] Application is added to the scheduler and is not yet activated. "
     "Queue's AM resource limit exceeded.  Details : AM Partition = <DEFAULT_PARTITION>; AM Resource Request = "
     "<memory:896, vCores:1>", "yarn-no-resources", None),
    ("WARN YarnScheduler: Initial job has not accepted any resources; check your cluster UI to ensure that workers "
     "are registered and have sufficient resources", "yarn-no-resources", None),
    ("java.lang.IllegalArgumentException: Required executor memory (16384 MB), offHeap memory (0) MB, overhead "
     "(1638 MB), and PySpark memory (0 MB) is above the max threshold (8192 MB) of this cluster! Please check the "
     "values of 'yarn.scheduler.maximum-allocation-mb' and/or 'yarn.nodemanager.resource.memory-mb'.",
     "request-too-big", None),
    ("Session 7 unexpectedly reached final status 'dead'. See logs:\nstdout: \nstderr: ", "session-dead", 7),
    ("Job aborted due to stage failure: Task 3 in stage 2.0 failed 4 times, most recent failure: Lost task 3.3 "
     "(TID 41) (nm2 executor 3): ExecutorLostFailure (executor 3 exited caused by one of the running tasks) "
     "Reason: Container killed by YARN for exceeding physical memory limits. 5.6 GB of 5.5 GB physical memory "
     "used. Consider boosting spark.executor.memoryOverhead.", "container-memory", None),
    ("ExecutorLostFailure (executor 2 exited unrelated to the running tasks) Reason: Container marked as failed: "
     "container_1732280251000_0003_01_000003 on host: nm3. Exit status: -100. Diagnostics: Container released on "
     "a *lost* node.", "node-lost", None),
    ("HTTPConnectionPool(host='livy.example', port=8998): Max retries exceeded with url: /sessions (Caused by "
     "NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f>: Failed to establish a new "
     "connection: [Errno 111] Connection refused'))", "livy-unreachable", None),
    ("org.apache.hadoop.security.AccessControlException: User bob cannot submit applications to queue root.prod",
     "queue", None),
    ("\"Rejected, too many sessions are being created!\"", "too-many-sessions", None),
    ("Total size of serialized results of 20 tasks (1030.4 MiB) is bigger than spark.driver.maxResultSize "
     "(1024.0 MiB)", "driver-memory", None),
]


@pytest.mark.parametrize(("text", "rule", "session_id"), CASES)
def test_recognises(text: str, rule: str, session_id: int | None) -> None:
    found = diagnose(text)
    assert [d.id for d in found] == [rule]
    assert found[0].session_id == session_id
    assert found[0].actions and found[0].cause and found[0].live == []


def test_every_rule_has_a_case() -> None:
    assert {r.id for r in RULES} == {rule for _, rule, _ in CASES}


def test_unrecognised() -> None:
    assert diagnose("SyntaxError: invalid syntax") == []


def test_credentials_in_the_text_are_masked() -> None:
    (d,) = diagnose("Invalid status code '404' from http://alice:hunter2@livy.example:8998/sessions/8 with error "
                    "payload: Not Found")
    assert d.id == "session-not-found" and d.session_id == 8
    assert "hunter2" not in json.dumps(d.to_json()) and "http://***@livy.example" in d.matched


def test_live_404_asks_livy() -> None:
    rm, livy = cluster()
    rmc, lc = clients(rm, livy)
    (d,) = diagnose(SPARKMAGIC_404, rmc, lc)
    assert any("confirms: no session 8" in line for line in d.live)
    (d,) = diagnose("Session '1' not found.", rmc, lc)  # it exists again (or still): say so
    assert any("has session 1 in state idle" in line for line in d.live)


def test_live_startup_timeout_shows_who_holds_the_cluster() -> None:
    rm, livy = cluster()
    rm.pending = 1
    rmc, lc = clients(rm, livy)
    (d,) = diagnose(STARTUP, rmc, lc, where=" --rm http://rm:8088")
    live = "\n".join(d.live)
    metrics = rm.metrics()["clusterMetrics"]
    assert f"({metrics['availableMB'] // 1024} GB free)" in live
    assert "1 app(s) waiting for resources (ACCEPTED" in live
    assert f"idle 200 min: {FakeApp(6, '').id} livy-session-6 (bob)" in live
    assert "decom reap --idle 30m --rm http://rm:8088" in live
    assert "Livy session 10 is starting" in live
    assert "Livy at http://livy:8998 has no session 5 now" in live


def test_live_node_facts() -> None:
    rm, _ = cluster()
    rmc, _ = clients(rm, None)
    (d,) = diagnose(CASES[9][0], rmc)
    assert d.live == ["no node is DECOMMISSIONING, DECOMMISSIONED, LOST, UNHEALTHY or SHUTDOWN now"]


# ---- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def fakes(fakes: tuple[FakeRM, FakeLivy], monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRM, FakeLivy]:
    """The shared CLI fakes, and no Hadoop conf dirs: without --rm, diagnose must find no RM."""
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    return fakes


def test_cli(fakes: tuple[FakeRM, FakeLivy]) -> None:
    result = CliRunner().invoke(cli.main, ["diagnose", STARTUP, "--rm", "rm:8088", "--livy", "http://livy:8998"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("The session did not start in time") and "what to do:" in out
    assert "now:" in out and "cluster: 24 GB of 32 GB memory used (8 GB free)" in out
    assert "decom reap --idle 30m --rm rm:8088 --livy http://livy:8998" in out


def test_cli_without_rm_gives_no_live_numbers(fakes: tuple[FakeRM, FakeLivy]) -> None:
    result = CliRunner().invoke(cli.main, ["diagnose", SPARKMAGIC_404])
    assert result.exit_code == 0 and "now:" not in result.output and "hunter2" not in result.output
    assert "Restart the notebook kernel" in result.output


def test_cli_stdin_json_and_unrecognised(fakes: tuple[FakeRM, FakeLivy]) -> None:
    result = CliRunner().invoke(cli.main, ["diagnose", "-", "--json"], input=CASES[6][0])
    assert result.exit_code == 0
    assert [d["id"] for d in json.loads(result.output)] == ["request-too-big"]
    result = CliRunner().invoke(cli.main, ["diagnose", "NameError: name 'df' is not defined"])
    assert result.exit_code == 1 and "does not recognise" in result.output


def test_cli_never_prints_credentials_of_rm_or_livy(fakes: tuple[FakeRM, FakeLivy]) -> None:
    result = CliRunner().invoke(cli.main, ["diagnose", STARTUP, "--rm", "http://ops:rmpa55@rm:8088",
                                           "--livy", "http://ann:livypa55@livy:8998"])
    assert result.exit_code == 0, result.output
    assert "rmpa55" not in result.output and "livypa55" not in result.output
    assert "--rm http://***@rm:8088 --livy http://***@livy:8998" in result.output
