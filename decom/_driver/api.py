"""The entry points: ``configure`` before the session starts, ``enable`` once it runs."""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any, TypeVar

from .._errors import ShimNotFoundError
from .._jar import jar_path
from .._redact import SPARK_REDACTION_DEFAULT, USERINFO_REDACTION
from .config import DecomConfig
from .controller import Controller
from .jvm import JvmShim, _spark_context

__all__ = ["configure", "enable", "jar_path", "PLUGIN_CLASS"]

log = logging.getLogger("decom")
PLUGIN_CLASS = "io.decom.DecomPlugin"
B = TypeVar("B")

_controllers: dict[int, Controller] = {}
_lock = threading.Lock()


def _append(options: dict[str, Any], key: str, value: str) -> None:
    current = [v for v in str(options.get(key, "") or "").split(",") if v.strip()]
    if value not in current:
        current.append(value)
    options[key] = ",".join(current)


def configure(builder: B) -> B:
    """Add the decom shim jar and plugin to a ``SparkSession.Builder`` before the session starts.

    ``spark = decom.configure(SparkSession.builder).getOrCreate(); decom.enable(spark)``
    """
    options = getattr(builder, "_options", None)
    if not isinstance(options, dict):
        raise TypeError("decom.configure() takes a pyspark SparkSession.Builder")
    jar = jar_path()
    _append(options, "spark.jars", jar)
    _append(options, "spark.plugins", PLUGIN_CLASS)
    _redact_userinfo(options)
    _add_to_running_driver_jvm(jar)
    return builder


def _redact_userinfo(options: dict[str, Any]) -> None:
    """Make Spark redact conf values with URL user info (its UI, event log, logs). Merged with the
    regex the builder or spark-defaults.conf already sets (the builder's option would hide the latter)."""
    current = options.get("spark.redaction.regex") or _spark_defaults().get("spark.redaction.regex") \
        or SPARK_REDACTION_DEFAULT
    if USERINFO_REDACTION not in str(current):
        options["spark.redaction.regex"] = f"{current}|{USERINFO_REDACTION}"


def _spark_defaults() -> dict[str, str]:
    """spark-defaults.conf as spark-submit finds it (SPARK_CONF_DIR, else SPARK_HOME/conf); {} if none."""
    conf_dir = os.environ.get("SPARK_CONF_DIR") or os.path.join(os.environ.get("SPARK_HOME", ""), "conf")
    out: dict[str, str] = {}
    try:
        with open(os.path.join(conf_dir, "spark-defaults.conf"), encoding="utf-8") as f:
            for line in f:
                m = re.match(r"^\s*([^\s=:#!]+)\s*[=:\s]\s*(.*?)\s*$", line)  # Java properties: k v, k=v, k: v
                if m:
                    out[m.group(1)] = m.group(2)
    except (OSError, UnicodeDecodeError):
        pass
    return out


def _add_to_running_driver_jvm(jar: str) -> None:
    """`spark.jars` reaches the driver's classpath only when the driver JVM is launched. If this
    Python process already launched one (an earlier session, a notebook), add the jar to the loader
    Spark resolves plugins through, so the next session can load io.decom.DecomPlugin."""
    from pyspark import SparkContext

    jvm = SparkContext._jvm
    if jvm is None:
        return
    from py4j.java_gateway import JavaClass

    if isinstance(jvm.io.decom.DecomShim, JavaClass):
        return  # already loadable
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    try:
        loader.addURL(jvm.java.io.File(jar).toURI().toURL())
    except Exception as e:  # noqa: BLE001 - a loader without addURL
        raise ShimNotFoundError(
            "the Spark driver JVM of this Python process was started without the decom shim and "
            f"cannot take it now ({e}): restart the Python process (kernel) and call "
            "decom.configure(SparkSession.builder) before the first session") from e
    log.info("decom: added %s to the running driver JVM", jar)


def enable(spark: Any, *, strict: bool = False, start_poller: bool = True,
           **options: Any) -> Controller:
    """Attach decom's control plane to a running session and return its :class:`Controller`: its
    ``report()``, the by-hand calls, and ``on_node_let_go(callback)`` (told of each node the app holds
    nothing on any more, a :class:`~decom.NodeLetGo`).

    Idempotent: a second call returns the same controller (also one the spark-submit hook started, so a
    job run through it can still add hooks). Options are the attribute names of
    :class:`decom.DecomConfig` (e.g. ``exclude_timeout="30min"``) and win over the Spark conf.
    A bad setting is logged and keeps its default (``strict=True`` raises instead); a missing or
    mismatched shim jar, Spark Connect or an unsupported Spark raise a typed :class:`DecomError`.
    """
    sc = _spark_context(spark)
    _ensure_log_handler()
    key = id(sc._jsc)
    with _lock:
        existing = _controllers.get(key)
        if existing is not None and existing.report()["enabled"]:
            if options:
                log.warning("decom: already enabled on this session; options %s ignored",
                            sorted(options))
            return existing
        conf = {str(k): str(v) for k, v in sc.getConf().getAll()}
        # The app's own Hadoop configuration knows the RM in every deploy mode (in cluster mode it is
        # the yarn-site the client shipped); offered to RM discovery like spark.hadoop.* keys.
        on_yarn = str(sc.master).startswith("yarn")
        if on_yarn:
            for k, v in _yarn_rm_settings(sc).items():
                conf.setdefault(f"spark.hadoop.{k}", v)
        config = DecomConfig.resolve(conf, options, strict=strict)
        shim = JvmShim.for_session(spark)
        controller = Controller(shim, config)
        if start_poller and config.enabled:
            if on_yarn or config.rm_addresses:
                from .poller import start_poller as _start

                _start(controller, config, conf)
            else:
                # Executors of a non-YARN master don't run on YARN nodes: nothing to poll.
                log.info("decom: master %s is not YARN and spark.decom.yarn.rm.addresses is unset: "
                         "nodes are reported by hand", sc.master)
        if start_poller and config.enabled and on_yarn and config.rpc_deadline:
            from .deadlines import DeadlineReader

            controller.attach_deadline_reader(DeadlineReader(shim, controller).start())
        if start_poller and config.enabled and config.agent_url:
            _link_agent(controller, config, str(sc.applicationId))
        _controllers[key] = controller
        return controller


def _link_agent(controller: Controller, config: DecomConfig, app_id: str) -> None:
    """Report nodes let go to the cluster agent; a set-up problem is logged and decom runs without it."""
    from .._errors import AgentError
    from .agent_link import AgentLink

    try:
        link = AgentLink(config.agent_url, config.agent_secret_file, app_id, controller.nodes_let_go)
    except AgentError as e:
        log.error("decom: not reporting to the decom agent: %s", e)
        return
    controller.on_node_let_go(link.changed)
    controller.on_stop(link.stop)
    link.start()


def _ensure_log_handler() -> None:
    """decom's INFO lines (one per transition and action) belong in the driver log: if the
    application configured no Python logging, write them to stderr in Spark's log4j layout."""
    if log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%y/%m/%d %H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _yarn_rm_settings(sc: Any) -> dict[str, str]:
    try:
        found = sc._jsc.hadoopConfiguration().getValByRegex(r"^yarn\.(resourcemanager\.|http\.policy$)")
        return {str(k): str(v) for k, v in dict(found).items()}
    except Exception as e:  # noqa: BLE001 - discovery has other sources; never fail enable() here
        log.debug("decom: cannot read the app's Hadoop configuration: %s", e)
        return {}
