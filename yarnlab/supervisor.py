"""Processes and crash clean-up: what a lab started and made, and how all of it is taken down.

Owns the lab lock (one lab per machine), the daemons' processes (each started with a parent-death
signal and the lab's `-Dyarnlab.lab=<id>` marker in its command line), the record in
.lab/state.json of every process, namespace, veth and the bridge, the exit and signal handlers that
stop live labs, and cleanup_stale(), which removes what a crashed lab left behind.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol, TextIO, TypeAlias, TypedDict, TypeGuard

from . import jars, net
from .errors import LabError

LOCK_PATH = Path("/run/lock/decom-yarnlab.lock") if Path("/run/lock").is_dir() else Path("/tmp/decom-yarnlab.lock")
STATE_PATH = jars.REPO_ROOT / ".lab" / "state.json"


@dataclass
class Proc:
    """One process the lab started: a daemon ("rm1", "rm2", "nm-n1")."""

    role: str
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
# the state file: what a lab made, for whoever cleans up after it
class ProcRecord(TypedDict):
    role: str
    pid: int


class NodeRecord(TypedDict):
    netns: str
    veth: str
    host: str


class LabState(TypedDict):
    """.lab/state.json."""

    owner_pid: int
    lab_id: str
    marker: str
    workdir: str
    rm_url: str
    hadoop_conf_dir: str
    bridge: str | None
    nodes: list[NodeRecord]
    procs: list[ProcRecord]


def _is_lab_state(doc: object) -> TypeGuard[LabState]:
    if not isinstance(doc, dict):
        return False
    nodes, procs = doc.get("nodes"), doc.get("procs")
    return (isinstance(doc.get("owner_pid"), int) and isinstance(doc.get("marker"), str)
            and isinstance(nodes, list) and isinstance(procs, list)
            and all(isinstance(n, dict) and isinstance(n.get("netns"), str) and isinstance(n.get("veth"), str)
                    for n in nodes)
            and all(isinstance(p, dict) and isinstance(p.get("pid"), int) for p in procs))


def read_state(state_path: Path = STATE_PATH) -> LabState | None:
    """The lab recorded in state_path, or None if there is none (or the file is not a lab's record)."""
    try:
        doc = json.loads(state_path.read_text())
    except (OSError, ValueError):
        return None
    return doc if _is_lab_state(doc) else None


# ---------------------------------------------------------------------------------------------
# processes
def set_pdeathsig() -> None:
    """In the child: get SIGTERM if the Python process that started the lab dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def pdeathsig_preexec() -> Callable[[], None] | None:
    """set_pdeathsig for a child started from the main thread. Not from another thread: the kernel
    sends the parent-death signal when the spawning *thread* exits."""
    return set_pdeathsig if threading.current_thread() is threading.main_thread() else None


def pid_has_marker(pid: int, marker: str) -> bool:
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def wait_netns_empty(ns: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and net.netns_exists(ns) and net.netns_pids(ns):
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# clean-up on any exit
class _Stoppable(Protocol):
    def stop(self) -> None: ...


_SignalHandler: TypeAlias = Callable[[int, FrameType | None], object] | int | signal.Handlers | None
_LIVE: weakref.WeakSet[_Stoppable] = weakref.WeakSet()
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

        def handler(signum: int, frame: FrameType | None, _prev: _SignalHandler = previous) -> None:
            _stop_all()
            if callable(_prev):
                _prev(signum, frame)
            elif _prev == signal.SIG_IGN:
                return
            else:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(sig, handler)


def stop_at_exit(lab: _Stoppable) -> None:
    """Stop `lab` at interpreter exit and on SIGTERM/SIGHUP (unless stopped before)."""
    _LIVE.add(lab)
    _install_handlers()


def forget_at_exit(lab: _Stoppable) -> None:
    _LIVE.discard(lab)


# ---------------------------------------------------------------------------------------------
class Supervisor:
    """Everything one lab started or made, and its state file: spawn(), the lock, teardown()."""

    def __init__(self, lab_id: str, marker: str, state_path: Path) -> None:
        self.lab_id = lab_id
        self.marker = marker
        self.state_path = state_path
        self.procs: dict[str, Proc] = {}
        self.background: list[subprocess.Popen[bytes]] = []  # client-side rmadmin runs
        self.made_bridge = False
        self.made_nodes: list[net.NodeNet] = []
        self._lock_file: TextIO | None = None

    # -- the lab lock ------------------------------------------------------------------------
    def acquire_lock(self, timeout: float) -> None:
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        f = open(LOCK_PATH, "a+")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    f.close()
                    raise LabError(f"another lab holds {LOCK_PATH} (waited {timeout:.0f}s)") from None
                time.sleep(1.0)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._lock_file = f

    def release_lock(self) -> None:
        if self._lock_file is not None:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
            finally:
                self._lock_file = None

    # -- processes ---------------------------------------------------------------------------
    def spawn(self, role: str, argv: list[str], log_path: Path, env: dict[str, str], netns: str | None,
              cwd: Path) -> Proc:
        """Start a daemon (inside `netns` if given), its output appended to log_path."""
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        # Die with the lab's owner, unless started from a thread other than the main one.
        preexec = pdeathsig_preexec()
        with open(log_path, "ab") as log:
            log.write(f"\n==== yarnlab {time.strftime('%H:%M:%S')} start {role}: {' '.join(argv)}\n".encode())
            log.flush()
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 cwd=str(cwd), start_new_session=True, preexec_fn=preexec)
        proc = Proc(role, p, log_path, netns)
        self.procs[role] = proc
        return proc

    def spawn_background(self, argv: list[str], log_path: Path, header: str, env: dict[str, str]
                         ) -> subprocess.Popen[bytes]:
        """Start a client command that runs until done or until teardown(), its output appended to
        log_path after the `header` line."""
        log = open(log_path, "ab")
        log.write(header.encode())
        log.flush()
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True, preexec_fn=pdeathsig_preexec())
        log.close()
        self.background.append(p)
        return p

    def failure_detail(self, message: str) -> str:
        """Log tails of the processes that died (or of the RM), unless the message has them."""
        parts = []
        for role, p in self.procs.items():
            if str(p.log_path) in message:
                continue
            state = "running" if p.alive() else f"exited with {p.popen.returncode}"
            if not p.alive() or role.startswith("rm"):
                parts.append(f"--- {role} ({state}), last lines of {p.log_path}:\n{tail(p.log_path, 40)}")
        return "\n".join(parts)

    # -- the state file ----------------------------------------------------------------------
    def write_state(self, *, workdir: Path, rm_url: str, hadoop_conf_dir: Path) -> None:
        state: LabState = {
            "owner_pid": os.getpid(),
            "lab_id": self.lab_id,
            "marker": self.marker,
            "workdir": str(workdir),
            "rm_url": rm_url,
            "hadoop_conf_dir": str(hadoop_conf_dir),
            "bridge": net.BRIDGE if self.made_bridge else None,
            "nodes": [{"netns": nn.netns, "veth": nn.veth, "host": nn.ip} for nn in self.made_nodes],
            "procs": [{"role": r, "pid": p.pid} for r, p in self.procs.items()],
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    # -- teardown ----------------------------------------------------------------------------
    def teardown(self) -> None:
        """Stop every process, remove namespaces, veths and the bridge, and the state file."""
        for bg in self.background:
            if bg.poll() is None:
                bg.kill()
        nms = [p for r, p in self.procs.items() if r.startswith("nm-")]
        rms = [p for r, p in self.procs.items() if r.startswith("rm")]
        others = [p for r, p in self.procs.items() if not r.startswith(("nm-", "rm"))]  # the decom agent
        for group in (others, nms, rms):
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
        for nn in self.made_nodes:
            if net.netns_exists(nn.netns):
                kill_pids(net.netns_pids(nn.netns), signal.SIGKILL)
        for nn in self.made_nodes:
            wait_netns_empty(nn.netns, 10)
            net.delete_node(nn.netns, nn.veth)
        if self.made_bridge:
            net.delete_bridge()
        self.made_nodes = []
        self.made_bridge = False
        self.procs = {}
        try:
            self.state_path.unlink()
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------
def cleanup_stale(state_path: Path = STATE_PATH, force: bool = False, wait_owner: float = 60.0,
                  ask_owner: bool = True) -> bool:
    """Remove what a lab recorded in state_path. A live owner process is asked (SIGTERM) to stop
    its lab first; with force, or once the owner is gone, processes (checked by their marker),
    namespaces, veths and the bridge are removed here. Returns True if there was something."""
    state = read_state(state_path)
    if not state:
        return False
    owner = state["owner_pid"]
    if ask_owner and owner and owner != os.getpid() and pid_alive(owner):
        if not force:
            raise LabError(f"a lab owned by live pid {owner} is recorded in {state_path}: stop it first "
                           "(`python -m yarnlab down`)")
        os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + wait_owner
        while time.monotonic() < deadline and pid_alive(owner):
            time.sleep(0.5)
        if read_state(state_path) is None:
            return True  # the owner cleaned up after itself
    marker = state["marker"]
    pids = [p["pid"] for p in state["procs"]]
    mine = [p for p in pids if marker and pid_has_marker(p, marker)]
    kill_pids(mine, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(p) and pid_has_marker(p, marker) for p in mine):
        time.sleep(0.2)
    kill_pids([p for p in mine if pid_has_marker(p, marker)], signal.SIGKILL)
    for n in state["nodes"]:
        if net.netns_exists(n["netns"]):
            kill_pids(net.netns_pids(n["netns"]), signal.SIGKILL)
            wait_netns_empty(n["netns"], 10)
        net.delete_node(n["netns"], n["veth"])
    if state.get("bridge"):
        net.delete_bridge()
    try:
        state_path.unlink()
    except FileNotFoundError:
        pass
    return True
