"""decom: decommission-aware scheduling for Apache Spark on YARN.

    from pyspark.sql import SparkSession
    import decom

    spark = decom.configure(SparkSession.builder).getOrCreate()
    controller = decom.enable(spark)
"""

from ._api import configure, enable, jar_path
from ._capacity import plan_capacity, users_that_fit
from ._config import DecomConfig
from ._controller import Controller
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
from ._model import NodeStatus
from ._sessions import collect_inventory
from ._version import __version__

__all__ = [
    "configure",
    "enable",
    "jar_path",
    "Controller",
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
