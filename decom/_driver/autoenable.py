"""No code change: enable decom in any PySpark driver whose Spark conf names the decom plugin.

``spark-submit --py-files decom.zip --jars decom-shim.jar --conf spark.plugins=io.decom.DecomPlugin job.py``

``decom.zip`` (``make dist`` or ``decom dist``) carries a top-level ``sitecustomize.py``. spark-submit
puts ``--py-files`` on the driver's PYTHONPATH in both YARN deploy modes, and Python imports
``sitecustomize`` at start-up, which calls :func:`install`. That wraps ``SparkContext.__init__``
once pyspark is imported, so that when a context comes up with ``io.decom.DecomPlugin`` in
``spark.plugins`` (and ``spark.decom.enabled`` is not false), :func:`decom.enable` runs on it. The
same file in executors' Python workers only installs the cheap import hook; no context starts there.
Nothing here may break the user's job: every failure is logged and swallowed.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["install", "maybe_enable", "SITECUSTOMIZE"]

log = logging.getLogger("decom")
_CONTEXT_MODULE = "pyspark.core.context"
_PLUGIN = "io.decom.DecomPlugin"
_installed = False

#: The sitecustomize.py that ``decom dist`` puts at the top of decom.zip.
SITECUSTOMIZE = '''\
"""decom's no-code-change hook, from decom.zip: see decom._driver.autoenable."""


def _decom_hook():
    try:
        from decom._driver.autoenable import install
        install()
    except Exception as e:  # never break the interpreter start-up
        import sys
        print(f"decom: auto-enable hook not installed: {e}", file=sys.stderr)


def _chain():
    # Hand over to the sitecustomize this file shadows (e.g. the distribution's).
    import importlib.machinery
    import importlib.util
    import os
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None and spec.origin != __file__:
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            print(f"decom: the shadowed sitecustomize {spec.origin} failed: {e}", file=sys.stderr)


_decom_hook()
_chain()
'''


def install() -> None:
    """Wrap SparkContext.__init__ now if pyspark is loaded, else as soon as it is."""
    global _installed
    if _installed:
        return
    _installed = True
    module = sys.modules.get(_CONTEXT_MODULE)
    if module is not None:
        _wrap(module)
    else:
        sys.meta_path.insert(0, _ContextFinder())


class _ContextFinder(importlib.abc.MetaPathFinder):
    """Sees pyspark's context module being imported and wraps SparkContext once it is executed."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != _CONTEXT_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _wrap(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _wrap(module: ModuleType) -> None:
    cls = getattr(module, "SparkContext", None)
    if cls is None or getattr(cls.__init__, "_decom_wrapped", False):
        return
    original = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        maybe_enable(self)

    __init__._decom_wrapped = True  # type: ignore[attr-defined]
    __init__.__doc__ = original.__doc__
    cls.__init__ = __init__


def maybe_enable(sc: Any) -> Any:
    """decom.enable(sc) when the context's conf asks for decom; returns the controller or None."""
    try:
        conf = sc.getConf()
        plugins = [p.strip() for p in str(conf.get("spark.plugins", "") or "").split(",")]
        if _PLUGIN not in plugins:
            return None
        from .._errors import ConfigError
        from .api import _ensure_log_handler, enable
        from .config import _parse_bool

        _ensure_log_handler()
        try:
            wanted = _parse_bool(conf.get("spark.decom.enabled", "true"), "spark.decom.enabled")
        except ConfigError:
            wanted = True  # enable() logs the bad value and keeps the default (on)
        if not wanted:
            log.info("decom: spark.decom.enabled=false: not enabling")
            return None
        controller = enable(sc)
        log.info("decom: enabled on %s (%s) by the decom.zip hook", sc.applicationId, sc.master)
        return controller
    except Exception as e:  # noqa: BLE001 - the user's job goes on without decom
        log.error("decom: could not enable decom on this Spark application, which runs on without it: %s", e)
        return None
