"""The one module that reaches the Spark driver's JVM (py4j), and checks the shim jar once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._errors import (
    DecomError,
    ShimNotFoundError,
    ShimVersionMismatchError,
    SparkConnectNotSupportedError,
    UnsupportedSparkVersionError,
)
from .._version import __version__
from .shim import Action, ActionResult, NodeLetGo, NodeTimeout, ShimReport

__all__ = ["JvmShim", "SUPPORTED_SPARK", "check_versions"]

SUPPORTED_SPARK = ("4.3.",)
_FIX = (
    "start the session with `decom.configure(SparkSession.builder)` (or pass "
    "`--jars $(python -m decom jar) --conf spark.plugins=io.decom.DecomPlugin` to spark-submit)"
)


def _spark_context(spark: Any) -> Any:
    module = type(spark).__module__
    if module.startswith("pyspark.sql.connect") or getattr(spark, "is_remote", None) is True:
        raise SparkConnectNotSupportedError(
            "decom needs the classic PySpark driver (py4j); this is a Spark Connect session. "
            "Run decom inside the Spark Connect server's driver instead, via spark-defaults: "
            "spark.plugins=io.decom.DecomPlugin")
    sc = getattr(spark, "sparkContext", spark)
    if getattr(sc, "_jvm", None) is None or getattr(sc, "_jsc", None) is None:
        raise DecomError("expected a running SparkSession or SparkContext; got "
                         f"{type(spark).__name__} (was the session stopped?)")
    return sc


def check_versions(jar_version: str, package_version: str) -> None:
    """The jar and the Python package must be the same build (one version number, in pom.xml)."""
    if jar_version != package_version:
        raise ShimVersionMismatchError(
            f"the decom shim jar on the driver is version {jar_version}, this Python package is "
            f"{package_version}: use the jar shipped with this package ({_FIX}).")


class JvmShim:
    """The real :class:`~decom._driver.shim.ShimPort`: a Python mirror of the Scala ``io.decom.DecomShim``,
    one per SparkContext. Every answer is parsed here, once."""

    def __init__(self, sc: Any, jshim: Any) -> None:
        self._sc = sc
        self._j = jshim

    @classmethod
    def for_session(cls, spark: Any) -> JvmShim:
        sc = _spark_context(spark)
        if not str(sc.version).startswith(SUPPORTED_SPARK):
            raise UnsupportedSparkVersionError(
                f"decom {__version__} is built and tested for Spark 4.3; this driver runs Spark "
                f"{sc.version}. Install pyspark==4.3.0 (or a decom release built for {sc.version}).")
        from py4j.java_gateway import JavaClass

        jclass = sc._jvm.io.decom.DecomShim
        if not isinstance(jclass, JavaClass):
            raise ShimNotFoundError(f"the decom shim jar is not on the Spark driver's classpath: {_FIX}")
        check_versions(str(jclass.version()), __version__)
        return cls(sc, jclass.get(sc._jsc.sc()))

    def _list(self, items: Sequence[str]) -> Any:
        from py4j.java_collections import ListConverter

        return ListConverter().convert(list(items), self._sc._gateway._gateway_client)

    def exclude(self, hosts: Sequence[str], executors: Sequence[str], timeout_s: float,
                reason: str) -> ActionResult:
        out = self._j.exclude(self._list(hosts), self._list(executors), int(timeout_s * 1000), reason)
        return ActionResult.parse(Action.EXCLUDE, str(out))

    def unexclude(self, hosts: Sequence[str], executors: Sequence[str], reason: str) -> ActionResult:
        out = self._j.unexclude(self._list(hosts), self._list(executors), reason)
        return ActionResult.parse(Action.UNEXCLUDE, str(out))

    def decommissioned(self, hosts: Sequence[str], executors: Sequence[str], cleanup: bool,
                       reason: str) -> ActionResult:
        out = self._j.decommissioned(self._list(hosts), self._list(executors), cleanup, reason)
        return ActionResult.parse(Action.DECOMMISSIONED, str(out))

    def decommissioning_timeouts(self) -> tuple[NodeTimeout, ...]:
        return NodeTimeout.parse_all(str(self._j.decommissioningTimeouts()))

    def set_exemption_enabled(self, enabled: bool) -> None:
        self._j.setExemptionEnabled(enabled)

    def report(self) -> ShimReport:
        return ShimReport.parse(str(self._j.report()))

    def nodes_let_go(self) -> tuple[NodeLetGo, ...]:
        return NodeLetGo.parse_all(str(self._j.nodesLetGo()))

    def stop(self) -> None:
        self._j.stop()
