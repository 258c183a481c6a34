"""YarnLab: a real YARN cluster (1 ResourceManager, N NodeManagers in network namespaces) on this host.

    from yarnlab import YarnLab
    with YarnLab(nodes=4, shuffle_service=True) as lab:
        lab.decommission(["198.18.0.11"], timeout=30)

Everything it makes (processes, namespaces, veths, the bridge) is recorded in .lab/state.json and
removed on exit, on exceptions, on SIGTERM/SIGHUP, at interpreter exit, and by
`python -m yarnlab down` after a crash.
"""

from __future__ import annotations

import atexit
import fcntl
import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import config, jars, net
from .errors import LabError, LabUnavailable

ALL_NODE_STATES = ("NEW", "RUNNING", "UNHEALTHY", "DECOMMISSIONING", "DECOMMISSIONED", "LOST",
                   "REBOOTED", "SHUTDOWN")
RM_MAIN = "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager"
NM_MAIN = "org.apache.hadoop.yarn.server.nodemanager.NodeManager"
RMADMIN_MAIN = "org.apache.hadoop.yarn.client.cli.RMAdminCLI"
LOCK_PATH = Path("/run/lock/decom-yarnlab.lock") if Path("/run/lock").is_dir() else Path("/tmp/decom-yarnlab.lock")
STATE_PATH = jars.REPO_ROOT / ".lab" / "state.json"
RM2_IP = net.SUBNET_PREFIX + "2"  # second ResourceManager of HA mode, also on the host side

JAVA_OPENS = [
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.cs=ALL-UNNAMED",
    "--add-opens=java.base/sun.security.action=ALL-UNNAMED",
    "--add-opens=java.base/sun.util.calendar=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
]


@dataclass(frozen=True)
class Node:
    """One lab node: a network namespace with a NodeManager (and the shuffle service) inside."""

    name: str  # "n1"
    host: str  # "198.18.0.11": the NM's yarn.nodemanager.hostname, as the RM reports it
    netns: str  # "decom-n1"
    index: int
    veth: str
    conf_dir: Path
    workdir: Path
    log_path: Path
    nm_port: int = config.NM_PORT
    nm_http_port: int = config.NM_HTTP_PORT
    shuffle_port: int = config.SHUFFLE_PORT

    @property
    def node_id(self) -> str:
        return f"{self.host}:{self.nm_port}"


@dataclass
class _Proc:
    role: str  # "rm1", "rm2", "nm-n1", "rmadmin"
    popen: subprocess.Popen[bytes]
    log_path: Path
    netns: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


def tail(path: Path, lines: int = 60) -> str:
    try:
        data = path.read_bytes()[-64_000:].decode("utf-8", "replace").splitlines()
    except OSError as e:
        return f"(no log at {path}: {e})"
    return "\n".join(data[-lines:])


# ---------------------------------------------------------------------------------------------
# cleanup on any exit
_LIVE: weakref.WeakSet[YarnLab] = weakref.WeakSet()
_HANDLERS_INSTALLED = False


def _stop_all() -> None:
    for lab in list(_LIVE):
        try:
            lab.stop()
        except Exception as e:  # noqa: BLE001 - best effort on the way out
            print(f"yarnlab: cleanup failed: {e}", file=sys.stderr)


def _install_handlers() -> None:
    global _HANDLERS_INSTALLED
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, _prev: Any = previous) -> None:
            _stop_all()
            if callable(_prev):
                _prev(signum, frame)
            elif _prev == signal.SIG_IGN:
                return
            else:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


def _set_pdeathsig() -> None:
    """In the child: get SIGTERM if the Python process that started the lab dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def _pid_has_marker(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------------------------------------
class YarnLab:
    """A real YARN cluster on this machine. See the module docstring; all waits have deadlines."""

    def __init__(
        self,
        nodes: int = 4,
        shuffle_service: bool = True,
        workdir: str | Path | None = None,
        *,
        nm_memory_mb: int = 4096,
        nm_vcores: int = 2,
        rm_heap_mb: int = 768,
        nm_heap_mb: int = 512,
        ha: bool = False,
        wait_for_applications: bool = False,
        nm_expiry_ms: int = 10_000,
        decom_poll_secs: int = 1,
        graceful_timeout_secs: int = 3600,
        extra_yarn_site: Mapping[str, object] | None = None,
        start_timeout: float = 240.0,
        lock_timeout: float | None = None,
        jar_dir: str | Path | None = None,
        state_path: str | Path | None = None,
    ) -> None:
        if not 1 <= nodes <= net.MAX_NODES:
            raise ValueError(f"nodes must be in 1..{net.MAX_NODES}")
        self.num_nodes = nodes
        self.shuffle_service = shuffle_service
        self.nm_memory_mb = nm_memory_mb
        self.nm_vcores = nm_vcores
        self.rm_heap_mb = rm_heap_mb
        self.nm_heap_mb = nm_heap_mb
        self.ha = ha
        self.wait_for_applications = wait_for_applications
        self.nm_expiry_ms = nm_expiry_ms
        self.decom_poll_secs = decom_poll_secs
        self.graceful_timeout_secs = graceful_timeout_secs
        self.extra_yarn_site = dict(extra_yarn_site or {})
        self.start_timeout = start_timeout
        # How long to wait for another lab on this machine to finish (YARNLAB_LOCK_TIMEOUT, default 900 s).
        self.lock_timeout = lock_timeout if lock_timeout is not None else float(
            os.environ.get("YARNLAB_LOCK_TIMEOUT", "900"))
        self.jar_dir = Path(jar_dir) if jar_dir else jars.default_jar_dir()
        self.state_path = Path(state_path) if state_path else STATE_PATH
        self.lab_id = uuid.uuid4().hex[:12]
        self.marker = f"-Dyarnlab.lab={self.lab_id}"
        self._workdir_arg = Path(workdir) if workdir else None
        self.workdir: Path = Path()
        self.nodes: list[Node] = []
        self.rm_ids: list[str] = ["rm1", "rm2"] if ha else ["rm1"]
        self.rm_hosts: dict[str, str] = {"rm1": net.BRIDGE_IP, "rm2": RM2_IP} if ha else {"rm1": net.BRIDGE_IP}
        self.active_rm: str = "rm1"
        self.hadoop_conf_dir: Path = Path()
        self.shuffle: jars.ShuffleService | None = None
        self.startup_seconds: float | None = None
        self._procs: dict[str, _Proc] = {}
        self._bg: list[subprocess.Popen[bytes]] = []
        self._excluded: dict[str, int | None] = {}
        self._lock_file: Any = None
        self._made_bridge = False
        self._made_nodes: list[net.NodeNet] = []
        self._started = False
        self._stopping = False
        self._mutex = threading.RLock()
        self._admin_lock = threading.RLock()
        self._drained_early: set[str] = set()
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._rm_down_ok = False
        self._defaults = {"wait_for_applications": wait_for_applications}  # what reset() restores

    # -- context manager ---------------------------------------------------------------------
    def __enter__(self) -> YarnLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- properties ----------------------------------------------------------------------------
    @property
    def rm_url(self) -> str:
        return self.rm_url_of(self.active_rm)

    def rm_url_of(self, rm_id: str) -> str:
        return f"http://{self.rm_hosts[rm_id]}:{config.RM_PORTS['webapp.address']}"

    @property
    def rm_address(self) -> str:
        return f"{self.rm_hosts[self.active_rm]}:{config.RM_PORTS['address']}"

    @property
    def exclude_path(self) -> Path:
        return self.workdir / "exclude.xml"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def node(self, ref: str | Node) -> Node:
        """Look a node up by name ("n1"), host ("198.18.0.11"), netns or node id."""
        if isinstance(ref, Node):
            return ref
        for n in self.nodes:
            if ref in (n.name, n.host, n.netns, n.node_id):
                return n
        raise KeyError(f"no lab node {ref!r}")

    # -- start / stop --------------------------------------------------------------------------
    def start(self) -> YarnLab:
        if self._started:
            return self
        net.preflight()
        jars.java_home()
        self._acquire_lock()
        t0 = time.monotonic()  # the start timeout counts from here, not from the wait for the lock
        _LIVE.add(self)
        _install_handlers()
        try:
            # We hold the lab lock, so whoever recorded this state runs no lab any more.
            cleanup_stale(self.state_path, ask_owner=False)
            hadoop_dir = jars.ensure_hadoop_jars(self.jar_dir)
            self.shuffle = jars.ensure_shuffle_service(self.jar_dir) if self.shuffle_service else None
            self._hadoop_jars = hadoop_dir
            self._prepare_workdir()
            self._started = True
            self._write_confs()
            self._make_network()
            self._write_state()
            for rid in self.rm_ids:
                self._start_rm(rid)
            for n in self.nodes:
                self._start_nm(n)
            self._write_state()
            if self.ha:
                for rid in self.rm_ids:  # both must answer: -transitionToActive asks the other
                    self._wait_rm_up(rid, rest_only=True)
                self.rmadmin("-transitionToActive", "rm1", check=True)
            self._wait_rm_up(self.active_rm)
            self.wait_for_nodes({n.host: "RUNNING" for n in self.nodes}, timeout=self._remaining(t0))
        except BaseException as e:
            detail = self._failure_detail(str(e))
            self.stop()
            if isinstance(e, LabError) and not isinstance(e, LabUnavailable):
                raise LabError(f"{e}\n{detail}" if detail else str(e)) from e
            raise
        self.startup_seconds = time.monotonic() - t0
        self._watch_stop.clear()
        self._watcher = threading.Thread(target=self._no_wait_for_apps_watcher, name="yarnlab-drain", daemon=True)
        self._watcher.start()
        return self

    def _no_wait_for_apps_watcher(self) -> None:
        """Emulate EMR's `...decommissioning-nodes-watcher.wait-for-applications=false`.

        Apache Hadoop 3.5.0 has no such switch: its DecommissioningNodesWatcher keeps a node
        DECOMMISSIONING while any app that ran on it is alive, even with no container left, until
        the timeout. With wait_for_applications=False (the default, as on EMR) the lab gives such a
        node (DECOMMISSIONING, 0 containers) a per-host timeout of 0 in the exclude file and runs
        `-refreshNodes -g -server`; the RM then finishes it at its next watcher poll. Set
        lab.wait_for_applications = True (any time) for stock Apache behaviour.
        """
        log = self.log_dir / "lab.log"
        while not self._watch_stop.wait(1.0):
            if self.wait_for_applications or not self._excluded:
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
                self._write_exclude()
                try:
                    r = self.rmadmin("-refreshNodes", "-g", "-server", check=False)
                    msg = f"rc={r.returncode}"
                except (OSError, subprocess.SubprocessError) as e:
                    msg = str(e)
            with open(log, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} no containers left on DECOMMISSIONING {hosts}: "
                        f"timeout set to 0 (wait_for_applications=false emulation), refresh {msg}\n")

    def _remaining(self, t0: float) -> float:
        return max(5.0, self.start_timeout - (time.monotonic() - t0))

    def _acquire_lock(self) -> None:
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        f = open(LOCK_PATH, "a+")
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    f.close()
                    raise LabError(f"another lab holds {LOCK_PATH} (waited {self.lock_timeout:.0f}s)") from None
                time.sleep(1.0)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock_file = f

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
            finally:
                self._lock_file = None

    def _prepare_workdir(self) -> None:
        if self._workdir_arg is not None:
            wd = self._workdir_arg.resolve()
        else:
            runs = jars.REPO_ROOT / ".lab" / "runs"
            runs.mkdir(parents=True, exist_ok=True)
            old = sorted(p for p in runs.iterdir() if p.is_dir())
            for p in old[:-4]:  # keep the last few runs' logs
                shutil.rmtree(p, ignore_errors=True)
            wd = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{self.lab_id[:6]}"
        wd.mkdir(parents=True, exist_ok=True)
        (wd / "logs").mkdir(exist_ok=True)
        self.workdir = wd

    def _write_confs(self) -> None:
        wd = self.workdir
        self.exclude_path.write_text(config.exclude_xml({}))
        base = config.yarn_site_common(
            workdir=wd,
            rm_hosts=self.rm_hosts,
            exclude_path=self.exclude_path,
            nm_memory_mb=self.nm_memory_mb,
            nm_vcores=self.nm_vcores,
            nm_expiry_ms=self.nm_expiry_ms,
            decom_poll_secs=self.decom_poll_secs,
            wait_for_applications=self.wait_for_applications,
            graceful_timeout_secs=self.graceful_timeout_secs,
            shuffle_class=self.shuffle.class_name if self.shuffle else None,
            shuffle_classpath=self.shuffle.classpath if self.shuffle else None,
            extra=self.extra_yarn_site,
        )
        self._base_site = base
        core = config.core_site(wd)
        cap = config.capacity_scheduler()
        # Client side (Spark driver, RMAdminCLI): no bind-host, no NM settings needed.
        self.hadoop_conf_dir = config.write_conf_dir(wd / "conf" / "client", yarn=base, core=core, capacity=cap)
        for rid in self.rm_ids:
            config.write_conf_dir(
                wd / "conf" / rid,
                yarn=config.rm_site(base, rm_id=rid if self.ha else None, host=self.rm_hosts[rid]),
                core=core, capacity=cap,
            )
        self.nodes = []
        for k in range(1, self.num_nodes + 1):
            ip, name = net.node_ip(k), f"n{k}"
            ndir = wd / "nodes" / name
            for sub in ("local", "logs", "tmp"):
                (ndir / sub).mkdir(parents=True, exist_ok=True)
            conf_dir = config.write_conf_dir(
                ndir / "conf", yarn=config.nm_site(base, ip=ip, node_dir=ndir),
                core=dict(core, **{"hadoop.tmp.dir": str(ndir / "tmp")}), capacity=cap,
            )
            self.nodes.append(Node(name=name, host=ip, netns=net.netns_name(k), index=k,
                                   veth=net.veth_host(k), conf_dir=conf_dir, workdir=ndir,
                                   log_path=wd / "logs" / f"nm-{name}.log"))

    def _make_network(self) -> None:
        net.create_bridge(extra_ips=(RM2_IP,) if self.ha else ())
        self._made_bridge = True
        self._write_state()
        for n in self.nodes:
            self._made_nodes.append(net.NodeNet(n.index, n.host, n.netns, n.veth))
            self._write_state()
            net.create_node(n.index)

    def _java_argv(self, heap_mb: int, conf_dir: Path, main: str, log_name: str,
                   extra: Sequence[str] = ()) -> list[str]:
        jh = jars.java_home()
        return [
            str(jh / "bin" / "java"),
            f"-Xmx{heap_mb}m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Xss512k",
            "-Djava.net.preferIPv4Stack=true",
            "-Dio.netty.tryReflectionSetAccessible=true",
            self.marker,
            f"-Dhadoop.log.dir={self.log_dir}",
            f"-Dyarn.log.dir={self.log_dir}",
            f"-Dhadoop.log.file={log_name}",
            f"-Dyarn.log.file={log_name}",
            f"-Dlog4j.configuration=file:{conf_dir / 'log4j.properties'}",
            *JAVA_OPENS,
            *extra,
            "-cp",
            f"{conf_dir}:{self._hadoop_jars}/*",
            main,
        ]

    def _env(self, conf_dir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HADOOP_", "YARN_", "SPARK_"))}
        env.update(JAVA_HOME=str(jars.java_home()), HADOOP_CONF_DIR=str(conf_dir), YARN_CONF_DIR=str(conf_dir))
        return env

    def _spawn(self, role: str, argv: list[str], log_path: Path, env: dict[str, str], netns: str | None) -> _Proc:
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        # Die with the lab's owner, unless started from a thread other than the main one: the
        # kernel sends the parent-death signal when the spawning *thread* exits.
        preexec = _set_pdeathsig if threading.current_thread() is threading.main_thread() else None
        with open(log_path, "ab") as log:
            log.write(f"\n==== yarnlab {time.strftime('%H:%M:%S')} start {role}: {' '.join(argv)}\n".encode())
            log.flush()
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 cwd=str(self.workdir), start_new_session=True, preexec_fn=preexec)
        proc = _Proc(role, p, log_path, netns)
        self._procs[role] = proc
        return proc

    def _start_rm(self, rid: str) -> None:
        conf_dir = self.workdir / "conf" / rid
        log = self.log_dir / f"{rid}.log"
        argv = self._java_argv(self.rm_heap_mb, conf_dir, RM_MAIN, f"{rid}.log")
        self._spawn(rid, argv, log, self._env(conf_dir), None)

    def _start_nm(self, n: Node) -> None:
        extra = self.shuffle.jvm_options if self.shuffle else ()
        argv = self._java_argv(self.nm_heap_mb, n.conf_dir, NM_MAIN, n.log_path.name, extra)
        self._spawn(f"nm-{n.name}", argv, n.log_path, self._env(n.conf_dir), n.netns)

    def _failure_detail(self, message: str) -> str:
        """Log tails of the processes that died (or of the RM), unless the message has them."""
        parts = []
        for role, p in self._procs.items():
            if str(p.log_path) in message:
                continue
            state = "running" if p.alive() else f"exited with {p.popen.returncode}"
            if not p.alive() or role.startswith("rm"):
                parts.append(f"--- {role} ({state}), last lines of {p.log_path}:\n{tail(p.log_path, 40)}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop every process, remove namespaces, veths and the bridge. Idempotent."""
        with self._mutex:
            if self._stopping:
                return
            self._stopping = True
            self._watch_stop.set()
            if self._watcher is not None and self._watcher is not threading.current_thread():
                self._watcher.join(timeout=30)
            self._watcher = None
            try:
                for bg in self._bg:
                    if bg.poll() is None:
                        bg.kill()
                nms = [p for r, p in self._procs.items() if r.startswith("nm-")]
                rms = [p for r, p in self._procs.items() if r.startswith("rm")]
                for group in (nms, rms):
                    for p in group:
                        if p.alive():
                            p.popen.terminate()
                    deadline = time.monotonic() + 10
                    for p in group:
                        try:
                            p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
                        except subprocess.TimeoutExpired:
                            p.popen.kill()
                            p.popen.wait(timeout=10)
                # whatever still runs inside our namespaces (containers, executors) is ours too
                for nn in self._made_nodes:
                    if net.netns_exists(nn.netns):
                        _kill_pids(net.netns_pids(nn.netns), signal.SIGKILL)
                for nn in self._made_nodes:
                    _wait_netns_empty(nn.netns, 10)
                    net.delete_node(nn.netns, nn.veth)
                if self._made_bridge:
                    net.delete_bridge()
                self._made_nodes = []
                self._made_bridge = False
                self._procs = {}
                try:
                    self.state_path.unlink()
                except FileNotFoundError:
                    pass
            finally:
                self._started = False
                _LIVE.discard(self)
                self._release_lock()
                self._stopping = False

    def _write_state(self) -> None:
        state = {
            "owner_pid": os.getpid(),
            "lab_id": self.lab_id,
            "marker": self.marker,
            "workdir": str(self.workdir),
            "rm_url": self.rm_url,
            "hadoop_conf_dir": str(self.hadoop_conf_dir),
            "bridge": net.BRIDGE if self._made_bridge else None,
            "nodes": [{"netns": nn.netns, "veth": nn.veth, "host": nn.ip} for nn in self._made_nodes],
            "procs": [{"role": r, "pid": p.pid} for r, p in self._procs.items()],
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    # -- REST ----------------------------------------------------------------------------------
    def rest(self, path: str, rm_id: str | None = None, timeout: float = 10.0) -> Any:
        """GET a JSON document from the (active) RM, e.g. rest("/ws/v1/cluster/nodes")."""
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
    def rmadmin(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run `yarn rmadmin ARGS` (RMAdminCLI) against the lab with the client configuration."""
        jh = jars.java_home()
        argv = [str(jh / "bin" / "java"), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.net.preferIPv4Stack=true", self.marker,
                f"-Dlog4j.configuration=file:{self.hadoop_conf_dir / 'log4j.properties'}",
                "-cp", f"{self.hadoop_conf_dir}:{self._hadoop_jars}/*", RMADMIN_MAIN, *args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self._env(self.hadoop_conf_dir))
        with open(self.log_dir / "rmadmin.log", "a") as f:
            f.write(f"==== {time.strftime('%H:%M:%S')} rmadmin {' '.join(args)} -> {r.returncode}\n"
                    f"{r.stdout}{r.stderr}\n")
        if check and r.returncode != 0:
            raise LabError(f"rmadmin {' '.join(args)} failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
        return r

    def _write_exclude(self) -> None:
        tmp = self.exclude_path.with_suffix(".tmp")
        tmp.write_text(config.exclude_xml(self._excluded))
        tmp.replace(self.exclude_path)

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
            self._write_exclude()
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

    def _rmadmin_background(self, *args: str) -> subprocess.Popen[bytes]:
        jh = jars.java_home()
        argv = [str(jh / "bin" / "java"), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Djava.net.preferIPv4Stack=true", self.marker,
                f"-Dlog4j.configuration=file:{self.hadoop_conf_dir / 'log4j.properties'}",
                "-cp", f"{self.hadoop_conf_dir}:{self._hadoop_jars}/*", RMADMIN_MAIN, *args]
        log = open(self.log_dir / "rmadmin.log", "ab")
        log.write(f"==== {time.strftime('%H:%M:%S')} rmadmin (background) {' '.join(args)}\n".encode())
        log.flush()
        preexec = _set_pdeathsig if threading.current_thread() is threading.main_thread() else None
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self._env(self.hadoop_conf_dir),
                             start_new_session=True, preexec_fn=preexec)
        log.close()
        self._bg.append(p)
        return p

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

    # -- failures ------------------------------------------------------------------------------
    def vanish(self, host: str | Node, how: str = "link") -> None:
        """Make a node stop answering without closing connections.

        how="link": its interface goes down inside its namespace (packets to it are dropped).
        how="freeze": SIGSTOP to every process in its namespace (NM, shuffle service, executors).
        """
        n = self.node(host)
        if how == "link":
            net.set_node_link(n.netns, up=False)
        elif how == "freeze":
            _kill_pids(net.netns_pids(n.netns), signal.SIGSTOP)
        else:
            raise ValueError("how must be 'link' or 'freeze'")

    def restore(self, host: str | Node) -> None:
        """Undo vanish(): link up and SIGCONT to the node's processes."""
        n = self.node(host)
        _kill_pids(net.netns_pids(n.netns), signal.SIGCONT)
        net.set_node_link(n.netns, up=True)

    def kill_nm(self, host: str | Node, containers: bool = True) -> None:
        """SIGKILL the node's NodeManager (and, by default, every container process on the node)."""
        n = self.node(host)
        p = self._procs.get(f"nm-{n.name}")
        if p is not None and p.alive():
            p.popen.kill()
            p.popen.wait(timeout=30)
        if containers:
            _kill_pids(net.netns_pids(n.netns), signal.SIGKILL)

    def start_nm(self, host: str | Node, wait: bool = True, timeout: float = 120.0) -> None:
        """(Re)start a node's NodeManager, e.g. after kill_nm()."""
        n = self.node(host)
        p = self._procs.get(f"nm-{n.name}")
        if p is not None and p.alive():
            return
        self._start_nm(n)
        self._write_state()
        if wait:
            self.wait_for_nodes({n.host: "RUNNING"}, timeout=timeout)

    def restart_rm(self, kill: bool = False, wait: bool = True, timeout: float = 180.0,
                   down_seconds: float = 0.0) -> None:
        """Stop the active ResourceManager (SIGTERM, or SIGKILL if kill) and start it again on the
        same address; with wait, return once REST answers and the nodes that were RUNNING are again."""
        rid = self.active_rm
        before = self._running_nodes()
        p = self._procs[rid]
        self._rm_down_ok = True
        try:
            if p.alive():
                p.popen.kill() if kill else p.popen.terminate()
                try:
                    p.popen.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.popen.kill()
                    p.popen.wait(timeout=30)
            if down_seconds:
                time.sleep(down_seconds)
            self._start_rm(rid)
            self._write_state()
        finally:
            self._rm_down_ok = False
        if wait:
            t0 = time.monotonic()
            if self.ha:
                self._wait_rm_up(rid, timeout=timeout, rest_only=True)
                self.rmadmin("-transitionToActive", rid)
            self._wait_rm_up(rid, timeout=timeout)
            if before:
                self.wait_for_nodes(before, timeout=max(5.0, timeout - (time.monotonic() - t0)))

    def failover(self, to: str | None = None, timeout: float = 120.0) -> str:
        """HA mode: manual failover to `to` (default: the other RM). Returns the new active rm-id."""
        if not self.ha:
            raise LabError("failover() needs YarnLab(ha=True)")
        target = to or next(r for r in self.rm_ids if r != self.active_rm)
        old = self.active_rm
        running = self._running_nodes()
        others_alive = [r for r in self.rm_ids if r != target and self._procs.get(r) is not None
                        and self._procs[r].alive()]
        if old in others_alive:
            self.rmadmin("-transitionToStandby", old, check=False)
        # --forceactive skips asking the other RMs (a dead one cannot answer)
        force = ["--forceactive"] if len(others_alive) < len(self.rm_ids) - 1 else []
        self.rmadmin("-transitionToActive", *force, target)
        self.active_rm = target
        t0 = time.monotonic()
        self._wait_rm_up(target, timeout=timeout)
        self._write_state()
        # A failover is over once the NodeManagers have re-registered with the new active RM. Before
        # that it does not know them: a host excluded then is refused at registration ("Disallowed
        # NodeManager") and never shows up as DECOMMISSIONING/DECOMMISSIONED there.
        if running:
            self.wait_for_nodes(running, timeout=max(5.0, timeout - (time.monotonic() - t0)))
        return target

    def _running_nodes(self) -> dict[str, str]:
        """host -> "RUNNING" for the lab's nodes the active RM shows RUNNING (empty if it can't answer)."""
        try:
            return {h: s for h, s in self.node_states().items() if s == "RUNNING"}
        except (OSError, ValueError):
            return {}

    def stop_rm(self, rm_id: str | None = None, kill: bool = False) -> None:
        """Stop one ResourceManager (for HA tests) without restarting it."""
        p = self._procs[rm_id or self.active_rm]
        self._rm_down_ok = True
        if p.alive():
            p.popen.kill() if kill else p.popen.terminate()
            p.popen.wait(timeout=30)

    def start_rm(self, rm_id: str) -> None:
        """Start a stopped ResourceManager again (HA: it comes up standby)."""
        p = self._procs.get(rm_id)
        if p is None or not p.alive():
            self._start_rm(rm_id)
            self._write_state()
        self._wait_rm_up(rm_id, rest_only=True)
        self._rm_down_ok = False

    # -- back to the default state -----------------------------------------------------------
    def reset(self, timeout: float = 240.0) -> None:
        """Bring the lab back to the state start() left it in, so one lab can serve many tests:

        every ResourceManager up (HA: the first one active), every node's link up and processes
        running, no running or pending application, an empty exclude file, every NodeManager
        RUNNING, and the attributes tests may change (wait_for_applications) at their start values.
        """
        t0 = time.monotonic()
        self.wait_for_applications = self._defaults["wait_for_applications"]
        for rid in self.rm_ids:
            p = self._procs.get(rid)
            if p is None or not p.alive():
                self._start_rm(rid)
                self._write_state()
                self._wait_rm_up(rid, timeout=timeout, rest_only=self.ha)
        self._rm_down_ok = False
        if self.ha:
            try:
                active = self.rest("/ws/v1/cluster/info", rm_id=self.rm_ids[0])["clusterInfo"]["haState"]
            except (OSError, ValueError, KeyError):
                active = ""
            if self.active_rm != self.rm_ids[0] or active != "ACTIVE":
                self.failover(self.rm_ids[0], timeout=timeout)
        self._wait_rm_up(self.active_rm, timeout=timeout)
        for n in self.nodes:
            self.restore(n)
        self.kill_apps(timeout=max(10.0, timeout - (time.monotonic() - t0)))
        with self._admin_lock:
            had_exclusions = bool(self._excluded) or config.exclude_xml({}) != self.exclude_path.read_text()
            self._excluded.clear()
            self._drained_early.clear()
            if had_exclusions:
                self._write_exclude()
                self.rmadmin("-refreshNodes", "-g", "-server")
        self._restart_stopped_nms(self.nodes)
        self.wait_for_nodes({n.host: "RUNNING" for n in self.nodes},
                            timeout=max(10.0, timeout - (time.monotonic() - t0)))

    def running_apps(self) -> list[str]:
        """Ids of the applications the active RM has not finished (NEW to RUNNING)."""
        doc = self.rest("/ws/v1/cluster/apps?states=NEW,NEW_SAVING,SUBMITTED,ACCEPTED,RUNNING")
        return [str(a["id"]) for a in ((doc.get("apps") or {}).get("app") or [])]

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

    # -- helpers for tests and Spark -----------------------------------------------------------
    def run_in_node(self, host: str | Node, argv: Sequence[str], *, timeout: float = 60.0,
                    check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node's network namespace."""
        n = self.node(host)
        return subprocess.run(["ip", "netns", "exec", n.netns, *argv], capture_output=True, text=True,
                              timeout=timeout, check=check, **kwargs)

    def nm_log(self, host: str | Node, lines: int = 60) -> str:
        return tail(self.node(host).log_path, lines)

    def rm_log(self, lines: int = 60, rm_id: str | None = None) -> str:
        return tail(self.log_dir / f"{rm_id or self.active_rm}.log", lines)

    def spark_env(self) -> dict[str, str]:
        """Environment for a Spark driver on the host (client mode) talking to this lab."""
        return {
            "HADOOP_CONF_DIR": str(self.hadoop_conf_dir),
            "YARN_CONF_DIR": str(self.hadoop_conf_dir),
            "SPARK_LOCAL_IP": net.BRIDGE_IP,
            "PYSPARK_PYTHON": sys.executable,
            "JAVA_HOME": str(jars.java_home()),
        }

    def spark_conf(self, executor_memory: str = "1g", executor_cores: int = 1,
                   deploy_mode: str = "client") -> dict[str, str]:
        """Spark settings that run executors in lab nodes: client mode (driver on the host) or cluster
        mode (driver in the ApplicationMaster's container, in a node)."""
        jar_dir = jars.pyspark_jars_dir()
        (self.workdir / "spark-staging").mkdir(exist_ok=True)
        c = {
            "spark.master": "yarn",
            "spark.submit.deployMode": "client",
            "spark.driver.host": net.BRIDGE_IP,
            "spark.driver.bindAddress": net.BRIDGE_IP,
            "spark.yarn.jars": f"local:{jar_dir}/*",
            "spark.yarn.stagingDir": f"file://{self.workdir / 'spark-staging'}",
            "spark.yarn.am.memory": "512m",
            "spark.yarn.am.cores": "1",
            "spark.executor.memory": executor_memory,
            "spark.executor.cores": str(executor_cores),
            "spark.pyspark.python": sys.executable,
            "spark.executorEnv.PYSPARK_PYTHON": sys.executable,
            "spark.yarn.appMasterEnv.PYSPARK_PYTHON": sys.executable,
            "spark.ui.enabled": "false",
            "spark.shuffle.service.enabled": "true" if self.shuffle_service else "false",
            "spark.shuffle.service.port": str(config.SHUFFLE_PORT),
        }
        if self.ha:
            c["spark.yarn.maxAppAttempts"] = "1"
        if deploy_mode == "cluster":
            c["spark.submit.deployMode"] = "cluster"
            del c["spark.driver.host"], c["spark.driver.bindAddress"]
            # The node's address (its yarn.nodemanager.hostname), expanded by the NM at launch: the
            # namespaces share the machine's hostname, which does not resolve to a node address.
            c["spark.yarn.appMasterEnv.SPARK_LOCAL_IP"] = "{{NM_HOST}}"
            c["spark.driver.memory"] = "768m"
        elif deploy_mode != "client":
            raise ValueError(f"deploy_mode is client or cluster, not {deploy_mode!r}")
        return c


def _wait_netns_empty(ns: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and net.netns_exists(ns) and net.netns_pids(ns):
        time.sleep(0.2)


def read_state(state_path: Path = STATE_PATH) -> dict[str, Any] | None:
    try:
        doc = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def cleanup_stale(state_path: Path = STATE_PATH, force: bool = False, wait_owner: float = 60.0,
                  ask_owner: bool = True) -> bool:
    """Remove what a lab recorded in state_path. A live owner process is asked (SIGTERM) to stop
    its lab first; with force, or once the owner is gone, processes (checked by their marker),
    namespaces, veths and the bridge are removed here. Returns True if there was something."""
    state = read_state(state_path)
    if not state:
        return False
    owner = int(state.get("owner_pid") or 0)
    if ask_owner and owner and owner != os.getpid() and _pid_alive(owner):
        if not force:
            raise LabError(f"a lab owned by live pid {owner} is recorded in {state_path}: stop it first "
                           "(`python -m yarnlab down`)")
        os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + wait_owner
        while time.monotonic() < deadline and _pid_alive(owner):
            time.sleep(0.5)
        if read_state(state_path) is None:
            return True  # the owner cleaned up after itself
    marker = str(state.get("marker", ""))
    pids = [int(p["pid"]) for p in state.get("procs", [])]
    mine = [p for p in pids if marker and _pid_has_marker(p, marker)]
    _kill_pids(mine, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_pid_alive(p) and _pid_has_marker(p, marker) for p in mine):
        time.sleep(0.2)
    _kill_pids([p for p in mine if _pid_has_marker(p, marker)], signal.SIGKILL)
    for n in state.get("nodes", []):
        if net.netns_exists(n["netns"]):
            _kill_pids(net.netns_pids(n["netns"]), signal.SIGKILL)
            _wait_netns_empty(n["netns"], 10)
        net.delete_node(n["netns"], n["veth"])
    if state.get("bridge"):
        net.delete_bridge()
    try:
        state_path.unlink()
    except FileNotFoundError:
        pass
    return True
