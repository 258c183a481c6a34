"""The real-YARN lab fixtures (tests/yarn, tests/chaos): one lab per kind for the whole session.

Only one lab can run on a machine at a time (yarnlab's lock), and starting and stopping one costs 30-40 s
on two cores. So the session keeps at most one lab up and hands it to every test that wants that kind; a
test that wants another kind (HA) stops it and starts its own. The tests are ordered so each kind's
tests run together (see `lab_kind`). Before each test the lab is brought back to its start state
(`YarnLab.reset`): nodes RUNNING, no running application, an empty exclude file, default attributes.
A lab whose reset fails is replaced by a fresh one.

Where the lab can't start (not root, no network namespaces) its tests skip with the reason; with
CI=true in the environment that is an error instead, so CI can't pass without having run them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from yarnlab import LabError, LabUnavailable, YarnLab

# Tests' Spark apps are short: their JVMs run C1 only (quick_spark_jvms), ~20 s less per app start.
DEFAULT_LAB: dict[str, Any] = {"nodes": int(os.environ.get("YARNLAB_TEST_NODES", "4")), "shuffle_service": True,
                               "quick_spark_jvms": True}
HA_LAB: dict[str, Any] = {"nodes": 2, "shuffle_service": False, "ha": True, "quick_spark_jvms": True}
SKIP_PREFIX = "yarnlab unavailable: "


def lab_kind(item: pytest.Item) -> int:
    """Run order: 0 no lab, 1 the default lab, 2 the HA lab."""
    names = getattr(item, "fixturenames", ())
    return 2 if "ha_lab" in names else 1 if "lab" in names else 0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{SKIP_PREFIX}{reason} (CI=true: the lab tests must run here)", pytrace=False)
    pytest.skip(f"{SKIP_PREFIX}{reason}")


class LabKeeper:
    """At most one running lab, reused while tests ask for the same kind."""

    def __init__(self) -> None:
        self.kind: dict[str, Any] | None = None
        self.lab: YarnLab | None = None
        self.unavailable: str | None = None
        self.starts = 0

    def get(self, kind: dict[str, Any]) -> YarnLab:
        if self.unavailable is not None:
            _unavailable(self.unavailable)
        if self.lab is not None and self.kind == kind:
            try:
                self.lab.reset()
                return self.lab
            except (LabError, OSError, ValueError) as e:
                print(f"\nyarnlab: reset failed, starting a fresh lab: {e}")
        self.close()
        return self._start(kind)

    def _start(self, kind: dict[str, Any]) -> YarnLab:
        try:
            lab = YarnLab(**kind)
            lab.start()  # its preflight raises LabUnavailable with the reason
        except LabUnavailable as e:
            self.unavailable = str(e)
            _unavailable(self.unavailable)
        self.kind, self.lab = kind, lab
        self.starts += 1
        print(f"\nyarnlab: {kind} up in {lab.startup_seconds:.1f}s, workdir {lab.workdir}")
        return lab

    def close(self) -> None:
        if self.lab is not None:
            lab, self.lab, self.kind = self.lab, None, None
            lab.stop()


_KEEPER = LabKeeper()


@pytest.fixture(scope="session")
def lab_keeper() -> Iterator[LabKeeper]:
    try:
        yield _KEEPER
    finally:
        _KEEPER.close()


@pytest.fixture()
def lab(lab_keeper: LabKeeper) -> YarnLab:
    """The session's 4-node lab with the Spark shuffle service, in its start state."""
    return lab_keeper.get(DEFAULT_LAB)


@pytest.fixture()
def ha_lab(lab_keeper: LabKeeper) -> YarnLab:
    """A 2-node lab with two ResourceManagers (manual failover, no ZooKeeper), rm1 active."""
    return lab_keeper.get(HA_LAB)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lab_kind)  # stable: the file order holds within each kind


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if SKIP_PREFIX in str(getattr(r, "longrepr", ""))]
    if skipped:
        reason = str(skipped[0].longrepr[-1]) if isinstance(skipped[0].longrepr, tuple) else ""
        reason = reason.removeprefix("Skipped: ").removeprefix(SKIP_PREFIX)
        terminalreporter.write_line(f"lab tests skipped: {len(skipped)} (yarnlab unavailable: {reason})",
                                    yellow=True, bold=True)
    if _KEEPER.starts:
        terminalreporter.write_line(f"yarnlab: {_KEEPER.starts} lab start(s) in this session")
