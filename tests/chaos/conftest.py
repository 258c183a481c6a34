"""The chaos tests use the YARN lab fixtures of tests/yarn (a 4-node lab per module; skipped without root)."""

from __future__ import annotations

from tests.yarn.conftest import lab, pytest_configure, yarn_lab  # noqa: F401 - fixtures and the yarn marker
