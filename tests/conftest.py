"""Test-wide set-up."""

from __future__ import annotations

from bench.local_scenarios import loopback_only

# The real-YARN lab fixtures (lab, ha_lab), shared by tests/yarn and tests/chaos.
pytest_plugins = ["tests.lab_fixtures"]

# Tests talk only to loopback (or the lab's own namespaces): Spark's local JVMs inherit this.
loopback_only()
