"""What the agent asks of YARN besides the RM's REST node list: which apps a NodeManager still has,
each DECOMMISSIONING node's timeout (the RM's client RPC; REST has none), and ``rmadmin -refreshNodes -g``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .._errors import AgentError
from .._redact import scrub

__all__ = ["NodeApps", "YarnAdmin", "default_timeouts_command"]

log = logging.getLogger("decom.agent")

#: NodeManager app states in which the app still holds the node at the RM (it ends with FINISHED).
_ENDED = frozenset({"FINISHED", "APPLICATION_RESOURCES_CLEANINGUP"})


@dataclass(frozen=True)
class NodeApps:
    """The apps a NodeManager lists (``/ws/v1/node/apps``) that have not ended."""

    node: str
    apps: frozenset[str]


def default_timeouts_command() -> list[str]:
    """``java -cp <decom jar>:<pyspark jars>/*:$HADOOP_CONF_DIR io.decom.YarnNodeTimeouts``: the shim's
    RPC reader run on its own, with the Hadoop client pyspark ships (the agent needs no Hadoop install
    beyond the configuration and ``yarn rmadmin``)."""
    import pyspark

    from .._jar import jar_path

    jars = Path(pyspark.__file__).parent / "jars"
    conf = os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR") or ""
    java = str(Path(os.environ["JAVA_HOME"]) / "bin" / "java") if os.environ.get("JAVA_HOME") else "java"
    cp = os.pathsep.join([jar_path(), str(jars / "*")] + ([conf] if conf else []))
    return [java, "-Xmx256m", "-cp", cp, "io.decom.YarnNodeTimeouts"]


class YarnAdmin:
    """Runs the operator's YARN tools. ``rmadmin``: the ``yarn rmadmin`` command as argv (e.g.
    ``["yarn", "rmadmin"]``); ``timeouts``: a command printing the DECOMMISSIONING nodes' timeouts as
    JSON (:func:`default_timeouts_command`)."""

    def __init__(self, rmadmin: Sequence[str], timeouts: Sequence[str], *, nm_timeout: float = 5.0,
                 command_timeout: float = 120.0) -> None:
        if not rmadmin:
            raise AgentError("no rmadmin command: give --rmadmin, e.g. --rmadmin 'yarn rmadmin'")
        self.rmadmin_argv = list(rmadmin)
        self.timeouts_argv = list(timeouts)
        self._command_timeout = command_timeout
        self._http = httpx.Client(timeout=nm_timeout, trust_env=False, headers={"Accept": "application/json"})

    def node_apps(self, node: str, http_address: str) -> NodeApps:
        """The NodeManager's apps that have not ended; :class:`AgentError` if it can't be asked."""
        url = f"http://{http_address}/ws/v1/node/apps"
        try:
            resp = self._http.get(url)
            resp.raise_for_status()
            data = resp.json()
        except (httpx.HTTPError, ValueError) as e:
            raise AgentError(f"cannot list the apps of NodeManager {http_address}: {scrub(str(e))[:200]}") from None
        box = (data or {}).get("apps") if isinstance(data, dict) else None
        items = (box or {}).get("app") if isinstance(box, dict) else None
        if isinstance(items, dict):
            items = [items]
        apps = frozenset(str(a["id"]) for a in items or [] if isinstance(a, dict) and a.get("id")
                         and str(a.get("state", "")) not in _ENDED)
        return NodeApps(node, apps)

    def decommissioning_timeouts(self) -> dict[str, int | None]:
        """host -> the configured graceful timeout (seconds; None: YARN's default) of each DECOMMISSIONING
        node, over the RM's client RPC. :class:`AgentError` if the RM can't be asked."""
        if not self.timeouts_argv:
            raise AgentError("no command to read decommissioning timeouts over the RM's RPC")
        out = self._run(self.timeouts_argv, "read the decommissioning timeouts")
        try:
            nodes = json.loads(out.strip().splitlines()[-1])["nodes"]
            result: dict[str, int | None] = {}
            for n in nodes:
                t = n.get("timeoutSeconds")
                result[str(n["host"])] = None if t is None else int(t)
            return result
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise AgentError(f"the timeouts reader printed no node list ({e}): {out[-300:]!r}") from None

    def refresh_nodes_graceful(self) -> None:
        """``rmadmin -refreshNodes -g -server``: the RM re-reads the exclude file; per-host timeouts win."""
        self._run([*self.rmadmin_argv, "-refreshNodes", "-g", "-server"], "refresh the nodes (rmadmin)")

    def close(self) -> None:
        self._http.close()

    def _run(self, argv: Sequence[str], what: str) -> str:
        try:
            r = subprocess.run(list(argv), capture_output=True, text=True, timeout=self._command_timeout)
        except (OSError, subprocess.SubprocessError) as e:
            raise AgentError(f"cannot {what}: {shlex.join(argv[:3])}...: {e}") from None
        if r.returncode != 0:
            raise AgentError(f"cannot {what}: exit {r.returncode}: {scrub((r.stderr or r.stdout)[-500:])}")
        return r.stdout
