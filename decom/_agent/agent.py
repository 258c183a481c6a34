"""The agent's loop: one read of the RM's nodes per interval; a DECOMMISSIONING node with no container
is finished (per-host ``<timeout>0</timeout>`` + ``rmadmin -refreshNodes -g``) once every app still
running there agrees: decom drivers by letting go of it, other apps per ``--other-apps``.

Why: Apache Hadoop keeps a DECOMMISSIONING node until every app that ever ran a container there ends
(``DecommissioningNodesWatcher`` WAIT_APP), or until the graceful timeout (1 h by default).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from .._agent_contract import HEARTBEAT_S, AppReport
from .._errors import AgentError, DecomError
from .._yarn.client import ResourceManagerClient, RMNode
from .._yarn.poller import NodePoller
from .exclude_file import ExcludeFile
from .yarn_admin import YarnAdmin

__all__ = ["Agent", "OtherApps", "Release"]

log = logging.getLogger("decom.agent")

#: In-service states the light polls don't read (RUNNING they do), asked before each release.
_IN_SERVICE_UNPOLLED = ("NEW", "UNHEALTHY")
#: An app that has not reported for this long is forgotten (it ended, or its driver lost the agent).
_APP_FORGET_S = 10 * HEARTBEAT_S


class OtherApps(str, Enum):
    """What to do with apps running on a node that don't report to the agent (no decom, or no agent
    URL): MapReduce or Spark without decom may still need the node's shuffle data."""

    WAIT = "wait"
    RELEASE = "release"


@dataclass
class Release:
    """One node the agent finished (or, with --dry-run, would have)."""

    host: str
    node_id: str
    at: float
    #: Apps that let go of the node (decom drivers).
    apps_agreed: tuple[str, ...]
    #: Apps that did not report, released anyway under --other-apps release.
    other_apps: tuple[str, ...]
    dry_run: bool
    #: The host's per-host timeout before the agent set 0 (None: it had none); restored once it is gone.
    previous_timeout: int | None = None
    restored_at: float | None = None
    decommissioned_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "apps_agreed": list(self.apps_agreed), "other_apps": list(self.other_apps)}


@dataclass
class _App:
    report: AppReport
    received: float


@dataclass
class _Counters:
    polls: int = 0
    poll_errors: int = 0
    releases: int = 0
    release_errors: int = 0
    reports: int = 0
    unauthenticated: int = 0
    bad_requests: int = 0
    last_poll_ok: float | None = None
    last_poll_s: float = 0.0
    last_error: str = ""


class Agent:
    """Thread-safe: the HTTP server calls :meth:`app_reported` and :meth:`status` while :meth:`run` polls."""

    def __init__(self, rm: ResourceManagerClient, admin: YarnAdmin, exclude: ExcludeFile, *,
                 interval: float = 1.0, other_apps: OtherApps = OtherApps.WAIT, dry_run: bool = False,
                 records: Path | None = None, state_file: Path | None = None,
                 startup_grace: float = 1.5 * HEARTBEAT_S) -> None:
        self.rm = rm
        self.admin = admin
        self.exclude = exclude
        self.interval = interval
        self.other_apps = other_apps
        self.dry_run = dry_run
        self.records = records
        self._lock = threading.Lock()
        self._polled = threading.Condition(self._lock)  # drivers waiting for the next poll's view
        self._apps: dict[str, _App] = {}
        self._nodes: list[RMNode] = []
        self._releases: list[Release] = []
        self._waiting: dict[str, dict[str, Any]] = {}
        self.counters = _Counters()
        # The drivers' light polls, once for all of them: the doomed states and the RM's node count each
        # interval, every node only when that count says something else changed, and every 60 s. A read
        # of every node costs the RM ~0.1 s of CPU per 1,000 nodes (bench/rm_load.py).
        # Its full reads run apart (~2 s at 10,000 nodes): the light polls, and so the drivers, don't wait.
        self._poller = NodePoller(rm, interval, lambda _changes: None, full_apart=True)
        self._stop = threading.Event()
        self._act_wanted = threading.Event()  # a read is in that the release thread has not acted on
        self._poll_seconds: deque[float] = deque(maxlen=60)  # the last minute's reads, at 1 s
        self._save_lock = threading.Lock()
        # Right after a start, an app that has not reported yet may be a decom app whose next report is
        # on its way: under --other-apps release, nothing is released over unknown apps until every
        # driver had the time to report once.
        self._grace_until = time.time() + startup_grace
        exclude.read()  # a missing, unreadable or non-XML exclude file stops the agent at start
        # The apps' last reports and the releases not yet restored survive a restart of the agent.
        self.state_file = state_file
        self._load_state()

    # ---- what drivers send ----------------------------------------------------------------------

    def app_reported(self, report: AppReport) -> None:
        with self._lock:
            old = self._apps.get(report.app_id)
            if old is not None and report.sent_at < old.report.sent_at:
                return  # an older report that arrived late
            self._apps[report.app_id] = _App(report, time.time())
            self.counters.reports += 1
        if old is None or old.report.let_go != report.let_go:
            log.info("decom agent: %s lets go of %s", report.app_id, sorted(report.let_go) or "no node")
            self._save_state()

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self.counters, what, getattr(self.counters, what) + 1)

    # ---- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        """Poll until :meth:`stop`, one read of the RM every ``interval`` seconds (a fixed rate: a slow read
        does not push the next one back); a failed poll is logged and retried next interval.

        Deciding and releasing run in a thread of their own: a release asks NodeManagers and runs
        ``rmadmin`` (seconds), and the drivers waiting on the next read must not wait for that."""
        log.info("decom agent: polling %s every %g s (other apps: %s%s)", ", ".join(self.rm.addresses),
                 self.interval, self.other_apps.value, ", dry run" if self.dry_run else "")
        actor = threading.Thread(target=self._act_loop, name="decom-agent-release", daemon=True)
        actor.start()
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    if self._read():
                        self._act_wanted.set()
                except Exception:  # noqa: BLE001 - one bad poll must not end the agent's polling
                    log.exception("decom agent: a poll failed (next one in %g s)", self.interval)
                now = time.monotonic()
                next_at = max(next_at + self.interval, now)  # behind (a slow read): the next one now, no burst
                self._stop.wait(next_at - now)
        finally:
            self._act_wanted.set()
            actor.join()  # a release under way finishes (and is recorded) before the agent stops

    def stop(self) -> None:
        self._stop.set()
        self._act_wanted.set()
        self._poller.stop(timeout=0)

    def poll_once(self) -> None:
        """One read of the RM, then what it allows released (in the caller's thread)."""
        if self._read():
            self._act()

    def _read(self) -> bool:
        """Read the RM's nodes and wake the drivers waiting for it; False if the RM could not be read."""
        t0 = time.monotonic()
        try:
            self._poller.poll_once()
            nodes = self._poller.nodes()
        except DecomError as e:
            with self._lock:
                self.counters.polls += 1
                self.counters.poll_errors += 1
                self.counters.last_error = str(e)
            log.warning("decom agent: cannot read the RM's nodes (nothing is released meanwhile): %s", e)
            return False
        now = time.time()
        with self._lock:
            self._nodes = nodes
            self.counters.polls += 1
            self.counters.last_poll_ok = now
            self.counters.last_poll_s = time.monotonic() - t0
            self._poll_seconds.append(self.counters.last_poll_s)
            self._polled.notify_all()
            for app_id in [a for a, s in self._apps.items() if now - s.received > _APP_FORGET_S]:
                del self._apps[app_id]
        return True

    def _act_loop(self) -> None:
        """The release thread: after each good read, act on the newest nodes (reads made while it acted
        are folded into one)."""
        while True:
            self._act_wanted.wait()
            self._act_wanted.clear()
            if self._stop.is_set():
                return
            try:
                self._act()
            except Exception:  # noqa: BLE001 - the next read retries; polling goes on regardless
                log.exception("decom agent: deciding or releasing failed (retried after the next read)")

    def _act(self) -> None:
        with self._lock:
            nodes = self._nodes
        self._restore_timeouts(nodes)
        ready = self._ready(nodes)
        if ready:
            self._release(ready, nodes)

    # ---- deciding ------------------------------------------------------------------------------------

    def _ready(self, nodes: Iterable[RMNode]) -> list[tuple[RMNode, tuple[str, ...], tuple[str, ...]]]:
        """DECOMMISSIONING nodes with no container whose running apps all agree."""
        with self._lock:
            released = {r.host for r in self._releases if r.restored_at is None and not r.dry_run}
            dry = {r.host for r in self._releases if r.dry_run}
            apps = {a: s.report for a, s in self._apps.items()}
        ready = []
        waiting: dict[str, dict[str, Any]] = {}
        for n in nodes:
            if n.state != "DECOMMISSIONING" or n.host in released or n.host in dry:
                continue
            if n.num_containers > 0:
                waiting[n.host] = {"containers": n.num_containers}
                continue
            if not n.http_address:
                continue
            try:
                running = self.admin.node_apps(n.host, n.http_address).apps
            except AgentError as e:
                waiting[n.host] = {"error": str(e)}
                continue
            if not running:
                continue  # no app holds it: YARN finishes it by itself
            agreed = tuple(sorted(a for a in running if a in apps and
                                  (n.host in apps[a].let_go or n.node_id in apps[a].let_go)))
            holding = sorted(a for a in running if a in apps and a not in agreed)
            others = tuple(sorted(a for a in running if a not in apps))
            young = time.time() < self._grace_until
            if holding or (others and (self.other_apps is OtherApps.WAIT or young)):
                waiting[n.host] = {"apps_holding": holding, "other_apps": list(others)}
                continue
            ready.append((n, agreed, others))
        with self._lock:
            before, self._waiting = self._waiting, waiting
        for host, why in waiting.items():
            if before.get(host) != why:
                log.info("decom agent: %s waits: %s", host, why)
        return ready

    # ---- acting ----------------------------------------------------------------------------------------

    def _release(self, ready: list[tuple[RMNode, tuple[str, ...], tuple[str, ...]]], nodes: list[RMNode]) -> None:
        now = time.time()
        if self.dry_run:
            for n, agreed, others in ready:
                log.info("decom agent: DRY RUN: would release %s (apps agreed: %s; other apps: %s)",
                         n.host, list(agreed), list(others))
                self._record(Release(n.host, n.node_id, now, agreed, others, dry_run=True))
            return
        state = {n.host: n.state for n in nodes}
        hosts = {n.host for n, _, _ in ready}
        previous: dict[str, int | None] = {}
        try:
            # The light polls hold RUNNING and the doomed states. A host an operator has listed but not
            # refreshed may also be NEW or UNHEALTHY, and the refresh would start its decommission.
            for n in self.rm.nodes(_IN_SERVICE_UNPOLLED):
                state[n.host] = n.state
        except DecomError as e:
            with self._lock:
                self.counters.release_errors += 1
                self.counters.last_error = str(e)
            log.error("decom agent: not releasing %s: cannot read the RM's NEW and UNHEALTHY nodes: %s",
                      sorted(hosts), e)
            return
        try:
            with self.exclude.edit() as excluded:
                missing = sorted(h for h in hosts if h not in excluded)
                if missing:
                    log.warning("decom agent: %s DECOMMISSIONING but not in the exclude file %s (decommissioned "
                                "another way?): the agent finishes only what the file lists", missing,
                                self.exclude.path)
                    hosts -= set(missing)
                    ready = [r for r in ready if r[0].host in hosts]
                    if not hosts:
                        raise AgentError(f"{missing} are not in the exclude file {self.exclude.path}")
                # A refresh would also act on every other host the file lists: never start a decommission
                # the operator has written but not yet refreshed.
                pending = sorted(h for h in excluded if state.get(h) in ("RUNNING", "NEW", "UNHEALTHY"))
                if pending:
                    raise AgentError(f"the exclude file lists {pending}, which the RM still has in service (an "
                                     "operator's edit not refreshed yet): no refresh now, it would start their "
                                     "decommission")
                # A bare -g gives every DECOMMISSIONING host without a per-host timeout the RM's default:
                # write the timeout each has now first.
                bare = [h for h, t in excluded.items() if t is None and h not in hosts
                        and state.get(h) == "DECOMMISSIONING"]
                if bare:
                    timeouts = self.admin.decommissioning_timeouts()
                    for h in bare:
                        if timeouts.get(h) is not None:
                            excluded[h] = timeouts[h]
                previous = {h: excluded[h] for h in hosts}
                for h in hosts:
                    excluded[h] = 0
            self.admin.refresh_nodes_graceful()
        except (AgentError, OSError) as e:
            with self._lock:
                self.counters.release_errors += 1
                self.counters.last_error = str(e)
            log.error("decom agent: not releasing %s: %s", sorted(hosts), e)
            if previous:
                self._undo(previous)
            return
        for n, agreed, others in ready:
            log.info("decom agent: released %s: no container, apps agreed %s, other apps %s (%s); per-host "
                     "timeout %s -> 0, rmadmin -refreshNodes -g", n.host, list(agreed), list(others),
                     self.other_apps.value, previous[n.host])
            self._record(Release(n.host, n.node_id, now, agreed, others, dry_run=False,
                                 previous_timeout=previous[n.host]))

    def _undo(self, previous: dict[str, int | None]) -> None:
        """The refresh failed after the 0s were written: put the old timeouts back, so no later refresh (an
        operator's) releases these nodes without their apps' agreement."""
        try:
            with self.exclude.edit() as excluded:
                for h, t in previous.items():
                    if excluded.get(h, -1) == 0:
                        excluded[h] = t
        except (AgentError, OSError) as e:
            log.error("decom agent: cannot put back the timeouts %s after a failed refresh: %s. Fix the exclude "
                      "file %s by hand", previous, e, self.exclude.path)

    def _restore_timeouts(self, nodes: Iterable[RMNode]) -> None:
        """Once a released node has left DECOMMISSIONING, give it back its old per-host timeout: left at 0,
        a later decommission of the host would kill its containers at once."""
        state = {n.host: n.state for n in nodes}
        with self._lock:
            due = [r for r in self._releases if not r.dry_run and r.restored_at is None
                   and state.get(r.host, "DECOMMISSIONING") != "DECOMMISSIONING"]
        if not due:
            return
        try:
            with self.exclude.edit() as excluded:
                for r in due:
                    if excluded.get(r.host, -1) == 0:  # still the agent's 0 (an operator may have changed it)
                        excluded[r.host] = r.previous_timeout
        except (AgentError, OSError) as e:
            log.warning("decom agent: cannot restore the per-host timeouts of %s yet: %s", [r.host for r in due], e)
            return
        now = time.time()
        with self._lock:
            for r in due:
                r.restored_at = now
                if state.get(r.host) == "DECOMMISSIONED":
                    r.decommissioned_at = now
        for r in due:
            log.info("decom agent: %s is %s: its per-host timeout is %s again", r.host, state.get(r.host),
                     r.previous_timeout)
            self._append_record({"event": "restored", **r.to_json()})
        self._save_state()

    def _record(self, r: Release) -> None:
        with self._lock:
            self._releases.append(r)
            del self._releases[:-1000]
            if not r.dry_run:
                self.counters.releases += 1
        self._append_record({"event": "released", **r.to_json()})
        self._save_state()

    def _save_state(self) -> None:
        if self.state_file is None:
            return
        with self._save_lock:  # one writer at a time, from the snapshot to the rename: the last state wins
            with self._lock:
                state = {"apps": {a: {**s.report.to_json(), "received": s.received} for a, s in self._apps.items()},
                         "releases": [r.to_json() for r in self._releases if not r.dry_run and r.restored_at is None]}
            tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps(state, sort_keys=True))
                tmp.replace(self.state_file)
            except OSError as e:
                log.warning("decom agent: cannot save its state to %s: %s", self.state_file, e)

    def _load_state(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        try:
            state = json.loads(self.state_file.read_text())
            # Received now: the apps had no chance to report while the agent was down.
            apps = {a: _App(AppReport(a, frozenset(v["let_go"]), float(v["sent_at"])), time.time())
                    for a, v in state["apps"].items()}
            releases = [Release(**{**r, "apps_agreed": tuple(r["apps_agreed"]), "other_apps": tuple(r["other_apps"])})
                        for r in state["releases"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("decom agent: ignoring its unreadable state file %s (apps report again within %g s): %s",
                        self.state_file, HEARTBEAT_S, e)
            return
        self._apps, self._releases = apps, releases
        log.info("decom agent: state from %s: %d app(s), %d release(s) to restore", self.state_file, len(apps),
                 len(releases))

    def _append_record(self, item: dict[str, Any]) -> None:
        if self.records is None:
            return
        try:
            with open(self.records, "a") as f:
                f.write(json.dumps(item, sort_keys=True) + "\n")
        except OSError as e:
            log.warning("decom agent: cannot append to the records file %s: %s", self.records, e)

    # ---- what it says ------------------------------------------------------------------------------------

    def nodes_snapshot(self) -> tuple[float | None, list[RMNode]]:
        """When the RM's nodes were last read (epoch seconds; None: never) and what it said: what drivers
        with spark.decom.agent.url poll instead of the RM."""
        with self._lock:
            return self.counters.last_poll_ok, list(self._nodes)

    def last_polled_at(self) -> float | None:
        """When the RM was last read (epoch seconds; None: never)."""
        with self._lock:
            return self.counters.last_poll_ok

    def wait_for_poll(self, newer_than: float, timeout: float) -> None:
        """Return once the RM has been read after ``newer_than`` (a ``polled_at`` the agent served), or
        after ``timeout`` seconds: a driver's long poll, so a change reaches it as soon as the agent saw it."""
        with self._polled:
            self._polled.wait_for(lambda: (self.counters.last_poll_ok or 0.0) > newer_than, timeout)

    def healthy(self) -> tuple[bool, float | None]:
        """Whether the last good RM poll is recent (within 3 intervals + the RM timeout); its age."""
        with self._lock:
            ok = self.counters.last_poll_ok
        if ok is None:
            return False, None
        age = time.time() - ok
        return age <= 3 * self.interval + self.rm.timeout + 5, age

    def status(self) -> dict[str, Any]:
        with self._lock:
            c = self.counters
            return {
                "dry_run": self.dry_run,
                "other_apps": self.other_apps.value,
                "interval_s": self.interval,
                "exclude_file": str(self.exclude.path),
                "rm": self.rm.active_address or (self.rm.addresses[0] if self.rm.addresses else None),
                "last_poll_ok": c.last_poll_ok,
                "last_error": c.last_error,
                "last_poll_s": round(c.last_poll_s, 4),
                "slowest_recent_poll_s": round(max(self._poll_seconds, default=0.0), 4),
                "nodes_decommissioning": sorted(n.host for n in self._nodes if n.state == "DECOMMISSIONING"),
                "waiting": dict(self._waiting),
                "apps": {a: {"let_go": sorted(s.report.let_go), "received": s.received}
                         for a, s in sorted(self._apps.items())},
                "releases": [r.to_json() for r in self._releases],
                "rm_reads": {k: v for k, v in self._poller.status().items()
                             if k in ("polls", "full_polls", "full_read_in_flight", "full_read_errors")},
                "counters": {"polls": c.polls, "poll_errors": c.poll_errors, "releases": c.releases,
                             "release_errors": c.release_errors, "reports": c.reports,
                             "unauthenticated": c.unauthenticated, "bad_requests": c.bad_requests},
            }

    def metrics(self) -> str:
        """Prometheus text exposition."""
        s = self.status()
        c = s["counters"]
        healthy, age = self.healthy()
        lines = []

        def metric(name: str, kind: str, help_: str, value: float) -> None:
            lines.extend([f"# HELP decom_agent_{name} {help_}", f"# TYPE decom_agent_{name} {kind}",
                          f"decom_agent_{name} {value:g}"])

        metric("polls_total", "counter", "RM node polls.", c["polls"])
        metric("poll_errors_total", "counter", "RM node polls that failed.", c["poll_errors"])
        metric("releases_total", "counter", "Nodes finished early (not dry-run).", c["releases"])
        metric("release_errors_total", "counter", "Releases refused or failed.", c["release_errors"])
        metric("reports_total", "counter", "Authenticated driver reports.", c["reports"])
        metric("unauthenticated_requests_total", "counter", "Requests refused: bad or no signature.",
               c["unauthenticated"])
        metric("bad_requests_total", "counter", "Authenticated requests that were malformed.", c["bad_requests"])
        metric("apps_reporting", "gauge", "Apps whose driver reports to the agent.", len(s["apps"]))
        metric("nodes_decommissioning", "gauge", "DECOMMISSIONING nodes at the last poll.",
               len(s["nodes_decommissioning"]))
        metric("slowest_recent_poll_seconds", "gauge", "The slowest of the last 60 RM polls.",
               s["slowest_recent_poll_s"])
        metric("up", "gauge", "1 if the last RM poll is recent.", 1 if healthy else 0)
        metric("last_poll_age_seconds", "gauge", "Seconds since the last good RM poll (-1: none yet).",
               -1 if age is None else age)
        return "\n".join(lines) + "\n"
