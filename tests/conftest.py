"""Test-wide set-up."""

from __future__ import annotations

from bench.local_scenarios import loopback_only

# Tests talk only to loopback (or the lab's own namespaces): Spark's local JVMs inherit this.
loopback_only()
