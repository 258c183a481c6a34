"""decom's version: the one number in jvm-shim/pom.xml, as packaged."""

from __future__ import annotations

import re
from importlib import metadata, resources
from pathlib import Path

__all__ = ["__version__", "PACKAGE_DIR"]

#: The installed ``decom`` package directory (the jar and source-tree paths are relative to it).
PACKAGE_DIR = Path(__file__).resolve().parent


def _read() -> str:
    try:
        return metadata.version("decom")
    except metadata.PackageNotFoundError:
        pass
    # Running from a source tree or a --py-files zip: the zip carries the number, a checkout has the pom.
    try:  # read through the package's loader: works inside a zip too
        return resources.files("decom").joinpath("VERSION").read_text(encoding="utf-8").strip()
    except (OSError, ModuleNotFoundError):
        pass
    pom = PACKAGE_DIR.parent / "jvm-shim" / "pom.xml"
    if pom.is_file():
        m = re.search(r"<version>([^<]+)</version><!-- decom-version -->", pom.read_text("utf-8"))
        if m:
            return m.group(1)
    return "0+unknown"


__version__ = _read()
