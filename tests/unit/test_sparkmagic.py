"""decom sparkmagic-config: merge caps into real sparkmagic-shaped config.json files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import decom._cli.main as cli
from decom._errors import ConfigError
from decom._sessions.sparkmagic import configure_cell, update_sparkmagic_config

# The shape of sparkmagic's example_config.json (jupyter-incubator/sparkmagic), as users keep it.
EXAMPLE: dict[str, Any] = {
    "kernel_python_credentials": {"username": "alice", "password": "hunter2-secret",
                                  "url": "http://livy.example:8998", "auth": "Basic_Access"},
    "kernel_scala_credentials": {"username": "", "password": "", "url": "http://localhost:8998", "auth": "None"},
    "kernel_r_credentials": {"username": "", "password": "", "url": "http://localhost:8998"},
    "logging_config": {"version": 1, "formatters": {"magicsFormatter": {
        "format": "%(asctime)s\t%(levelname)s\t%(message)s", "datefmt": ""}},
        "handlers": {"magicsHandler": {"class": "hdijupyterutils.filehandler.MagicsFileHandler",
                                       "formatter": "magicsFormatter", "home_path": "~/.sparkmagic"}},
        "loggers": {"magicsLogger": {"handlers": ["magicsHandler"], "level": "DEBUG", "propagate": 0}}},
    "authenticators": {"Kerberos": "sparkmagic.auth.kerberos.Kerberos",
                       "None": "sparkmagic.auth.customauth.Authenticator",
                       "Basic_Access": "sparkmagic.auth.basic.Basic"},
    "wait_for_idle_timeout_seconds": 15,
    "livy_session_startup_timeout_seconds": 60,
    "fatal_error_suggestion": "The code failed because of a fatal error:\n\t{}.",
    "ignore_ssl_errors": False,
    "session_configs": {"driverMemory": "1000M", "executorCores": 2,
                        "conf": {"spark.pyspark.python": "python3", "spark.executor.memoryOverhead": "1g"}},
    "use_auto_viz": True, "coerce_dataframe": True, "max_results_sql": 2500, "pyspark_dataframe_encoding": "utf-8",
    "heartbeat_refresh_seconds": 30, "livy_server_heartbeat_timeout_seconds": 0, "heartbeat_retry_seconds": 10,
    "server_extension_default_kernel_name": "pysparkkernel", "custom_headers": {},
    "retry_policy": "configurable", "retry_seconds_to_sleep_list": [0.2, 0.5, 1, 3, 5],
    "configurable_retry_policy_max_retries": 8,
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / ".sparkmagic" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(EXAMPLE, indent=4))
    os.chmod(path, 0o600)  # it holds a password
    return path


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".bak-*"))


def test_merge_keeps_everything_else_and_backs_up(config: Path) -> None:
    before = config.read_bytes()
    update = update_sparkmagic_config(config, max_executors=4, executor_memory="4g")
    assert update.changed and not update.created
    data = json.loads(config.read_text())
    # Every key other than session_configs, exactly as it was.
    assert {k: v for k, v in data.items() if k != "session_configs"} == \
        {k: v for k, v in EXAMPLE.items() if k != "session_configs"}
    assert data["session_configs"] == {
        "driverMemory": "1000M", "executorCores": 2, "executorMemory": "4g",
        "conf": {"spark.pyspark.python": "python3", "spark.executor.memoryOverhead": "1g",
                 "spark.dynamicAllocation.maxExecutors": "4"}}
    assert backups(config) == [update.backup]
    assert update.backup is not None and update.backup.read_bytes() == before
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(update.backup.stat().st_mode) == 0o600


def test_idempotent(config: Path) -> None:
    update_sparkmagic_config(config, max_executors=4)
    after_first = config.read_bytes()
    again = update_sparkmagic_config(config, max_executors=4)
    assert not again.changed and again.backup is None
    assert config.read_bytes() == after_first and len(backups(config)) == 1
    # A new value is a change again, with a second backup (distinct name even within one second).
    third = update_sparkmagic_config(config, max_executors=6)
    assert third.changed and len(backups(config)) == 2
    assert json.loads(config.read_text())["session_configs"]["conf"]["spark.dynamicAllocation.maxExecutors"] == "6"


def test_missing_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.json"
    update = update_sparkmagic_config(path, max_executors=3, min_executors=1)
    assert update.created and update.backup is None
    assert json.loads(path.read_text()) == {"session_configs": {"conf": {
        "spark.dynamicAllocation.maxExecutors": "3", "spark.dynamicAllocation.minExecutors": "1"}}}


def test_dry_run_writes_nothing(config: Path) -> None:
    before = config.read_bytes()
    update = update_sparkmagic_config(config, max_executors=4, dry_run=True)
    assert update.changed and update.backup is None
    assert config.read_bytes() == before and backups(config) == []
    assert update.config["session_configs"]["conf"]["spark.dynamicAllocation.maxExecutors"] == "4"


@pytest.mark.parametrize(("text", "words"), [
    ('{"session_configs": {"conf": {}},}', "not valid JSON (Expecting property name"),
    ("[1, 2]", "holds a JSON list"),
    ('{"session_configs": "driverMemory=1g"}', "session_configs in"),
    ('{"session_configs": {"conf": ["a"]}}', "session_configs.conf is list"),
])
def test_bad_files_are_not_touched(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        update_sparkmagic_config(path, max_executors=4)
    assert path.read_text() == text and backups(path) == []


@pytest.mark.parametrize(("session_configs", "words"), [
    ({"numExecutors": 10}, "numExecutors is 10, more than the cap of 4"),
    ({"conf": {"spark.dynamicAllocation.minExecutors": "8"}}, "minExecutors is 8"),
])
def test_start_above_the_cap_is_refused(tmp_path: Path, session_configs: dict[str, Any], words: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"session_configs": session_configs}))
    with pytest.raises(ConfigError, match=words):
        update_sparkmagic_config(path, max_executors=4)
    assert backups(path) == []


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"max_executors": 0}, "at least 1"),
    ({"max_executors": 4, "min_executors": 5}, "must not be more than"),
    ({"max_executors": 4, "executor_memory": "4 gigs"}, "not a JVM memory size"),
    ({"max_executors": 4, "executor_cores": 0}, "at least 1"),
])
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        update_sparkmagic_config(tmp_path / "config.json", **kwargs)
    assert not (tmp_path / "config.json").exists()


def test_symlinked_config_updates_its_target(config: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(config)
    update_sparkmagic_config(link, max_executors=2)
    assert link.is_symlink()
    assert json.loads(config.read_text())["session_configs"]["conf"]["spark.dynamicAllocation.maxExecutors"] == "2"


def test_configure_cell() -> None:
    cell = configure_cell({"conf": {"spark.dynamicAllocation.maxExecutors": "4"}, "executorMemory": "4g"})
    first, body = cell.split("\n")
    assert first == "%%configure -f"
    assert json.loads(body) == {"conf": {"spark.dynamicAllocation.maxExecutors": "4"}, "executorMemory": "4g"}


# ---- CLI -----------------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["sparkmagic-config", *args])
    return result.exit_code, result.output


def test_cli_writes_and_prints_configure_cell(config: Path) -> None:
    code, out = run("--max-executors", "5", "--executor-memory", "2g", "--config", str(config))
    assert code == 0, out
    assert f"updated {config}" in out and ".bak-" in out
    lines = out.splitlines()
    cell_body = json.loads(lines[lines.index("%%configure -f") + 1])
    assert cell_body == json.loads(config.read_text())["session_configs"]
    assert cell_body["conf"]["spark.dynamicAllocation.maxExecutors"] == "5"
    assert "never gets more, even when nobody else is using the cluster" in " ".join(out.split())
    code, out = run("--max-executors", "5", "--executor-memory", "2g", "--config", str(config))
    assert code == 0 and "nothing written" in out and len(backups(config)) == 1


def test_cli_dry_run_masks_secrets(config: Path) -> None:
    before = config.read_bytes()
    code, out = run("--max-executors", "5", "--config", str(config), "--dry-run")
    assert code == 0, out
    assert "hunter2-secret" not in out and '"password": "***"' in out
    assert '"spark.dynamicAllocation.maxExecutors": "5"' in out
    assert config.read_bytes() == before and backups(config) == []


def test_cli_malformed_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    code, out = run("--max-executors", "5", "--config", str(path))
    assert code == 2 and "is not valid JSON" in out and "nothing written" in out
    assert path.read_text() == "{not json"
