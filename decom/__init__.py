"""decom: decommission-aware scheduling for Apache Spark on YARN.

    from pyspark.sql import SparkSession
    import decom

    spark = decom.configure(SparkSession.builder).getOrCreate()
    controller = decom.enable(spark)
"""

from ._driver.api import configure, enable, jar_path
from ._driver.config import DecomConfig
from ._driver.controller import Controller
from ._driver.shim import NodeLetGo
from ._errors import (
    ConfigError,
    DecomError,
    LivyError,
    LivySessionNotFoundError,
    ResourceManagerError,
    ShimNotFoundError,
    ShimVersionMismatchError,
    SparkConnectNotSupportedError,
    UnsupportedSparkVersionError,
)
from ._sessions.capacity import plan_capacity, users_that_fit
from ._sessions.inventory import collect_inventory
from ._version import __version__
from ._yarn.nodes import NodeStatus

__all__ = [
    "configure",
    "enable",
    "jar_path",
    "Controller",
    "NodeLetGo",
    "DecomConfig",
    "NodeStatus",
    "DecomError",
    "ConfigError",
    "ShimNotFoundError",
    "ShimVersionMismatchError",
    "SparkConnectNotSupportedError",
    "UnsupportedSparkVersionError",
    "ResourceManagerError",
    "LivyError",
    "LivySessionNotFoundError",
    "plan_capacity",
    "users_that_fit",
    "collect_inventory",
    "__version__",
]
