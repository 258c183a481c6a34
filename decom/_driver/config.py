"""decom's settings: EMR's Spark keys, decom's own ``spark.decom.*`` keys, an optional YAML file.

Precedence, highest first: ``decom.enable(spark, **options)`` keyword options, the Spark conf,
the YAML file named by ``spark.decom.config``, the defaults below.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .._errors import ConfigError
from .._units import parse_duration

__all__ = ["DecomConfig", "Setting", "KEYS", "JVM_KEYS"]

def _parse_positive_duration(value: object, key: str) -> float:
    seconds = parse_duration(value, key)
    if seconds <= 0:
        raise ConfigError(f"{key}={value!r} must be more than 0: use e.g. 1s or 500ms")
    return seconds


def _parse_bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{key}={value!r} is not a boolean: use true or false")


def _parse_int(value: object, key: str) -> int:
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{key}={value!r} is not a whole number") from None
    if n < 1:
        raise ConfigError(f"{key}={value!r} must be at least 1")
    return n


def _parse_list(value: object, key: str) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return tuple(str(i).strip() for i in items if str(i).strip())


def _text(value: object, key: str) -> str:
    if isinstance(value, (list, tuple, dict, set)):
        raise ConfigError(f"{key}={value!r} is not a single value: give one string")
    return str(value).strip()


def _parse_str(value: object, key: str) -> str:
    return _text(value, key)


def _parse_user(value: object, key: str) -> str:
    name = _text(value, key)
    if any(c.isspace() or not c.isprintable() for c in name):
        raise ConfigError(f"{key}={name!r} is not a user name (it has spaces or control characters)")
    return name


def _shown(address: str) -> str:
    """An address as an error message may show it: never user info (user:password@)."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", address)


def _parse_addresses(value: object, key: str) -> tuple[str, ...]:
    """ResourceManager web addresses: ``http(s)://host[:port][/path]`` or ``host[:port]``."""
    addresses = _parse_list(value, key)
    for a in addresses:
        parts = urlsplit(a if "://" in a else "http://" + a)
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
            usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        except ValueError:
            usable = False
        if not usable:
            raise ConfigError(f"{key}: {_shown(a)!r} is not a ResourceManager web address: use e.g. "
                              "http://rm-host:8088 (comma-separated for HA)")
    return addresses


def _parse_agent_url(value: object, key: str) -> str:
    """The decom agent's endpoint: ``http(s)://host:port``."""
    url = _text(value, key)
    if not url:
        return url
    parts = urlsplit(url)
    try:
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname) and parts.port is not None
    except ValueError:
        usable = False
    if not usable:
        raise ConfigError(f"{key}: {_shown(url)!r} is not the decom agent's address: use e.g. "
                          "http://agent-host:8788 (what `decom agent run --bind` listens on)")
    return url


def _parse_file(value: object, key: str) -> str:
    path = _text(value, key)
    if path and not os.path.isfile(path):
        raise ConfigError(f"{key}={path!r}: no such file")
    return path


def _parse_log_path(value: object, key: str) -> str:
    path = _text(value, key)
    if not path:
        return path
    if os.path.isdir(path):
        raise ConfigError(f"{key}={path!r} is a directory: name a file to append to, e.g. "
                          f"{path.rstrip('/')}/decom.jsonl")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"{key}={path!r}: the directory {parent} does not exist")
    return path


def _parse_auth(value: object, key: str) -> str:
    text = _text(value, key).lower()
    if text not in ("simple", "kerberos", "none"):
        raise ConfigError(f"{key}={value!r}: use simple, kerberos or none")
    return text


@dataclass(frozen=True)
class Setting:
    """One setting: its Spark conf key, the DecomConfig attribute, how its value is parsed, and what it does."""

    key: str
    attr: str
    parse: Callable[[object, str], Any]
    doc: str


def _setting(key: str, parse: Callable[[object, str], Any], default: Any, doc: str) -> Any:
    """A DecomConfig field declared with its key, parser and doc: the one place each setting is named."""
    return field(default=default, metadata={"key": key, "parse": parse, "doc": doc})


#: Besides spark.decom.*, keys under these prefixes (EMR's) are checked for typos of decom's keys.
_EMR_PREFIXES = ("spark.blacklist.decommissioning.", "spark.resourceManager.", "spark.decommissioning.",
                 "spark.stage.attempt.ignoreOnDecommission")

#: ``spark.decom.*`` keys the JVM shim reads itself from the Spark conf (the last one the plugin sets).
JVM_KEYS = ("spark.decom.stage.maxConsecutiveAttempts", "spark.decom.stage.maxDecommissionRetries",
            "spark.decom.releaseIdleExecutors", "spark.decom.keepCapacity", "spark.decom.retryFetchingTasks",
            "spark.decom.migrateBlocks", "spark.decom.migrationWait", "spark.decom.dropExecutorsWithoutLocalDirs",
            "spark.decom.dropExecutorsOnShuffleServiceLoss", "spark.decom.internal.decommissionEnabledByDecom")


@dataclass(frozen=True)
class DecomConfig:
    """The resolved settings; durations are in seconds. Each field names its Spark conf key."""

    exclude_enabled: bool = _setting(
        "spark.blacklist.decommissioning.enabled", _parse_bool, True,
        "EMR: a DECOMMISSIONING node gets no new tasks; running ones finish.")
    exclude_timeout: float = _setting(
        "spark.blacklist.decommissioning.timeout", _parse_positive_duration, 3600.0,
        "EMR: how long that exclusion lasts; set it >= YARN's graceful decommission timeout.")
    cleanup_enabled: bool = _setting(
        "spark.resourceManager.cleanupExpiredHost", _parse_bool, True,
        "EMR: at DECOMMISSIONED, unregister the node's shuffle outputs and cached blocks at once.")
    exempt_enabled: bool = _setting(
        "spark.stage.attempt.ignoreOnDecommissionFetchFailure", _parse_bool, True,
        "EMR: stage attempts failed by decommissioned nodes don't count toward the retry limit.")
    deadline_threshold: float = _setting(
        "spark.decommissioning.timeout.threshold", parse_duration, 20.0,
        "EMR: a node whose decommission deadline is nearer than this is handled as gone now.")
    migration_margin: float = _setting(
        "spark.decom.migrationMargin", _parse_positive_duration, 5.0,
        "A node inside the deadline threshold whose executors were told to move their blocks "
        "(spark.decom.migrateBlocks) is handled as gone only this long before its deadline: what has not "
        "moved by then is dropped in one step.")
    enabled: bool = _setting("spark.decom.enabled", _parse_bool, True, "Turn decom off without removing it.")
    rm_addresses: tuple[str, ...] = _setting(
        "spark.decom.yarn.rm.addresses", _parse_addresses, (),
        "ResourceManager web addresses (comma-separated for HA); default: from yarn-site.xml.")
    poll_interval: float = _setting(
        "spark.decom.poll.interval", _parse_positive_duration, 1.0,
        "How often the ResourceManager is asked for node states.")
    poll_timeout: float = _setting(
        "spark.decom.poll.timeout", _parse_positive_duration, 5.0, "HTTP timeout of one ResourceManager request.")
    auth: str = _setting(
        "spark.decom.yarn.auth", _parse_auth, "simple",
        "simple (user.name), kerberos (SPNEGO, needs decom[kerberos]) or none.")
    user: str = _setting("spark.decom.yarn.user", _parse_user, "", "user.name for simple auth.")
    ca_bundle: str = _setting(
        "spark.decom.yarn.tls.caBundle", _parse_file, "", "CA bundle (PEM) for an https ResourceManager.")
    rpc_deadline: bool = _setting(
        "spark.decom.yarn.rpcDeadline", _parse_bool, True,
        "On YARN, read each DECOMMISSIONING node's timeout over the RM's client RPC (REST has none), so the "
        "deadline threshold acts on stock Hadoop.")
    event_log: str = _setting(
        "spark.decom.eventLog", _parse_log_path, "",
        "Append decom's transitions and actions as JSON lines to this file.")
    agent_url: str = _setting(
        "spark.decom.agent.url", _parse_agent_url, "",
        "The cluster's decom agent (http://host:port): the driver tells it which DECOMMISSIONING nodes the "
        "app holds nothing on, so the agent can finish their decommission before the app ends.")
    agent_secret_file: str = _setting(
        "spark.decom.agent.secretFile", _parse_file, "",
        "A file holding the agent's shared secret (signs the driver's reports); needed with agent.url.")
    config_file: str = _setting("spark.decom.config", _parse_str, "", "A YAML file with any of these keys.")
    #: Problems found while resolving; each names the key and the fix. Empty when all is well.
    errors: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def resolve(
        cls,
        spark_conf: Mapping[str, str] | None = None,
        options: Mapping[str, object] | None = None,
        *,
        strict: bool = False,
    ) -> DecomConfig:
        """Resolve from the Spark conf and ``enable()`` options.

        A bad key or value is reported in ``errors`` and that key keeps its default, so the job
        still runs; with ``strict=True`` the first problem raises :class:`ConfigError` instead.
        """
        spark_conf = dict(spark_conf or {})
        errors: list[str] = []
        values: dict[str, Any] = {}

        def take(key: str, raw: object, source: str) -> None:
            spec = _BY_KEY.get(key)
            if spec is None:
                hint = difflib.get_close_matches(key, list(_BY_KEY), n=1)
                msg = f"unknown decom key {key!r} in {source}" + (
                    f": did you mean {hint[0]!r}?" if hint else "")
                errors.append(msg)
                return
            try:
                values[spec.attr] = spec.parse(raw, key)
            except ConfigError as e:
                errors.append(f"{e} (in {source}; keeping the default)")

        config_file = spark_conf.get("spark.decom.config") or (options or {}).get("config_file")
        if config_file:
            for key, raw in _load_yaml(str(config_file), errors).items():
                take(key, raw, f"YAML file {config_file}")
        for key, raw in spark_conf.items():
            if key in _BY_KEY or key.startswith("spark.decom."):
                if key in JVM_KEYS:
                    continue  # read by the JVM shim
                take(key, raw, "the Spark conf")
            elif key.startswith(_EMR_PREFIXES) and difflib.get_close_matches(key, list(_BY_KEY), n=1, cutoff=0.85):
                take(key, raw, "the Spark conf")  # a typo of an EMR key: unknown, with the closest one
        for attr, raw in (options or {}).items():
            spec = _BY_ATTR.get(attr)
            if spec is None:
                hint = difflib.get_close_matches(attr, list(_BY_ATTR), n=1)
                errors.append(f"unknown decom.enable() option {attr!r}" + (
                    f": did you mean {hint[0]!r}?" if hint else ""))
                continue
            take(spec.key, raw, "decom.enable() options")
        if strict and errors:
            raise ConfigError("; ".join(errors))
        return dataclasses.replace(cls(**values), errors=tuple(errors))


def _load_yaml(path: str, errors: list[str]) -> dict[str, object]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        errors.append(f"spark.decom.config: cannot read {path!r}: {e.strerror or e}")
        return {}
    except UnicodeDecodeError as e:
        errors.append(f"spark.decom.config: {path!r} is not UTF-8 text (byte {e.start}): save it as UTF-8 YAML")
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        errors.append(f"spark.decom.config: {path!r} is not valid YAML: {e}")
        return {}
    if data is None:
        return {}
    if not isinstance(data, dict):
        errors.append(f"spark.decom.config: {path!r} must be a mapping of keys to values")
        return {}
    return {str(k): v for k, v in _flatten(data).items()}


def _flatten(data: Mapping[Any, Any], prefix: str = "") -> dict[str, object]:
    """Accept both flat keys and nested sections (``spark: {decom: {poll: {interval: 2s}}}``)."""
    out: dict[str, object] = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and key not in _BY_KEY:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


#: Every key decom reads, in the order the docs list them: DecomConfig's fields.
KEYS: tuple[Setting, ...] = tuple(Setting(f.metadata["key"], f.name, f.metadata["parse"], f.metadata["doc"])
                                  for f in dataclasses.fields(DecomConfig) if "key" in f.metadata)
_BY_KEY = {k.key: k for k in KEYS}
_BY_ATTR = {k.attr: k for k in KEYS}
