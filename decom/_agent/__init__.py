"""The decom agent: one per cluster, next to the ResourceManager."""

from .._agent_contract import AppReport, read_secret, sign, verify
from .agent import Agent, OtherApps, Release
from .exclude_file import ExcludeFile
from .server import AgentServer
from .yarn_admin import NodeApps, YarnAdmin, default_timeouts_command

__all__ = ["Agent", "AgentServer", "AppReport", "ExcludeFile", "NodeApps", "OtherApps", "Release", "YarnAdmin",
           "default_timeouts_command", "read_secret", "sign", "verify"]
