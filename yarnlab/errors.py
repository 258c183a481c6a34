"""Exceptions of yarnlab."""

from __future__ import annotations


class LabError(RuntimeError):
    """The lab failed to start or to carry out an action (the message says why, with log tails)."""


class LabUnavailable(LabError):
    """This machine cannot run the lab (not root, no `ip netns`, no Java...): tests skip on it."""
