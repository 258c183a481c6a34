"""The one source for decom's units: durations (Spark style, ``500ms``/``20s``/``1h``), memory sizes
(``512m``/``4g``), YARN container sizes, and the numbers REST replies carry. Parsers raise
:class:`~decom.ConfigError` with the fix in the message."""

from __future__ import annotations

import math
import re

from ._errors import ConfigError

__all__ = ["parse_duration", "format_duration", "parse_memory_mb", "format_mb", "container_mb", "json_int"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 ** 2, "p": 1024.0 ** 3}
#: spark.executor.memoryOverhead's default: 10% of the JVM's memory, at least 384 MB (also the driver's and
#: the YARN AM's).
_OVERHEAD_MIN_MB, _OVERHEAD_FACTOR = 384, 0.10


def parse_duration(value: object, key: str = "value") -> float:
    """Seconds from a Spark-style duration: ``"500ms"``, ``"20s"``, ``"1h"``, or a number of seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not a duration: use e.g. 20s, 500ms, 5min or 1h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ConfigError(f"{key}={value!r} is not a duration: use e.g. 20s, 500ms, 5min or 1h")
        seconds = float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "s").lower()]
    if seconds < 0 or seconds != seconds:
        raise ConfigError(f"{key}={value!r} must not be negative")
    return seconds


def format_duration(seconds: float | None) -> str:
    """How decom shows an age or idle time: ``45s``, ``90m``, ``2.5h``, ``3d``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h".replace(".0h", "h")
    return f"{seconds / 86400:.1f}d".replace(".0d", "d")


def parse_memory_mb(value: str | int, name: str = "memory") -> int:
    """MB of a Spark-style size: ``512m``, ``4g``, ``16GB``, ``1.5g``; a bare number is MB."""
    if isinstance(value, int) and not isinstance(value, bool):
        mb = float(value)
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ConfigError(f"{name}={value!r} is not a memory size: use e.g. 512m, 4g or 16GB")
        mb = float(m.group(1)) * _SIZE_MB[m.group(2).lower()]
    if mb <= 0:
        raise ConfigError(f"{name}={value!r} must be more than 0")
    return max(1, int(mb))


def format_mb(mb: float) -> str:
    """``16384`` -> ``16 GB``, ``1536`` -> ``1.5 GB``, ``896`` -> ``896 MB``."""
    if mb >= 1024:
        gb = mb / 1024
        return f"{gb:.0f} GB" if gb == int(gb) else f"{gb:.1f} GB"
    return f"{mb:.0f} MB"


def container_mb(memory_mb: int) -> int:
    """YARN container memory of a Spark JVM of ``memory_mb``: plus max(384 MB, 10%) overhead."""
    return memory_mb + max(_OVERHEAD_MIN_MB, math.ceil(memory_mb * _OVERHEAD_FACTOR))


def json_int(value: object, default: int = 0) -> int:
    """A whole number from a REST reply field, which may come as int, float or string; ``default``
    for anything else (``null``, ``true``, ``NaN``, text)."""
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else default
    if isinstance(value, str):
        try:
            return int(float(value.strip()))
        except ValueError:
            return default
    return default
