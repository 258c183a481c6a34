"""Typed errors that say how to fix the set-up, against a real driver JVM."""

from __future__ import annotations

import pytest

import decom
from decom._driver import jvm as _jvm

pytestmark = pytest.mark.spark


def run_fresh_python(code: str) -> str:
    """Run code in a new Python process, so it gets a new driver JVM (the first session of a
    process decides the driver's classpath: order of tests must not matter)."""
    import os
    import subprocess
    import sys
    import textwrap

    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


PLAIN = """
    from pyspark.sql import SparkSession
    import decom

    def plain():
        return (SparkSession.builder.master("local[1]").config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1").config("spark.ui.enabled", "false")
                .getOrCreate())
"""


def test_session_without_the_shim_says_to_use_configure():
    last = run_fresh_python(PLAIN + """
    spark = plain()
    try:
        decom.enable(spark)
        print("no error")
    except decom.ShimNotFoundError as e:
        print("ShimNotFoundError:", e)
    """)
    assert last.startswith("ShimNotFoundError:") and "decom.configure(SparkSession.builder)" in last


def test_configure_works_after_an_unconfigured_session_in_the_same_process():
    last = run_fresh_python(PLAIN + """
    plain().stop()                       # the driver JVM now runs without the shim
    spark = decom.configure(SparkSession.builder.master("local[1]")
                            .config("spark.stage.maxConsecutiveAttempts", "3")).getOrCreate()
    print(decom.enable(spark).report()["retry_policy"])
    """)
    assert "'mode': 'plugin'" in last and "'userLimit': 3" in last, last


def test_spark_connect_is_refused_with_a_clear_message():
    class RemoteSession:
        is_remote = True

    RemoteSession.__module__ = "pyspark.sql.connect.session"
    with pytest.raises(decom.SparkConnectNotSupportedError, match="Spark Connect"):
        decom.enable(RemoteSession())


def test_other_spark_versions_are_refused(monkeypatch):
    class OldContext:
        version = "3.5.1"
        _jvm = object()
        _jsc = object()

    with pytest.raises(decom.UnsupportedSparkVersionError, match="pyspark==4.3.0"):
        _jvm.JvmShim.for_session(OldContext())


def test_configure_adds_jar_and_plugin_without_clobbering():
    from pyspark.sql import SparkSession

    b = SparkSession.builder.config("spark.jars", "/opt/other.jar").config("spark.plugins", "com.x.P")
    decom.configure(b)
    decom.configure(b)  # idempotent
    assert b._options["spark.jars"] == f"/opt/other.jar,{decom.jar_path()}"
    assert b._options["spark.plugins"] == "com.x.P,io.decom.DecomPlugin"
