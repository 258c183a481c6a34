"""Where the shim jar of this decom version is: used by the driver side, the CLI and the agent."""

from __future__ import annotations

from ._errors import ShimNotFoundError
from ._version import PACKAGE_DIR, __version__

__all__ = ["jar_path"]


def jar_path() -> str:
    """The shim jar of this decom version: the one inside the wheel, or a source tree's build."""
    here = PACKAGE_DIR
    name = f"decom-shim-{__version__}.jar"
    for candidate in (here / "jars" / name, here.parent / "jvm-shim" / "target" / name):
        if candidate.is_file():
            return str(candidate)
    raise ShimNotFoundError(
        f"{name} is neither inside the decom package nor built in this source tree: "
        "install the decom wheel, or run `make jar` in the decom checkout.")
