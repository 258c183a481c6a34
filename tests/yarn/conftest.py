"""Fixtures for tests that run a real YARN cluster (yarnlab) on this machine.

They need root and `ip netns`; elsewhere they skip with the reason yarnlab gives.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from yarnlab import LabUnavailable, YarnLab  # noqa: E402
from yarnlab.net import preflight  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "yarn: starts a real YARN ResourceManager and NodeManagers in network namespaces (slow, root)"
    )


def lab_or_skip(**kwargs: object) -> YarnLab:
    try:
        preflight()
    except LabUnavailable as e:
        pytest.skip(f"yarnlab unavailable: {e}")
    lab = YarnLab(**kwargs)  # type: ignore[arg-type]
    try:
        lab.start()
    except LabUnavailable as e:
        pytest.skip(f"yarnlab unavailable: {e}")
    print(f"\nyarnlab: {kwargs.get('nodes')} nodes up in {lab.startup_seconds:.1f}s, workdir {lab.workdir}")
    return lab


@pytest.fixture(scope="module")
def yarn_lab() -> Iterator[YarnLab]:
    """One 4-node lab with the Spark shuffle service, shared by a test module."""
    nodes = int(os.environ.get("YARNLAB_TEST_NODES", "4"))
    lab = lab_or_skip(nodes=nodes, shuffle_service=True)
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def ha_lab() -> Iterator[YarnLab]:
    """A 2-node lab with two ResourceManagers (manual failover, no ZooKeeper)."""
    lab = lab_or_skip(nodes=2, shuffle_service=False, ha=True)
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture()
def lab(yarn_lab: YarnLab) -> Iterator[YarnLab]:
    """The module's lab, with every node RUNNING before and after the test (repairs if needed)."""
    _all_running(yarn_lab)
    yield yarn_lab
    _all_running(yarn_lab, repair=True)


def _all_running(lab: YarnLab, repair: bool = False, timeout: float = 180.0) -> None:
    states = lab.node_states()
    if repair:
        for n in lab.nodes:
            if states.get(n.host) != "RUNNING":
                lab.restore(n)
                lab.recommission([n], wait=False)
    lab.wait_for_nodes({n.host: "RUNNING" for n in lab.nodes}, timeout=timeout)

