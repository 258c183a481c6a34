"""Per-session executor caps in sparkmagic's ``config.json`` (``session_configs``).

sparkmagic sends ``session_configs`` as the body of Livy's ``POST /sessions`` (``conf``,
``executorMemory``, ``executorCores``, ``driverMemory``, ``numExecutors``, ...). This module merges
a cap into it, keeps every other key and value, writes a timestamped backup first, and writes
nothing when the file already says the same (idempotent) or cannot be read as JSON.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigError

__all__ = ["DEFAULT_CONFIG_PATH", "TRADE_OFF", "SparkmagicUpdate", "session_caps", "merge_session_configs",
           "update_sparkmagic_config", "configure_cell"]

DEFAULT_CONFIG_PATH = "~/.sparkmagic/config.json"
MAX_KEY = "spark.dynamicAllocation.maxExecutors"
MIN_KEY = "spark.dynamicAllocation.minExecutors"
INITIAL_KEY = "spark.dynamicAllocation.initialExecutors"

TRADE_OFF = (
    "Trade-off: the cap holds on an idle cluster too. A session capped at {n} executor(s) never gets more, "
    "even when nobody else is using the cluster; without a cap, one session under dynamic allocation can "
    "take every executor and the next user's session waits (\"did not start up in 60 seconds\"). "
    "The cap acts through dynamic allocation (on by default on EMR and Glue); with it off, numExecutors "
    "is the fixed count. New sessions pick the cap up: restart the notebook kernel, or run the "
    "%%configure -f cell in a running notebook (it restarts that session)."
)

# Spark/JVM sizes as Livy takes them: 512m, 4g, 1000M, 2GB.
_JVM_SIZE = re.compile(r"^\d+(?:[kmgtp]b?)?$", re.IGNORECASE)


def _check_size(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not _JVM_SIZE.match(text):
        raise ConfigError(f"{what}={value!r} is not a JVM memory size: use e.g. 2g, 4096m or 10g")
    return text


def _check_count(value: int | None, what: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{what}={value!r} must be a whole number of at least {minimum}")
    return value


def session_caps(max_executors: int, *, executor_memory: str | None = None, executor_cores: int | None = None,
                 driver_memory: str | None = None, min_executors: int | None = None) -> dict[str, Any]:
    """The ``session_configs`` keys decom sets (Livy session-body names; conf values as strings, as
    Livy's ``conf`` is a string map)."""
    n = _check_count(max_executors, "max executors", 1)
    low = _check_count(min_executors, "min executors", 0)
    if low is not None and n is not None and low > n:
        raise ConfigError(f"min executors ({low}) must not be more than max executors ({n})")
    caps: dict[str, Any] = {"conf": {MAX_KEY: str(n)}}
    if low is not None:
        caps["conf"][MIN_KEY] = str(low)
    memory = _check_size(executor_memory, "executor memory")
    if memory is not None:
        caps["executorMemory"] = memory
    cores = _check_count(executor_cores, "executor cores", 1)
    if cores is not None:
        caps["executorCores"] = cores
    driver = _check_size(driver_memory, "driver memory")
    if driver is not None:
        caps["driverMemory"] = driver
    return caps


def _as_int(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def merge_session_configs(existing: dict[str, Any] | None, caps: dict[str, Any]) -> dict[str, Any]:
    """``existing`` session_configs with ``caps`` laid over it; every other key kept as it is.
    Refuses (ConfigError) a merge that would give Spark a starting count above the cap."""
    merged = copy.deepcopy(existing) if existing else {}
    conf = merged.get("conf", {})
    if not isinstance(conf, dict):
        raise ConfigError(f"session_configs.conf is {type(conf).__name__}, not a JSON object: fix it by hand "
                          "(it holds Spark settings, e.g. {\"spark.executor.cores\": \"2\"})")
    conf = dict(conf)
    conf.update(caps.get("conf", {}))
    merged["conf"] = conf
    for key, value in caps.items():
        if key != "conf":
            merged[key] = value
    cap = _as_int(conf.get(MAX_KEY))
    if cap is not None:
        for where, value in (("session_configs.numExecutors", merged.get("numExecutors")),
                             (f"session_configs.conf.{MIN_KEY}", conf.get(MIN_KEY)),
                             (f"session_configs.conf.{INITIAL_KEY}", conf.get(INITIAL_KEY)),
                             ("session_configs.conf.spark.executor.instances", conf.get("spark.executor.instances"))):
            start = _as_int(value) if value is not None else None
            if start is not None and start > cap:
                raise ConfigError(f"{where} is {start}, more than the cap of {cap}: pass a --max-executors of "
                                  f"at least {start}, or lower {where} in the file first")
    return merged


def configure_cell(session_configs: dict[str, Any]) -> str:
    """The notebook cell that applies the same session config to a running notebook (it restarts
    the session): ``%%configure -f`` and the JSON on the next line."""
    return "%%configure -f\n" + json.dumps(session_configs, separators=(", ", ": "))


@dataclass(frozen=True)
class SparkmagicUpdate:
    path: Path
    #: The whole config after the merge (what is, or would be, in the file).
    config: dict[str, Any]
    session_configs: dict[str, Any]
    #: False when the file already said the same (nothing written).
    changed: bool
    #: True when there was no file: it is (or would be) created.
    created: bool
    #: The backup of the previous file, when one was written.
    backup: Path | None
    dry_run: bool


def _backup_path(target: Path, now: float) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    candidate = target.with_name(f"{target.name}.bak-{stamp}")
    n = 1
    while candidate.exists():
        candidate = target.with_name(f"{target.name}.bak-{stamp}-{n}")
        n += 1
    return candidate


def _write_atomically(target: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=str(target.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def update_sparkmagic_config(path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH, *, max_executors: int,
                             executor_memory: str | None = None, executor_cores: int | None = None,
                             driver_memory: str | None = None, min_executors: int | None = None,
                             dry_run: bool = False, now: float | None = None) -> SparkmagicUpdate:
    """Merge the caps into ``path``'s ``session_configs`` (creating the file when missing), after a
    backup ``config.json.bak-<YYYYmmdd-HHMMSS>``. Writes nothing when ``dry_run``, when nothing
    changes, or on any error (ConfigError says what to fix)."""
    caps = session_caps(max_executors, executor_memory=executor_memory, executor_cores=executor_cores,
                        driver_memory=driver_memory, min_executors=min_executors)
    shown = Path(os.path.expanduser(str(path)))
    # Write through a symlink to its target (dotfile managers link config.json), not over the link.
    target = Path(os.path.realpath(shown))
    created = not target.exists()
    original: dict[str, Any] = {}
    mode = 0o600
    if not created:
        if not target.is_file():
            raise ConfigError(f"{shown} is not a file: give the path of sparkmagic's config.json with --config")
        try:
            raw = target.read_text(encoding="utf-8")
            mode = stat.S_IMODE(target.stat().st_mode)
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read {shown} ({getattr(e, 'strerror', None) or e}): nothing written") from None
        if raw.strip():
            try:
                loaded = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{shown} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}): "
                                  "fix or move the file; nothing written") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"{shown} holds a JSON {type(loaded).__name__}, not the object sparkmagic "
                                  "reads: fix or move the file; nothing written")
            original = loaded
    existing = original.get("session_configs")
    if existing is not None and not isinstance(existing, dict):
        raise ConfigError(f"session_configs in {shown} is a JSON {type(existing).__name__}, not an object: fix it "
                          "by hand; nothing written")
    merged_sc = merge_session_configs(existing, caps)
    config = dict(original)
    config["session_configs"] = merged_sc
    changed = created or config != original
    backup: Path | None = None
    if changed and not dry_run:
        text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if not created:
                backup = _backup_path(target, time.time() if now is None else now)
                shutil.copy2(target, backup)
            _write_atomically(target, text, mode)
        except OSError as e:
            raise ConfigError(f"cannot write {shown} ({e.strerror or e})") from None
    return SparkmagicUpdate(shown, config, merged_sc, changed, created, backup, dry_run)
