"""The EMR-step form on the real YARN lab: an unmodified PySpark job submitted with
`spark-submit --deploy-mode cluster|client --py-files decom.zip --jars decom-shim.jar --conf spark.plugins=...`
(in cluster mode its driver runs in the ApplicationMaster's container, in a node) survives a graceful
decommission of another node mid-job: right answer, no FetchFailed, decom excluded the node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.yarn_scenarios import BASE_CONF, repair

pytestmark = pytest.mark.yarn

JOB = """\
import time
from pyspark.sql import SparkSession

spark = SparkSession.builder.getOrCreate()

def slow(it):
    time.sleep(3)
    return it

rdd = (spark.sparkContext.parallelize(range(40000), 8).map(lambda x: (x % 97, x)).mapPartitions(slow)
       .reduceByKey(lambda a, b: a + b, 24).mapPartitions(slow))
print("ANSWER", sum(k * v for k, v in rdd.collect()))
spark.stop()
"""
EXPECTED = sum(k * sum(range(k, 40000, 97)) for k in range(97))


def _app(lab: Any, name: str) -> dict[str, Any] | None:
    apps = (lab.rest("/ws/v1/cluster/apps").get("apps") or {}).get("app") or []
    mine = [a for a in apps if a["name"] == name]
    return max(mine, key=lambda a: a["startedTime"]) if mine else None


def _spark(lab: Any, app_id: str, path: str) -> Any:
    return lab.rest_json(f"/proxy/{app_id}/api/v1/applications/{app_id}/{path}")


def _container_file(lab: Any, app_id: str, name: str) -> str:
    """The AM's (= the driver's, in cluster mode) stdout/stderr, from the node's log directory."""
    found = sorted(Path(lab.workdir).rglob(f"{app_id}/container_*_01_000001/{name}"))
    return found[0].read_text(errors="replace") if found else ""


# Cluster mode is the EMR-step form and the one make test runs; client mode (the e2e tests' driver) is long.
@pytest.mark.parametrize("deploy_mode", ["cluster", pytest.param("client", marks=pytest.mark.long)])
def test_unmodified_job_survives_a_graceful_decommission(lab: Any, tmp_path: Path, deploy_mode: str) -> None:
    from decom._driver.dist import build_dist

    zpath, jar = build_dist(tmp_path / "dist")
    (tmp_path / "job.py").write_text(JOB)
    name = f"unmodified-job-{int(time.time())}"
    # The app is found by this name (a job's own appName() would win in client mode: the job sets none).
    conf = {**lab.spark_conf(deploy_mode=deploy_mode), **BASE_CONF, "spark.app.name": name,
            "spark.ui.enabled": "true", "spark.ui.port": "0",
            "spark.plugins": "io.decom.DecomPlugin", "spark.decom.poll.interval": "1s"}
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--py-files", str(zpath), "--jars", str(jar)]
    for k, v in conf.items():
        cmd += ["--conf", f"{k}={v}"]
    cmd.append(str(tmp_path / "job.py"))
    env = {**os.environ, **lab.spark_env()}
    if deploy_mode == "cluster":
        env.pop("SPARK_LOCAL_IP", None)
    env.pop("PYTHONPATH", None)
    victim = ""
    # To a file, not a pipe: in client mode the driver's whole log goes through spark-submit's output.
    submit_out = tmp_path / "spark-submit.log"
    with submit_out.open("w") as sink:
        submit = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        app: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            app = _app(lab, name)
            if app and app["state"] in ("FINISHED", "FAILED", "KILLED"):
                pytest.fail(f"the app ended before the scale-in: {app['state']} {app.get('diagnostics', '')}")
            if app and app["state"] == "RUNNING":
                try:
                    stages = _spark(lab, app["id"], "stages?status=active")
                except Exception:  # noqa: BLE001 - the driver's UI is not up yet
                    stages = []
                reduce = [s for s in stages if s.get("numTasks") == 24 and s.get("numCompleteTasks", 0) >= 2]
                if reduce:
                    break
            time.sleep(1)
        else:
            pytest.fail("the reduce stage did not start in 240 s")
        assert app is not None
        app_id = app["id"]
        am = str(app.get("amHostHttpAddress", "")).rsplit(":", 1)[0]
        hosts = [e["hostPort"].rsplit(":", 1)[0] for e in _spark(lab, app_id, "executors") if e["id"] != "driver"]
        candidates = sorted({h for h in hosts if h != am}, key=lambda h: -hosts.count(h))
        assert candidates, f"no executor outside the driver's node {am}: {hosts}"
        victim = candidates[0]
        lab.decommission([victim], timeout=120)
        submit.wait(timeout=600)
        submit_log = submit_out.read_text(errors="replace")
        assert submit.returncode == 0, submit_log[-3000:]
    finally:
        if submit.poll() is None:
            submit.kill()
        if victim:
            repair(lab)
    final = lab.rest(f"/ws/v1/cluster/apps/{app_id}")["app"]
    assert final["finalStatus"] == "SUCCEEDED", final
    if deploy_mode == "cluster":
        # The Python driver's output (the job's print, decom's log lines) lands in the AM container's
        # stdout, the driver JVM's log4j lines in its stderr.
        driver_log = _container_file(lab, app_id, "stdout") + _container_file(lab, app_id, "stderr")
    else:
        driver_log = submit_log
    assert f"ANSWER {EXPECTED}" in driver_log, driver_log[-3000:]
    assert "by the decom.zip hook" in driver_log, driver_log[-3000:]
    assert re.search(rf"decom: exclude {re.escape(victim)} ", driver_log), "decom did not exclude the node"
    assert "FetchFailed" not in driver_log, "a fetch failed"
