"""``decom dist``: what ``spark-submit`` needs to run an unmodified PySpark job with decom.

It writes two files: the shim jar, and ``decom.zip`` for ``--py-files``: the ``decom`` package,
the pure-Python libraries it needs in the driver (httpx and its dependencies, PyYAML without its
C extension), and a top-level ``sitecustomize.py`` that enables decom when the app's conf names the
plugin (see :mod:`decom._driver.autoenable`). A cluster whose Python has only pyspark can run it.
"""

from __future__ import annotations

import importlib.util
import shutil
import zipfile
from pathlib import Path

from .._errors import DecomError
from .._version import PACKAGE_DIR, __version__
from .api import jar_path
from .autoenable import SITECUSTOMIZE

__all__ = ["build_dist", "ZIP_NAME", "BUNDLED"]

ZIP_NAME = "decom.zip"
#: Libraries the driver-side control plane imports, bundled when installed (pure Python parts only).
BUNDLED = ("httpx", "httpcore", "h11", "anyio", "sniffio", "idna", "certifi", "yaml",
           "typing_extensions", "exceptiongroup")
_SKIP_SUFFIXES = (".pyc", ".so", ".pyd", ".dylib")


def _add_tree(zf: zipfile.ZipFile, root: Path, arcroot: str, skip_dirs: tuple[str, ...] = ()) -> None:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or "__pycache__" in rel.parts or path.suffix in _SKIP_SUFFIXES:
            continue
        if rel.parts and rel.parts[0] in skip_dirs:
            continue
        zf.write(path, f"{arcroot}/{rel.as_posix()}")


def build_dist(out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``decom.zip`` and the shim jar into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DecomError(f"cannot create the output directory {out}: {e.strerror or e}") from e
    jar_src = Path(jar_path())
    jar = out / jar_src.name
    if jar_src.resolve() != jar.resolve():
        shutil.copy2(jar_src, jar)
    package = PACKAGE_DIR
    zpath = out / ZIP_NAME
    tmp = zpath.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("sitecustomize.py", SITECUSTOMIZE)
        _add_tree(zf, package, "decom", skip_dirs=("jars",))
        zf.writestr("decom/VERSION", __version__ + "\n")  # no package metadata inside a zip
        for name in BUNDLED:
            spec = importlib.util.find_spec(name)
            if spec is None or spec.origin is None:
                continue  # not needed on this Python (e.g. exceptiongroup on 3.11+)
            origin = Path(spec.origin)
            if spec.submodule_search_locations:
                _add_tree(zf, origin.parent, name)
            elif origin.suffix == ".py":
                zf.write(origin, origin.name)
    tmp.replace(zpath)
    return zpath, jar
