"""decom capacity: workers = users x (executors per user + 1), per worker type, and the inverse."""

from __future__ import annotations

import itertools
import json

import pytest
from click.testing import CliRunner

import decom._cli.main as cli
from decom._errors import ConfigError
from decom._sessions.capacity import (
    WORKER_TYPES,
    max_executors_per_user,
    plan_capacity,
    users_that_fit,
    worker_spec,
)
from decom._units import format_mb, parse_memory_mb

GB = 1024


@pytest.mark.parametrize(("users", "executors", "workers"), [(3, 5, 18), (10, 5, 60), (50, 5, 300)])
def test_glue_guide_table(users: int, executors: int, workers: int) -> None:
    plan = plan_capacity(users, executors, "G.1X")
    assert plan.workers == workers
    assert plan.executors == users * executors and plan.containers == workers
    assert plan.vcpus == workers * 4 and plan.memory_mb == workers * 16 * GB


def test_glue_example_ten_g1x_workers_give_nine_executors_of_10_gb() -> None:
    fit = users_that_fit(10, 9, "G.1X")
    assert (fit.users, fit.workers_used, fit.workers_left) == (1, 10, 0)
    assert plan_capacity(1, 9, "G.1X").executor_memory_mb == 90 * GB


@pytest.mark.parametrize(("name", "vcpus", "memory_gb"),
                         [("G.1X", 4, 16), ("G.2X", 8, 32), ("G.4X", 16, 64), ("G.8X", 32, 128)])
def test_worker_type_totals(name: str, vcpus: int, memory_gb: int) -> None:
    plan = plan_capacity(3, 5, name.lower())  # case-insensitive
    assert plan.worker.name == name
    assert (plan.workers, plan.vcpus, plan.memory_mb) == (18, 18 * vcpus, 18 * memory_gb * GB)


def test_inverse_gives_back_the_users() -> None:
    for users, executors in itertools.product(range(1, 30), range(0, 12)):
        plan = plan_capacity(users, executors)
        assert users_that_fit(plan.workers, executors).users == users
        # One worker fewer is one user fewer.
        if plan.workers > 1:
            assert users_that_fit(plan.workers - 1, executors).users == users - 1


def test_inverse_leftover() -> None:
    fit = users_that_fit(20, 5)
    assert (fit.users, fit.workers_used, fit.workers_left) == (3, 18, 2)
    assert users_that_fit(5, 5).users == 0


def test_max_executors_per_user_is_the_largest_cap_that_fits() -> None:
    for users, workers in itertools.product(range(1, 15), range(1, 80)):
        cap = max_executors_per_user(users, workers)
        if cap < 0:
            assert workers < users
            continue
        assert plan_capacity(users, cap).workers <= workers
        assert plan_capacity(users, cap + 1).workers > workers
    assert max_executors_per_user(10, 50) == 4


def test_own_nodes_pack_executor_sized_containers() -> None:
    # 4 GB / 2-core nodes (the lab's NodeManagers), 512m executors: 896 MB containers, cores limit to 2.
    spec = worker_spec(None, worker_memory="4096m", worker_cores=2, executor_memory="512m")
    assert spec.slots == 2
    assert plan_capacity(4, 3, spec).workers == 8
    # Memory-bound: 64 GB / 32 cores, 10g executors + 1 GB overhead -> 5 per node.
    spec = worker_spec(None, worker_memory="64g", worker_cores=32, executor_memory="10g", executor_cores=4)
    assert spec.slots == 5
    assert plan_capacity(10, 5, spec).workers == 12  # 60 containers / 5
    assert users_that_fit(12, 5, spec).users == 10
    # Without an executor size: one per node, like Glue.
    assert worker_spec(None, worker_memory="64g", worker_cores=16).slots == 1


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"worker_type": "G.3X"}, "unknown worker type 'G.3X'"),
    ({"worker_type": None, "worker_memory": "64g"}, "give both"),
    ({"worker_type": None, "worker_memory": "lots", "worker_cores": 4}, "not a memory size"),
    ({"worker_type": None, "worker_memory": "4g", "worker_cores": 2, "executor_memory": "8g"}, "does not fit"),
    ({"worker_type": "G.1X", "executor_memory": "20g"}, "more than a G.1X worker has"),
    ({"worker_type": "G.1X", "executor_cores": 0}, "at least 1"),
])
def test_bad_worker_input(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        worker_spec(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("users", "executors"), [(0, 5), (-1, 5), (3, -1), (True, 5)])
def test_bad_counts(users: int, executors: int) -> None:
    with pytest.raises(ConfigError, match="whole number"):
        plan_capacity(users, executors)


def test_memory_sizes() -> None:
    assert parse_memory_mb("16GB") == 16 * GB and parse_memory_mb("512m") == 512
    assert parse_memory_mb("1.5g") == 1536 and parse_memory_mb("2048") == 2048
    assert format_mb(16 * GB) == "16 GB" and format_mb(1536) == "1.5 GB" and format_mb(896) == "896 MB"
    assert set(WORKER_TYPES) >= {"G.1X", "G.2X", "G.4X", "G.8X"}


# ---- CLI -----------------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.main, ["capacity", *args])
    return result.exit_code, result.output


def test_cli_glue_table() -> None:
    code, out = run("--users", "3,10", "--users", "50", "--executors-per-user", "5")
    assert code == 0, out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isdigit()}
    assert rows["3"][:3] == ["3", "5", "18"] and rows["10"][2] == "60" and rows["50"][2] == "300"
    assert rows["50"][6:8] == ["4800", "GB"]  # 300 x 16 GB
    assert "G.1X: 4 vCPU, 16 GB per worker" in out


def test_cli_inverse_and_verdict() -> None:
    code, out = run("--workers", "50", "--users", "10", "-e", "5", "--worker-type", "G.2X")
    assert code == 0, out
    assert "does NOT fit (needs 60, 10 short)" in out
    assert "at most 4 executor(s) per user" in out
    assert any(line.split()[:3] == ["50", "5", "8"] for line in out.splitlines())


def test_cli_json() -> None:
    code, out = run("--users", "3", "--workers", "18", "-e", "5", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["plans"][0]["workers"] == 18 and data["fits"][0]["users"] == 3
    assert data["caps"] == [{"users": 3, "workers": 18, "fits": True, "max_executors_per_user": 5}]
    assert data["worker"]["memory_mb"] == 16 * GB


@pytest.mark.parametrize(("args", "words"), [
    (["-e", "5"], "give --users U"),
    (["--users", "three", "-e", "5"], "use whole numbers"),
    (["--users", "0", "-e", "5"], "at least 1"),
    (["--users", "3", "-e", "5", "--worker-type", "G.3X"], "unknown worker type"),
    (["--users", "3", "-e", "5", "--worker-type", "G.1X", "--worker-memory", "8g", "--worker-cores", "2"],
     "not both"),
])
def test_cli_bad_input_exits_2(args: list[str], words: str) -> None:
    code, out = run(*args)
    assert code == 2 and words in out
    assert "Traceback" not in out
