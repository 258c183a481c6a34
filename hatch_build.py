"""Put the shim jar of this exact version inside the wheel (decom/jars/), so `pip install` is enough."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ShimJarHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return  # an editable install finds the jar in jvm-shim/target/
        name = f"decom-shim-{self.metadata.version}.jar"
        jar = Path(self.root) / "jvm-shim" / "target" / name
        if not jar.is_file():
            raise RuntimeError(f"{jar} is missing: build the shim first (`make jar`), then the wheel")
        build_data["force_include"][str(jar)] = f"decom/jars/{name}"
