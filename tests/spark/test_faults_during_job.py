"""Faults around decom while a real job runs (local-cluster Spark, decom polling a fake ResourceManager on
127.0.0.1 that a test can make slow or answer garbage, which a real RM does not do):

- slow and garbage RM answers: the job is unaffected, decom resumes by itself (it acts on a
  DECOMMISSIONING that happens after the fault) and does nothing to any executor;
- driver-side faults: an exception inside the JVM shim, the py4j gateway busy and a shim call that takes
  seconds: logged, the failed action retried, the poller goes on, the job goes on and its answer is right;
- credentials: the RM address carries user:password and simple auth a user name; neither appears in
  decom's logs, report or event log, nor the password in Spark's event log and environment page.

The fake RM's nodes 127.0.0.2-9 run no executor (all executors are on 127.0.0.1): what decom does to
them can't hurt the job, and anything it did to 127.0.0.1 would show. The RM restart on a real RM is in
tests/chaos/test_rm_outage_job.py.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.local_scenarios import session
from bench.spark_probe import SparkProbe
from tests.support import FakeRM, RMHandler, capture_logs
from yarnlab.sparkapp import ShuffleJob, job_checksum

pytestmark = pytest.mark.spark

PASSWORD = "pw-Chaos-7f3a91"
USER = "chaos-user-5d21"
TOKEN = base64.b64encode(f"rmadmin:{PASSWORD}".encode()).decode()
EXECUTOR_HOST = "127.0.0.1"
#: ~10-20 s on 4 local-cluster executors: three stages, every task sleeps.
JOB = {"shape": "agg", "n": 20_000, "keys": 53, "maps": 8, "map_sleep": 1.0, "mids": 8, "mid_sleep": 1.0,
       "reduces": 16, "reduce_sleep": 1.0}
_groups = itertools.count()


@pytest.fixture(scope="module")
def logs() -> Iterator[io.StringIO]:
    """Everything decom and its HTTP stack log, at every level, for the whole module."""
    with capture_logs() as buf:
        yield buf


@pytest.fixture(scope="module")
def rm() -> Iterator[FakeRM]:
    server = FakeRM(metrics=False).start()
    for i in range(1, 10):
        server.set(f"127.0.0.{i}:8041", "RUNNING")
    yield server
    server.release.set()
    server.stop()


@pytest.fixture(scope="module")
def env(rm: FakeRM, logs: io.StringIO, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("faults")
    (tmp / "spark-events").mkdir()
    conf = {
        "spark.decom.yarn.rm.addresses": f"http://rmadmin:{PASSWORD}@127.0.0.1:{rm.port}",
        "spark.decom.yarn.user": USER,
        "spark.decom.poll.interval": "0.2s",
        "spark.decom.poll.timeout": "1s",
        "spark.decom.eventLog": str(tmp / "decom-events.jsonl"),
        # No executor is lost here on purpose: Spark's default heartbeat timeout, not the benches' 12 s,
        # so a stall of the machine can't get an executor replaced and pass for harm done by decom.
        "spark.network.timeout": "120s",
        "spark.executor.heartbeatInterval": "10s",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"file://{tmp / 'spark-events'}",
    }
    with session("decom", conf=conf, app="test-faults", quick_jvms=True) as (spark, controller):
        yield {"spark": spark, "controller": controller, "tmp": tmp}


# ---- helpers --------------------------------------------------------------------------------------


def wait_for(what: str, cond: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:.0f}s: {what}")
        time.sleep(0.1)


def start_job(spark: Any) -> ShuffleJob:
    return ShuffleJob(spark.sparkContext, {**JOB, "group": f"faults-{next(_groups)}"}).start()


def finish(job: ShuffleJob) -> None:
    job.thread.join(300)
    assert not job.thread.is_alive(), "the job did not end within 300 s"
    assert not job.result["aborted"], f"the job aborted: {job.result['error']}"
    assert job.result["checksum"] == job_checksum(JOB), "the job's answer differs from its no-loss answer"


def poller(controller: Any) -> dict[str, Any]:
    return dict(controller.report()["poller"])


def state(controller: Any, host: str) -> str | None:
    node = controller.report()["nodes"].get(host)
    return None if node is None else str(node["state"])


def shim_actions(controller: Any, host: str) -> list[str]:
    return [e["action"] for e in controller.report()["shim"].get("events", []) if e.get("target") == host]


def assert_no_harm(spark: Any, controller: Any, job: ShuffleJob) -> None:
    """No executor excluded or released, none lost, and the job's tasks ran on all four."""
    rep = controller.report()
    assert EXECUTOR_HOST not in rep["nodes"], f"decom acted on the executors' host: {rep['nodes'][EXECUTOR_HOST]}"
    for host, node in rep["nodes"].items():
        assert node["executors_excluded"] == [] and node["executors_released"] == [], f"{host}: {node}"
    executors = SparkProbe(spark).executors()
    seen = {e["id"]: {"active": e.get("isActive"), "removed": e.get("removeReason")} for e in executors}
    alive = [e["id"] for e in executors if e.get("isActive")]
    assert len(executors) == 4 and len(alive) == 4, f"executors lost or replaced: {seen}"
    used = {t.executor for a in SparkProbe(spark).attempts(job.group) for t in a.tasks}
    assert used == set(alive), f"the job's tasks ran on {sorted(used)} of {sorted(alive)}"


def back_to_running(rm: FakeRM, controller: Any, *hosts: str) -> None:
    for h in hosts:
        rm.set(f"{h}:8041", "RUNNING")
    wait_for(f"decom sees {hosts} RUNNING again", lambda: all(state(controller, h) == "RUNNING" for h in hosts))


# ---- RM faults ------------------------------------------------------------------------------------


def test_slow_rm_answers_during_a_job(rm: FakeRM, env: dict[str, Any]) -> None:
    spark, controller = env["spark"], env["controller"]
    errors = poller(controller)["errors"]

    def slow(h: RMHandler) -> bool:
        rm.release.wait(2.5)  # longer than spark.decom.poll.timeout (1 s)
        return False

    rm.behaviour = slow
    job = start_job(spark)
    try:
        wait_for("the poller times out on the slow RM twice", lambda: poller(controller)["errors"] >= errors + 2)
        assert job.thread.is_alive(), "the job ended before the RM was slow: the test proved nothing"
        assert "no answer within 1 s" in str(poller(controller)["last_error"])
    finally:
        rm.behaviour = None
    rm.set("127.0.0.9:8041", "DECOMMISSIONING")
    wait_for("decom acts on a decommission after the slow answers", lambda: "excluded" in shim_actions(
        controller, "127.0.0.9"))
    finish(job)
    assert poller(controller)["consecutive_errors"] == 0
    assert_no_harm(spark, controller, job)
    back_to_running(rm, controller, "127.0.0.9")


GARBAGE: list[tuple[int, bytes]] = [
    (200, b"<html><body>Service Unavailable</body></html>"),
    (200, b'{"nodes": {"node": [{"id": "127.0.0.1:8041", "state": "DECOMMISSIONED"}'),  # cut short
    (200, b'{"nodes": {"node": [{"id": "127.0.0.1:8041", "state": 7}]}}'),
    (200, b'{"nodes": {"node": [{"id": "127.0.0.1:8041"}]}}'),
    (200, b'{"nodes": "DECOMMISSIONED"}'),
    (200, b"\xff\xfe\x00garbage"),
    (200, b""),
    (404, b"<html>Not Found</html>"),
]


def test_garbage_rm_answers_during_a_job(rm: FakeRM, env: dict[str, Any]) -> None:
    """Three garbage answers in a row (the poller backs off), then garbage and good answers alternating
    (no backoff: every kind is served while the job runs)."""
    spark, controller = env["spark"], env["controller"]
    errors = poller(controller)["errors"]
    plan = [GARBAGE[0], GARBAGE[1], GARBAGE[2]] + [x for g in GARBAGE[3:] for x in (None, g)]
    answered = itertools.count()

    def garbage(h: RMHandler) -> bool:
        i = next(answered)
        if i >= len(plan) or plan[i] is None:
            return False  # a good answer
        code, body = plan[i]  # type: ignore[misc]
        h.send_raw(code, body)
        return True

    rm.behaviour = garbage
    job = start_job(spark)
    try:
        wait_for("every kind of garbage answered", lambda: poller(controller)["errors"] >= errors + len(GARBAGE))
        assert job.thread.is_alive(), "the job ended before the garbage: the test proved nothing"
    finally:
        rm.behaviour = None
    assert state(controller, EXECUTOR_HOST) is None, "garbage became a node state"
    rm.set("127.0.0.8:8041", "DECOMMISSIONED")
    wait_for("decom acts on a node gone after the garbage", lambda: "decommissioned" in shim_actions(
        controller, "127.0.0.8"))
    finish(job)
    assert poller(controller)["consecutive_errors"] == 0
    assert_no_harm(spark, controller, job)
    back_to_running(rm, controller, "127.0.0.8")


# ---- driver-side faults ---------------------------------------------------------------------------


class _FaultyShim:
    """The real shim, except that chosen calls raise inside the JVM (a bad argument reaches the Scala
    shim: NullPointerException) or first sleep (a JVM busy for seconds)."""

    def __init__(self, real: Any, fail: set[str] = frozenset(), slow: float = 0.0) -> None:  # type: ignore[assignment]
        self.real, self.fail, self.slow = real, set(fail), slow
        self.failed: list[str] = []

    def exclude(self, hosts: list[str], executors: list[str], timeout_s: float, reason: str) -> dict[str, Any]:
        if "exclude" in self.fail:
            self.fail.discard("exclude")
            self.failed.append(",".join(hosts))
            bad = self.real._list([None])  # a null host: NullPointerException inside the Scala shim
            return dict(json.loads(self.real._j.exclude(bad, bad, int(timeout_s * 1000), reason)))
        time.sleep(self.slow)
        return dict(self.real.exclude(hosts, executors, timeout_s, reason))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_an_exception_inside_the_shim_is_logged_and_retried_and_polling_goes_on(
        rm: FakeRM, env: dict[str, Any], logs: io.StringIO) -> None:
    spark, controller = env["spark"], env["controller"]
    real = controller._shim
    faulty = controller._shim = _FaultyShim(real, fail={"exclude"})
    try:
        job = start_job(spark)
        rm.set("127.0.0.7:8041", "DECOMMISSIONING")
        wait_for("the shim call failed", lambda: faulty.failed == ["127.0.0.7"])
        wait_for("the failure is logged", lambda: "acting on node states failed" in logs.getvalue())
        text = logs.getvalue()
        assert "Py4JJavaError" in text or "NullPointerException" in text, "the JVM error is not logged"
        polls = poller(controller)["polls"]
        wait_for("the poller goes on", lambda: poller(controller)["polls"] >= polls + 5)
        assert job.thread.is_alive(), "the job ended before the shim failed: the test proved nothing"
        # The RM says nothing more about 127.0.0.7: the failed exclude is retried on its own.
        wait_for("the failed exclude is retried", lambda: "excluded" in shim_actions(controller, "127.0.0.7"))
        rm.set("127.0.0.6:8041", "DECOMMISSIONING")
        wait_for("the next change is acted on", lambda: "excluded" in shim_actions(controller, "127.0.0.6"))
        finish(job)
    finally:
        controller._shim = real
    lines = [json.loads(x) for x in Path(env["tmp"] / "decom-events.jsonl").read_text().splitlines()]
    assert any(x["action"] == "action-failed" and x["target"] == "127.0.0.7" for x in lines), \
        "the failed action is not in decom's event log"
    assert_no_harm(spark, controller, job)
    back_to_running(rm, controller, "127.0.0.7", "127.0.0.6")


def test_a_busy_py4j_gateway_and_a_slow_shim_call(rm: FakeRM, env: dict[str, Any]) -> None:
    """Eight threads keep the py4j gateway busy while decom acts, and the shim's exclude takes 4 s (a JVM
    busy for seconds): decom's actions still happen, the poller goes on, the job is unaffected."""
    spark, controller = env["spark"], env["controller"]
    sc = spark.sparkContext
    stop = threading.Event()
    calls, problems = [0], []

    def hammer() -> None:
        while not stop.is_set():
            try:
                sc.statusTracker().getActiveStageIds()
                sc._jsc.sc().getExecutorMemoryStatus().size()
                calls[0] += 1
            except Exception as e:  # noqa: BLE001 - counted, asserted below
                problems.append(repr(e))

    real = controller._shim
    controller._shim = _FaultyShim(real, slow=4.0)
    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        job = start_job(spark)
        rm.set("127.0.0.5:8041", "DECOMMISSIONING")
        wait_for("decom excludes despite the busy gateway and the slow call",
                 lambda: "excluded" in shim_actions(controller, "127.0.0.5"))
        polls = poller(controller)["polls"]
        wait_for("the poller goes on after the slow call", lambda: poller(controller)["polls"] >= polls + 5)
        rm.set("127.0.0.4:8041", "DECOMMISSIONED")
        wait_for("the next change is acted on", lambda: "decommissioned" in shim_actions(controller, "127.0.0.4"))
        finish(job)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        controller._shim = real
    assert calls[0] > 0 and problems == [], problems[:3]
    assert_no_harm(spark, controller, job)
    back_to_running(rm, controller, "127.0.0.5", "127.0.0.4")


# ---- credentials ----------------------------------------------------------------------------------


def test_credentials_appear_in_no_output(env: dict[str, Any], logs: io.StringIO) -> None:
    """Runs last: the faults above made decom log errors and warnings with these credentials in play."""
    spark, controller = env["spark"], env["controller"]
    sc = spark.sparkContext
    assert "HTTP Request: GET" in logs.getvalue(), "httpx's request log was not captured: the check proves nothing"
    decom_outputs = {
        "decom's logs (DEBUG)": logs.getvalue(),
        "controller.report()": json.dumps(controller.report(), default=str),
        "decom's event log": Path(env["tmp"] / "decom-events.jsonl").read_text(),
    }
    for name, text in decom_outputs.items():
        for secret in (PASSWORD, TOKEN, USER):
            assert secret not in text, f"{secret!r} appears in {name}"
    base = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}"
    with urllib.request.urlopen(base + "/environment", timeout=30) as r:
        environment = r.read().decode()
    spark_outputs = {"Spark's environment page": environment,
                     "Spark's event log": "".join(p.read_text(errors="replace")
                                                  for p in Path(env["tmp"] / "spark-events").rglob("*") if p.is_file())}
    assert "spark.decom.yarn.rm.addresses" in environment
    for name, text in spark_outputs.items():
        for secret in (PASSWORD, TOKEN):
            assert secret not in text, f"{secret!r} appears in {name}"
