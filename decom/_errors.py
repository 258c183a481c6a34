"""The one exception tree of decom: every error decom raises is a DecomError."""

from __future__ import annotations

__all__ = [
    "DecomError",
    "ConfigError",
    "ShimNotFoundError",
    "ShimVersionMismatchError",
    "SparkConnectNotSupportedError",
    "UnsupportedSparkVersionError",
    "ResourceManagerError",
    "LivyError",
    "LivySessionNotFoundError",
    "AgentError",
    "ExcludeFileError",
]


class DecomError(Exception):
    """Base class of every error raised by decom."""


class ConfigError(DecomError, ValueError):
    """A decom setting has a wrong key, type or value; the message names the key and the fix."""


class ShimNotFoundError(DecomError):
    """The decom JVM shim is not on the Spark driver's classpath."""


class ShimVersionMismatchError(DecomError):
    """The shim jar on the driver is not the version this Python package was built with."""


class SparkConnectNotSupportedError(DecomError):
    """decom needs the classic (py4j) driver; Spark Connect sessions have no JVM to talk to."""


class UnsupportedSparkVersionError(DecomError):
    """The running Spark is not a version the shim was built and tested for."""


class ResourceManagerError(DecomError):
    """No YARN ResourceManager answered, or it answered with something that is not an RM reply."""


class LivyError(DecomError):
    """No Apache Livy server answered, or it answered with an error or with something not Livy's."""


class LivySessionNotFoundError(LivyError):
    """Livy does not know the session (HTTP 404 ``Session 'N' not found.``): it ended or expired."""


class AgentError(DecomError):
    """The decom agent can't start or act as asked (its message says what to fix)."""


class ExcludeFileError(AgentError):
    """YARN's exclude file is not one the agent may edit: missing, unreadable, not Hadoop's XML form, or
    it does not list the host. Nothing was written."""
