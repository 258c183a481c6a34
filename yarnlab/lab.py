"""YarnLab: a real YARN cluster (1 ResourceManager, N NodeManagers in network namespaces) on this host.

    from yarnlab import YarnLab
    with YarnLab(nodes=4, shuffle_service=True) as lab:
        lab.decommission(["198.18.0.11"], timeout=30)

Everything it makes (processes, namespaces, veths, the bridge) is recorded in .lab/state.json and
removed on exit, on exceptions, on SIGTERM/SIGHUP, at interpreter exit, and by
`python -m yarnlab down` after a crash.

YarnLab is one object built in layers, each module using only those below it:
  yarnlab.supervisor  processes, the lab lock, the state file, clean-up (also after a crash)
  yarnlab.layout      LabLayout: settings (the constructor), nodes, addresses, config files, network
  yarnlab.ops         ClusterOps: REST reads, rmadmin, decommission/recommission, kill_apps
  yarnlab.faults      Faults: vanish/restore, kill_nm/start_nm, restart_rm/stop_rm/start_rm, failover
  yarnlab.lab         YarnLab: start(), stop() and reset(), which bring all of them together
"""

from __future__ import annotations

import threading
import time

from . import config, jars, net
from .errors import LabError, LabUnavailable
from .faults import Faults
from .layout import Node
from .ops import ALL_NODE_STATES
from .supervisor import STATE_PATH, cleanup_stale, forget_at_exit, read_state, stop_at_exit, tail

__all__ = ["ALL_NODE_STATES", "STATE_PATH", "Node", "YarnLab", "cleanup_stale", "read_state", "tail"]


class YarnLab(Faults):
    """A real YARN cluster on this machine. See the module docstring; all waits have deadlines.

    YarnLab(nodes=4, shuffle_service=True, workdir=None, *, nm_memory_mb=4096, nm_vcores=2,
    rm_heap_mb=768, nm_heap_mb=512, ha=False, emulate_emr_drain=False, agent=False, quick_spark_jvms=False,
    nm_expiry_ms=10_000, decom_poll_secs=1, graceful_timeout_secs=3600, extra_yarn_site=None,
    start_timeout=240.0, lock_timeout=None, jar_dir=None, state_path=None): the constructor is LabLayout's
    (yarnlab/layout.py).
    """

    # -- context manager ---------------------------------------------------------------------
    def __enter__(self) -> YarnLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start / stop --------------------------------------------------------------------------
    def start(self) -> YarnLab:
        if self._started:
            return self
        net.preflight()
        jars.java_home()
        self._sup.acquire_lock(self.lock_timeout)
        t0 = time.monotonic()  # the start timeout counts from here, not from the wait for the lock
        stop_at_exit(self)
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
            detail = self._sup.failure_detail(str(e))
            self.stop()
            if isinstance(e, LabError) and not isinstance(e, LabUnavailable):
                raise LabError(f"{e}\n{detail}" if detail else str(e)) from e
            raise
        if self.agent:
            self.start_agent()
        self.startup_seconds = time.monotonic() - t0
        self._watch_stop.clear()
        self._watcher = threading.Thread(target=self._emr_drain_watcher, name="yarnlab-drain", daemon=True)
        self._watcher.start()
        return self

    def _remaining(self, t0: float) -> float:
        return max(5.0, self.start_timeout - (time.monotonic() - t0))

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
                self._sup.teardown()
            finally:
                self._started = False
                forget_at_exit(self)
                self._sup.release_lock()
                self._stopping = False

    # -- back to the default state -----------------------------------------------------------
    def reset(self, timeout: float = 240.0) -> None:
        """Bring the lab back to the state start() left it in, so one lab can serve many tests:

        every ResourceManager up (HA: the first one active), every node's link up and processes
        running, no running or pending application, an empty exclude file, every NodeManager
        RUNNING, and the attributes tests may change (emulate_emr_drain) at their start values.
        """
        t0 = time.monotonic()
        self.emulate_emr_drain = self._defaults["emulate_emr_drain"]
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
        # The agent as the lab started it: a test may have stopped it or run it with other options.
        self.stop_agent()
        if self._defaults["agent"]:
            self.start_agent()
