"""Typed errors that say how to fix the set-up, against a real driver JVM."""

from __future__ import annotations

import pytest

import decom
from decom import _jvm

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def plain_spark():
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[1]").appName("test-no-shim")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").getOrCreate())
    yield spark
    spark.stop()


def test_session_without_the_shim_says_to_use_configure(plain_spark):
    with pytest.raises(decom.ShimNotFoundError, match=r"decom\.configure\(SparkSession\.builder\)"):
        decom.enable(plain_spark)


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
        _jvm.Shim.for_session(OldContext())


def test_configure_adds_jar_and_plugin_without_clobbering():
    from pyspark.sql import SparkSession

    b = SparkSession.builder.config("spark.jars", "/opt/other.jar").config("spark.plugins", "com.x.P")
    decom.configure(b)
    decom.configure(b)  # idempotent
    assert b._options["spark.jars"] == f"/opt/other.jar,{decom.jar_path()}"
    assert b._options["spark.plugins"] == "com.x.P,io.decom.DecomPlugin"
