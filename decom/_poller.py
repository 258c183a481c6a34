"""Placeholder until the ResourceManager poller lands: with no RM configured nothing is polled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._config import DecomConfig

__all__ = ["start_poller"]


def start_poller(controller: Any, config: DecomConfig, spark_conf: Mapping[str, str]) -> None:
    return None
