"""Tests on a real YARN cluster (yarnlab) on this machine. The fixtures (lab, ha_lab) are in
tests/lab_fixtures.py; they need root and `ip netns` and skip with yarnlab's reason elsewhere."""

from __future__ import annotations
