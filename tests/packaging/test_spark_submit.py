"""No code change: the built wheel in a fresh virtualenv, `decom dist`, and an unmodified PySpark job
run through `spark-submit` with only --py-files/--jars/--conf. decom must be active in its driver."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import decom
from bench.local_scenarios import QUICK_JVM_CONF

REPO = Path(__file__).resolve().parents[2]

JOB = """\
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("plain-job").getOrCreate()
rdd = spark.sparkContext.parallelize(range(10000), 8).map(lambda x: (x % 13, x)).reduceByKey(lambda a, b: a + b)
print("ANSWER", sum(k * v for k, v in rdd.collect()))
spark.stop()
"""
EXPECTED = sum(k * sum(x for x in range(10000) if x % 13 == k) for k in range(13))


def _clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH or venv of this checkout leaks into the user's processes."""
    env = {k: v for k, v in os.environ.items()
           if k in ("HOME", "JAVA_HOME", "LANG", "TMPDIR") and v}
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", SPARK_LOCAL_IP="127.0.0.1", **extra)
    return env


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built wheel and pyspark pip-installed into a new virtualenv, as a user would."""
    tmp = tmp_path_factory.mktemp("fresh")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "wheel"), str(REPO)], check=True, timeout=300)
    (wheel,) = (tmp / "wheel").glob("decom-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel), "pyspark==4.3.0"],
                   check=True, timeout=900, env=_clean_env())
    return venv


def test_dist_zip_is_self_contained(tmp_path: Path) -> None:
    """decom.zip imports with only the zip on the path: decom, its HTTP client, YAML, the version."""
    from decom._driver.dist import build_dist

    zpath, jar = build_dist(tmp_path)
    assert jar.name == f"decom-shim-{decom.__version__}.jar"
    with zipfile.ZipFile(zpath) as z:
        names = z.namelist()
    assert "sitecustomize.py" in names and "decom/VERSION" in names
    assert not [n for n in names if n.endswith((".jar", ".so", ".pyc"))]
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "import decom, httpx, yaml; from decom._driver import poller, autoenable; from decom._yarn import client; "
            "print(decom.__version__, httpx.__file__, yaml.__file__)")
    out = subprocess.run([sys.executable, "-I", "-c", code, str(zpath)], capture_output=True, text=True,
                         check=True, env=_clean_env(), cwd=tmp_path)
    version, httpx_file, yaml_file = out.stdout.split()
    assert version == decom.__version__
    assert httpx_file.startswith(str(zpath)) and yaml_file.startswith(str(zpath))


#: Short-lived JVMs: C1 only (see bench.local_scenarios.QUICK_JVM_CONF).
_QUICK_JVMS = [arg for k, v in QUICK_JVM_CONF.items() for arg in ("--conf", f"{k}={v}")]


@pytest.mark.spark
def test_unmodified_job_runs_with_decom_through_spark_submit(fresh_venv: Path, tmp_path: Path) -> None:
    py = fresh_venv / "bin" / "python"
    jar = subprocess.run([str(py), "-m", "decom", "jar"], capture_output=True, text=True, check=True,
                         env=_clean_env(), cwd=tmp_path).stdout.strip()
    assert jar.startswith(str(fresh_venv)) and jar.endswith(f"decom-shim-{decom.__version__}.jar"), jar
    lines = subprocess.run([str(fresh_venv / "bin" / "decom"), "dist", "--out", str(tmp_path / "dist")],
                           capture_output=True, text=True, check=True, env=_clean_env(), cwd=tmp_path)
    zpath, shim_jar = lines.stdout.split()
    (tmp_path / "job.py").write_text(JOB)
    events = tmp_path / "events.jsonl"
    run = subprocess.run(
        [str(fresh_venv / "bin" / "spark-submit"), "--master", "local-cluster[2,1,1024]",
         "--py-files", zpath, "--jars", shim_jar,
         "--conf", "spark.plugins=io.decom.DecomPlugin",
         "--conf", f"spark.decom.eventLog={events}",
         "--conf", "spark.stage.maxConsecutiveAttempts=3", *_QUICK_JVMS,
         "job.py"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=_clean_env(PYSPARK_PYTHON=str(py)))
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"ANSWER {EXPECTED}" in run.stdout
    log = run.stdout + run.stderr  # the Python driver's stderr reaches spark-submit's stdout
    # The plugin took over the retry limit before the scheduler started, the shim started, and the
    # Python control plane was enabled by the zip's hook, not by the job.
    assert "spark.stage.maxConsecutiveAttempts raised to 19, the user's limit 3" in log, log[-3000:]
    assert 'decom: shim-started driver {"retryPolicy":"plugin","userLimit":3,' in log
    assert "by the decom.zip hook" in log
    assert "could not enable decom" not in log


@pytest.mark.spark
def test_decom_enabled_false_keeps_the_hook_quiet(fresh_venv: Path, tmp_path: Path) -> None:
    """spark.decom.enabled=false: the job runs, the plugin is loaded, the control plane is not started."""
    py = fresh_venv / "bin" / "python"
    subprocess.run([str(fresh_venv / "bin" / "decom"), "dist", "--out", str(tmp_path / "dist")],
                   capture_output=True, check=True, env=_clean_env(), cwd=tmp_path)
    (tmp_path / "job.py").write_text(JOB)
    run = subprocess.run(
        [str(fresh_venv / "bin" / "spark-submit"), "--master", "local-cluster[1,1,1024]",
         "--py-files", str(tmp_path / "dist" / "decom.zip"),
         "--jars", str(tmp_path / "dist" / f"decom-shim-{decom.__version__}.jar"),
         "--conf", "spark.plugins=io.decom.DecomPlugin", "--conf", "spark.decom.enabled=false", *_QUICK_JVMS,
         "job.py"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=_clean_env(PYSPARK_PYTHON=str(py)))
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"ANSWER {EXPECTED}" in run.stdout
    assert "by the decom.zip hook" not in run.stdout + run.stderr
    assert "spark.decom.enabled=false: not enabling" in run.stdout + run.stderr
