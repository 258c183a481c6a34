"""Cluster operations: what an operator (or a test) does to a running lab.

Owns ClusterOps, YarnLab's layer above yarnlab.layout: the RM's REST API (rest, nodes_rest,
node_states, waits for node states and for an RM to come up), `yarn rmadmin`, graceful and
forceful decommission through the exclude file, recommission (restarting NodeManagers the RM
sent away), the emulation of EMR's wait-for-applications=false, killing applications, and
running commands and reading logs of nodes.
"""

from __future__ import annotations

import getpass
import json
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from decom._agent import ExcludeFile

from . import config, jars, net
from .errors import LabError
from .layout import LabLayout, Node
from .supervisor import tail

ALL_NODE_STATES = ("NEW", "RUNNING", "UNHEALTHY", "DECOMMISSIONING", "DECOMMISSIONED", "LOST",
                   "REBOOTED", "SHUTDOWN")
RMADMIN_MAIN = "org.apache.hadoop.yarn.client.cli.RMAdminCLI"


class AppContainers(NamedTuple):
    """An application's containers as the RM sees them (ClusterOps.app_containers)."""

    outstanding: int  # asked for, not yet placed
    running: int  # the AM's included
    ask_mb: int  # memory of one asked-for container (0: nothing asked)


class ClusterOps(LabLayout):
    """REST reads, rmadmin, decommission and recommission, application kills; all waits have deadlines."""

    # -- REST ----------------------------------------------------------------------------------
    def rest(self, path: str, rm_id: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
        """GET a JSON object from the (active) RM, e.g. rest("/ws/v1/cluster/nodes")."""
        doc = self.rest_json(path, rm_id, timeout)
        if not isinstance(doc, dict):
            raise ValueError(f"{path} answered {type(doc).__name__}, not a JSON object")
        return doc

    def rest_json(self, path: str, rm_id: str | None = None, timeout: float = 10.0) -> Any:
        """GET any JSON document through the (active) RM: also a list, as a Spark UI's status API answers
        through the RM's web proxy (rest_json(f"/proxy/{app}/api/v1/applications/{app}/stages"))."""
        url = self.rm_url_of(rm_id or self.active_rm) + path
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        with opener.open(req, timeout=timeout) as r:
            return json.loads(r.read().decode())

    def nodes_rest(self, states: Iterable[str] = ALL_NODE_STATES) -> list[dict[str, Any]]:
        """The RM's node reports (all states by default), as REST returns them."""
        doc = self.rest("/ws/v1/cluster/nodes?states=" + ",".join(states))
        nodes = (doc.get("nodes") or {}).get("node") or []
        return list(nodes)

    def node_states(self) -> dict[str, str]:
        """host -> state, from GET /ws/v1/cluster/nodes (all states)."""
        return {n["nodeHostName"]: n["state"] for n in self.nodes_rest()}

    def wait_for_nodes(self, expected: Mapping[str, str | Iterable[str]], timeout: float = 120.0,
                       poll: float = 0.5) -> dict[str, str]:
        """Wait until every host in `expected` is in (one of) the given state(s); returns all states."""
        want = {self.node(h).host: ({s} if isinstance(s, str) else set(s)) for h, s in expected.items()}
        deadline = time.monotonic() + timeout
        last: dict[str, str] = {}
        err = ""
        while True:
            self._check_procs()
            try:
                last = self.node_states()
                err = ""
                if all(last.get(h) in s for h, s in want.items()):
                    return last
            except (OSError, ValueError) as e:
                err = f" (last REST error: {e})"
            if time.monotonic() > deadline:
                raise LabError(f"nodes did not reach {({h: sorted(s) for h, s in want.items()})} in {timeout:.0f}s;"
                               f" last seen {last}{err}")
            time.sleep(poll)

    def _check_procs(self) -> None:
        for role, p in self._procs.items():
            if role.startswith("rm") and not p.alive() and not self._rm_down_ok:
                raise LabError(f"{role} exited with {p.popen.returncode}; {p.log_path}:\n{tail(p.log_path, 60)}")

    def _wait_rm_up(self, rid: str, timeout: float | None = None, rest_only: bool = False) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        err: object = None
        proc = self._procs.get(rid)
        while time.monotonic() < deadline:
            if proc is not None and not proc.alive():
                raise LabError(f"ResourceManager {rid} exited with {proc.popen.returncode}; {proc.log_path}:\n"
                               f"{tail(proc.log_path, 80)}")
            try:
                info = self.rest("/ws/v1/cluster/info", rm_id=rid, timeout=5)["clusterInfo"]
                if rest_only or info.get("haState") == "ACTIVE" or (not self.ha and info.get("state") == "STARTED"):
                    return
                err = f"state={info.get('state')} haState={info.get('haState')}"
            except (OSError, ValueError, KeyError) as e:
                err = e
            time.sleep(0.5)
        log = proc.log_path if proc else self.log_dir / f"{rid}.log"
        raise LabError(f"ResourceManager {rid} REST did not come up at {self.rm_url_of(rid)} ({err}); {log}:\n"
                       f"{tail(log, 80)}")

    # -- admin ---------------------------------------------------------------------------------
    def _rmadmin_argv(self, args: Sequence[str]) -> list[str]:
        jh = jars.java_home()
        return [str(jh / "bin" / "java"), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.net.preferIPv4Stack=true", self.marker,
                f"-Dlog4j.configuration=file:{self.hadoop_conf_dir / 'log4j.properties'}",
                "-cp", f"{self.hadoop_conf_dir}:{self._hadoop_jars}/*", RMADMIN_MAIN, *args]

    def rmadmin(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run `yarn rmadmin ARGS` (RMAdminCLI) against the lab with the client configuration."""
        argv = self._rmadmin_argv(args)
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self._env(self.hadoop_conf_dir))
        with open(self.log_dir / "rmadmin.log", "a") as f:
            f.write(f"==== {time.strftime('%H:%M:%S')} rmadmin {' '.join(args)} -> {r.returncode}\n"
                    f"{r.stdout}{r.stderr}\n")
        if check and r.returncode != 0:
            raise LabError(f"rmadmin {' '.join(args)} failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
        return r

    def _rmadmin_background(self, *args: str) -> subprocess.Popen[bytes]:
        return self._sup.spawn_background(
            self._rmadmin_argv(args), self.log_dir / "rmadmin.log",
            f"==== {time.strftime('%H:%M:%S')} rmadmin (background) {' '.join(args)}\n",
            env=self._env(self.hadoop_conf_dir))

    def _write_exclude(self, changed: Iterable[str] = ()) -> None:
        """Bring the exclude file to the lab's list, as an operator edits it next to the decom agent: under
        the file's lock, on what the file says now. Hosts the lab no longer excludes go, hosts it added
        come, and only the `changed` hosts get the lab's timeout: any other host keeps the timeout the
        file has (the agent's 0 for a node it released, say)."""
        redo = set(changed)
        with ExcludeFile(self.exclude_path).edit() as hosts:
            for h in [h for h in hosts if h not in self._excluded]:
                del hosts[h]
            for h, t in self._excluded.items():
                if h not in hosts or h in redo:
                    hosts[h] = t

    def decommission(self, hosts: Iterable[str | Node], timeout: int | None = None, *, graceful: bool = True,
                     mode: str = "server", wait: bool = False, wait_timeout: float = 300.0) -> None:
        """Decommission hosts as operators do: exclude file + `rmadmin -refreshNodes`.

        graceful: `-refreshNodes -g [timeout] -server|-client`; the host's timeout is also written in
        the XML exclude file. mode="client" runs the (blocking) client-side tracking CLI in the
        background. graceful=False: plain `-refreshNodes` (immediate DECOMMISSIONED).
        wait=True: return once the hosts are DECOMMISSIONED.
        """
        hs = [self.node(h).host for h in hosts]
        if mode not in ("server", "client"):
            raise ValueError("mode must be 'server' or 'client'")
        with self._admin_lock:
            for h in hs:
                # Always a per-host timeout in the XML: the RM prefers it to the -g value, so a later
                # `-refreshNodes -g N` for other hosts leaves this host's timeout alone.
                t = self.graceful_timeout_secs if timeout is None else int(timeout)
                self._excluded[h] = t if graceful else None
                self._drained_early.discard(h)
            self._write_exclude(changed=hs)
            if not graceful:
                # NB: a forceful refresh decommissions *every* excluded host at once
                self.rmadmin("-refreshNodes")
            else:
                args = ["-refreshNodes", "-g"] + ([str(int(timeout))] if timeout is not None else []) + [f"-{mode}"]
                if mode == "server":
                    self.rmadmin(*args)
                else:
                    self._rmadmin_background(*args)
        if wait:
            self.wait_for_nodes({h: "DECOMMISSIONED" for h in hs}, timeout=wait_timeout)

    # -- the decom agent ----------------------------------------------------------------------
    def start_agent(self, other_apps: str = "wait", *, dry_run: bool = False, timeout: float = 60.0) -> str:
        """Start (or restart) the decom agent as an operator runs it (`decom agent run`, next to the RM,
        with `yarn rmadmin` and this lab's exclude file); returns its URL once healthy. Spark apps started
        from now on report to it (lab.spark_conf() adds spark.decom.agent.url and .secretFile)."""
        self.stop_agent()
        if not self.agent_secret_file.exists():
            self.agent_secret_file.write_text(secrets.token_hex(32) + "\n")
            self.agent_secret_file.chmod(0o600)
        argv = [sys.executable, "-m", "decom", "agent", "run",
                "--rm", ",".join(self.rm_url_of(r) for r in self.rm_ids),
                "--exclude-file", str(self.exclude_path), "--secret-file", str(self.agent_secret_file),
                "--bind", f"{net.BRIDGE_IP}:{config.AGENT_PORT}", "--interval", "1s", "--other-apps", other_apps,
                "--rmadmin", shlex.join(self._rmadmin_argv(())),
                "--records", str(self.log_dir / "agent-releases.jsonl"),
                "--state-file", str(self.workdir / "agent-state.json")]
        if dry_run:
            argv.append("--dry-run")
        env = self._env(self.hadoop_conf_dir)
        self._sup.spawn("agent", argv, self.log_dir / "agent.log", env, None, cwd=self.workdir)
        self._write_state()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self._procs["agent"]
            if not p.alive():
                raise LabError(f"the decom agent exited ({p.popen.returncode}):\n{tail(p.log_path, 30)}")
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                        self.agent_url + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        return self.agent_url
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.5)
        raise LabError(f"the decom agent was not healthy within {timeout:.0f}s:\n"
                       f"{tail(self.log_dir / 'agent.log', 30)}")

    def stop_agent(self) -> None:
        """Stop the decom agent (SIGTERM, as systemd would), if it runs."""
        p = self._procs.get("agent")
        if p is None or not p.alive():
            return
        p.popen.terminate()
        try:
            p.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.popen.kill()
            p.popen.wait(timeout=10)

    @property
    def agent_running(self) -> bool:
        p = self._procs.get("agent")
        return p is not None and p.alive()

    def agent_status(self) -> dict[str, Any]:
        """The agent's own view (`decom agent status --json`)."""
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                self.agent_url + "/v1/status", timeout=10) as r:
            return dict(json.loads(r.read()))

    def recommission(self, hosts: Iterable[str | Node], *, wait: bool = True, timeout: float = 180.0) -> None:
        """Take hosts out of the exclude file and `-refreshNodes`.

        A DECOMMISSIONING node goes straight back to RUNNING. A DECOMMISSIONED node's NodeManager
        was told to shut down by the RM (real YARN behaviour), so, as an operator would, this
        starts that NodeManager again; it then registers and becomes RUNNING.
        """
        ns = [self.node(h) for h in hosts]
        with self._admin_lock:
            for n in ns:
                self._excluded.pop(n.host, None)
                self._drained_early.discard(n.host)
            self._write_exclude()
            # Graceful refresh: hosts still excluded keep their graceful decommission going.
            self.rmadmin("-refreshNodes", "-g", "-server")
        self._restart_stopped_nms(ns)
        if wait:
            self.wait_for_nodes({n.host: "RUNNING" for n in ns}, timeout=timeout)

    def _restart_stopped_nms(self, nodes: Iterable[Node]) -> None:
        """Start again the NodeManagers of `nodes` that the RM sent away (DECOMMISSIONED, SHUTDOWN),
        lost, or whose process is gone, as an operator would."""
        states = self.node_states()
        for n in nodes:
            if states.get(n.host) in ("DECOMMISSIONED", "SHUTDOWN", "LOST") or not self._nm_alive(n):
                self._restart_nm_after_shutdown(n)
        self._write_state()

    def _nm_alive(self, n: Node) -> bool:
        p = self._procs.get(f"nm-{n.name}")
        return p is not None and p.alive()

    def _restart_nm_after_shutdown(self, n: Node, grace: float = 45.0) -> None:
        """Start the node's NM again once the old one is gone (a DECOMMISSIONED NM shuts itself
        down on its next heartbeat, which takes a few seconds; a LOST one may still run)."""
        p = self._procs.get(f"nm-{n.name}")
        if p is not None and p.alive():
            try:
                p.popen.wait(timeout=grace if self.node_states().get(n.host) == "DECOMMISSIONED" else 0.1)
            except subprocess.TimeoutExpired:
                p.popen.terminate()
                try:
                    p.popen.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.popen.kill()
                    p.popen.wait(timeout=20)
        self._start_nm(n)

    def _emr_drain_watcher(self) -> None:
        """Opt-in emulation of EMR's private `...decommissioning-nodes-watcher.wait-for-applications=false`.

        Apache Hadoop 3.5.0 has no such switch: its DecommissioningNodesWatcher keeps a node
        DECOMMISSIONING while any app that ran on it is alive, even with no container left, until
        the timeout; that is the lab's default. With emulate_emr_drain=True (any time) the lab gives
        such a node (DECOMMISSIONING, 0 containers) a per-host timeout of 0 in the exclude file and runs
        `-refreshNodes -g -server`, as an operator could; the RM then finishes it at its next watcher
        poll. Every result that uses it must say so.
        """
        log = self.log_dir / "lab.log"
        while not self._watch_stop.wait(1.0):
            if not self.emulate_emr_drain or not self._excluded:
                continue
            try:
                idle = [n["nodeHostName"] for n in self.nodes_rest(("DECOMMISSIONING",))
                        if int(n.get("numContainers") or 0) == 0]
            except (OSError, ValueError, KeyError):
                continue
            with self._admin_lock:
                hosts = [h for h in idle if h in self._excluded and self._excluded[h] not in (0, None)
                         and h not in self._drained_early]
                if not hosts or self._watch_stop.is_set():
                    continue
                for h in hosts:
                    self._excluded[h] = 0
                    self._drained_early.add(h)
                self._write_exclude(changed=hosts)
                try:
                    r = self.rmadmin("-refreshNodes", "-g", "-server", check=False)
                    msg = f"rc={r.returncode}"
                except (OSError, subprocess.SubprocessError) as e:
                    msg = str(e)
            with open(log, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} no containers left on DECOMMISSIONING {hosts}: "
                        f"timeout set to 0 (EMR drain emulation), refresh {msg}\n")

    # -- applications --------------------------------------------------------------------------
    def running_apps(self) -> list[str]:
        """Ids of the applications the active RM has not finished (NEW to RUNNING)."""
        doc = self.rest("/ws/v1/cluster/apps?states=NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING")
        return [str(a["id"]) for a in ((doc.get("apps") or {}).get("app") or [])]

    def app_containers(self, app_id: str) -> AppContainers:
        """One read of the app at the RM: its containers asked for and not yet placed (the outstanding ANY
        requests its app page lists), the containers it runs, and the MB one asked-for container needs."""
        info = self.rest(f"/ws/v1/cluster/apps/{app_id}").get("app") or {}
        asks = [r for r in info.get("resourceRequests") or [] if r.get("resourceName") == "*"]
        return AppContainers(outstanding=sum(int(r.get("numContainers", 0)) for r in asks),
                             running=int(info.get("runningContainers", 0)),
                             ask_mb=min((int(r["capability"]["memory"]) for r in asks), default=0))

    def kill_apps(self, timeout: float = 60.0) -> list[str]:
        """Kill every unfinished application through the RM's REST API (as `yarn application -kill`);
        returns their ids once the RM shows none unfinished."""
        killed: list[str] = []
        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        # Simple auth: the RM refuses a state change from an unnamed caller. Lab apps run as this user.
        user = urllib.parse.quote(getpass.getuser())
        while True:
            apps = self.running_apps()
            if not apps:
                return killed
            if time.monotonic() > deadline:
                raise LabError(f"applications still running {timeout:.0f}s after kill: {apps}")
            for app_id in apps:
                req = urllib.request.Request(
                    f"{self.rm_url}/ws/v1/cluster/apps/{app_id}/state?user.name={user}", data=b'{"state":"KILLED"}',
                    method="PUT",
                    headers={"Content-Type": "application/json", "Accept": "application/json"})
                try:
                    opener.open(req, timeout=10).close()
                except urllib.error.HTTPError as e:
                    if e.code not in (202, 404):
                        raise LabError(f"kill {app_id}: HTTP {e.code} from {self.rm_url}") from e
                if app_id not in killed:
                    killed.append(app_id)
            time.sleep(0.5)

    # -- in the nodes --------------------------------------------------------------------------
    def run_in_node(self, host: str | Node, argv: Sequence[str], *, timeout: float = 60.0,
                    check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node's network namespace (kwargs go to subprocess.run)."""
        n = self.node(host)
        return subprocess.run(["ip", "netns", "exec", n.netns, *argv], capture_output=True, text=True,
                              timeout=timeout, check=check, **kwargs)

    def nm_log(self, host: str | Node, lines: int = 60) -> str:
        return tail(self.node(host).log_path, lines)

    def rm_log(self, lines: int = 60, rm_id: str | None = None) -> str:
        return tail(self.log_dir / f"{rm_id or self.active_rm}.log", lines)
