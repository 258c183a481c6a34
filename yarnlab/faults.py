"""Faults: what goes wrong in a cluster, made to happen on purpose.

Owns Faults, YarnLab's layer above yarnlab.ops: a node that vanishes (link down or frozen) and
comes back, a NodeManager killed and started again, a ResourceManager restarted, stopped or
started, and HA failover.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterable

from . import net
from .errors import LabError
from .layout import Node
from .ops import ClusterOps
from .supervisor import kill_pids


class Faults(ClusterOps):
    """Node and ResourceManager failures, and HA failover."""

    # -- nodes ---------------------------------------------------------------------------------
    def vanish(self, host: str | Node, how: str = "link") -> None:
        """Make a node stop answering without closing connections.

        how="link": its interface goes down inside its namespace (packets to it are dropped).
        how="freeze": SIGSTOP to every process in its namespace (NM, shuffle service, executors).
        """
        n = self.node(host)
        if how == "link":
            net.set_node_link(n.netns, up=False)
        elif how == "freeze":
            kill_pids(net.netns_pids(n.netns), signal.SIGSTOP)
        else:
            raise ValueError("how must be 'link' or 'freeze'")

    def restore(self, host: str | Node) -> None:
        """Undo vanish(): link up and SIGCONT to the node's processes."""
        n = self.node(host)
        kill_pids(net.netns_pids(n.netns), signal.SIGCONT)
        net.set_node_link(n.netns, up=True)

    def kill_nm(self, host: str | Node, containers: bool = True) -> None:
        """SIGKILL the node's NodeManager (and, by default, every container process on the node)."""
        n = self.node(host)
        p = self._procs.get(f"nm-{n.name}")
        if p is not None and p.alive():
            p.popen.kill()
            p.popen.wait(timeout=30)
        if containers:
            kill_pids(net.netns_pids(n.netns), signal.SIGKILL)

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

    # -- ResourceManagers ----------------------------------------------------------------------
    def restart_rm(self, kill: bool = False, wait: bool = True, timeout: float = 180.0,
                   down_seconds: float = 0.0, skip: Iterable[str] = ()) -> None:
        """Stop the active ResourceManager (SIGTERM, or SIGKILL if kill) and start it again on the
        same address; with wait, return once REST answers and the nodes that were RUNNING are again
        (but those in `skip`: a vanished node the RM still listed RUNNING can't register again)."""
        rid = self.active_rm
        before = self._running_nodes(skip)
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

    def failover(self, to: str | None = None, timeout: float = 120.0, skip: Iterable[str] = ()) -> str:
        """HA mode: manual failover to `to` (default: the other RM); waits for the RUNNING nodes to register
        with it, but those in `skip`. Returns the new active rm-id."""
        if not self.ha:
            raise LabError("failover() needs YarnLab(ha=True)")
        target = to or next(r for r in self.rm_ids if r != self.active_rm)
        old = self.active_rm
        running = self._running_nodes(skip)
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

    def _running_nodes(self, skip: Iterable[str] = ()) -> dict[str, str]:
        """host -> "RUNNING" for the lab's nodes the active RM shows RUNNING, but those in `skip` (empty if it
        can't answer)."""
        skipped = set(skip)
        try:
            return {h: s for h, s in self.node_states().items() if s == "RUNNING" and h not in skipped}
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
