"""Which interactive sessions hold a shared YARN cluster, and how long each has been idle.

A session is a YARN application named like ``livy-session-*`` (Livy's naming), or one a Livy
server lists. Its idle time comes from, in this order:

1. Livy (when given): the session is busy while a statement is waiting or running, else idle since
   its last statement's ``completed`` time (since the app started when it ran none yet);
2. the Spark application's own status REST API, through the ResourceManager's web proxy
   (``/proxy/{app}/api/v1/applications/{app}/jobs``): busy while a job runs, else idle since the
   last job's ``completionTime`` (since the app started when it ran none yet);
3. else unknown ("?"): such a session is never reaped.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from .._errors import LivyError, ResourceManagerError
from .._units import json_int
from .._yarn import ResourceManagerClient
from .._yarn.nodes import RUNNING
from .livy import BUSY_STATES, LivyClient, LivySession

__all__ = ["Session", "ClusterTotals", "SessionInventory", "collect_inventory", "DEFAULT_SESSION_NAME"]

#: The YARN name Livy gives a session's Spark app: livy-session-<id>.
DEFAULT_SESSION_NAME = "livy-session-*"
#: YARN app states of an app that holds, or waits for, cluster resources.
ACTIVE_APP_STATES = ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING")


def _int(value: object) -> int:
    return max(0, json_int(value))


def _spark_time_ms(value: object) -> int | None:
    """Epoch ms of a Spark status-API time such as ``2026-11-22T12:34:56.789GMT``."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("GMT", "").replace("Z", "")
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            stamp = datetime.strptime(text, pattern).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
        return int(stamp.timestamp() * 1000)
    return None


@dataclass(frozen=True)
class Activity:
    """What a session is doing, as far as Livy or Spark tell."""

    busy: bool
    #: Epoch ms of the last activity (last statement or job completed, else the app's start).
    last_ms: int | None
    #: "livy", "spark", or "" when unknown.
    source: str
    detail: str = ""


@dataclass(frozen=True)
class Session:
    """One interactive session: its YARN app and/or its Livy session."""

    name: str
    app_id: str | None = None
    #: YARN app state (RUNNING, ACCEPTED, ...), None when YARN lists no active app for it.
    yarn_state: str | None = None
    yarn_user: str = ""
    queue: str = ""
    containers: int = 0
    memory_mb: int = 0
    vcores: int = 0
    started_ms: int = 0
    livy_id: int | None = None
    livy_state: str | None = None
    livy_user: str = ""
    busy: bool = False
    #: Seconds since the app started (None when YARN does not know the app).
    age_s: float | None = None
    #: Seconds since the last activity; 0 while busy; None when unknown.
    idle_s: float | None = None
    #: Where the idle time comes from: "livy", "spark" or "" (unknown).
    idle_source: str = ""
    note: str = ""

    @property
    def owner(self) -> str:
        """The notebook user: Livy's proxy user or owner when known, else the YARN user."""
        return self.livy_user or self.yarn_user

    def to_json(self) -> dict[str, Any]:
        return {"app_id": self.app_id, "name": self.name, "livy_id": self.livy_id, "livy_state": self.livy_state,
                "yarn_state": self.yarn_state, "owner": self.owner, "yarn_user": self.yarn_user,
                "queue": self.queue, "containers": self.containers, "memory_mb": self.memory_mb,
                "vcores": self.vcores, "age_s": _round(self.age_s), "idle_s": _round(self.idle_s),
                "busy": self.busy, "idle_source": self.idle_source or None, "note": self.note or None}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass(frozen=True)
class ClusterTotals:
    """The RM's ``/ws/v1/cluster/metrics`` (plus the largest free room on one RUNNING node)."""

    total_mb: int
    allocated_mb: int
    available_mb: int
    total_vcores: int
    allocated_vcores: int
    available_vcores: int
    containers: int
    active_nodes: int
    apps_running: int
    apps_pending: int
    pending_mb: int = 0
    #: The most memory / vcores free on any single RUNNING node (a container must fit on one node);
    #: None when the node list could not be read.
    largest_free_mb: int | None = None
    largest_free_vcores: int | None = None

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any], nodes: Iterable[Any] | None = None) -> ClusterTotals:
        largest_mb = largest_vc = None
        if nodes is not None:
            free = [(n.avail_memory_mb, n.avail_vcores) for n in nodes]
            largest_mb = max((f[0] for f in free), default=0)
            largest_vc = max((f[1] for f in free), default=0)
        return cls(total_mb=_int(metrics.get("totalMB")), allocated_mb=_int(metrics.get("allocatedMB")),
                   available_mb=_int(metrics.get("availableMB")),
                   total_vcores=_int(metrics.get("totalVirtualCores")),
                   allocated_vcores=_int(metrics.get("allocatedVirtualCores")),
                   available_vcores=_int(metrics.get("availableVirtualCores")),
                   containers=_int(metrics.get("containersAllocated")),
                   active_nodes=_int(metrics.get("activeNodes")), apps_running=_int(metrics.get("appsRunning")),
                   apps_pending=_int(metrics.get("appsPending")), pending_mb=_int(metrics.get("pendingMB")),
                   largest_free_mb=largest_mb, largest_free_vcores=largest_vc)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class OtherApps:
    """Active YARN apps that are not interactive sessions (batch jobs, ...)."""

    count: int = 0
    containers: int = 0
    memory_mb: int = 0
    vcores: int = 0


@dataclass(frozen=True)
class SessionInventory:
    sessions: list[Session]
    cluster: ClusterTotals
    others: OtherApps
    #: Epoch seconds the inventory was taken at.
    taken_at: float
    #: Problems that made parts of the picture unavailable (e.g. Livy down).
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"taken_at": self.taken_at, "sessions": [s.to_json() for s in self.sessions],
                "cluster": self.cluster.to_json(), "other_apps": dict(self.others.__dict__),
                "warnings": list(self.warnings)}


# ---- activity ------------------------------------------------------------------------------------


def livy_activity(livy: LivyClient, session: LivySession, started_ms: int | None) -> Activity:
    """Busy while a statement is waiting/running, else idle since the last completed statement."""
    if session.state in BUSY_STATES:
        return Activity(True, None, "livy", f"Livy state {session.state}")
    statements = livy.statements(session.id)
    if any(s.active for s in statements):
        return Activity(True, None, "livy", "a statement is running")
    completed = [s.completed_ms for s in statements if s.completed_ms]
    if completed:
        return Activity(False, max(completed), "livy", f"last of {len(statements)} statement(s) completed")
    if statements:
        # Statements ran but carry no completion time (a Livy older than 0.6): "idle since the start"
        # would overstate the idle time, so let the caller ask Spark instead.
        raise LivyError(f"Livy gives no completion time for the statements of session {session.id}")
    return Activity(False, started_ms or None, "livy", "no statement yet: idle since the app started")


def spark_activity(rm: ResourceManagerClient, app_id: str, started_ms: int | None) -> Activity:
    """Busy while a Spark job runs, else idle since the last job ended (Spark's status REST API through
    the RM's web proxy)."""
    jobs = rm.app_proxy_json(app_id, f"api/v1/applications/{app_id}/jobs")
    if not isinstance(jobs, list):
        raise ResourceManagerError(f"the Spark UI of {app_id} did not answer with a job list")
    if any(isinstance(j, dict) and j.get("status") == "RUNNING" for j in jobs):
        return Activity(True, None, "spark", "a Spark job is running")
    ended = [t for j in jobs if isinstance(j, dict) and (t := _spark_time_ms(j.get("completionTime")))]
    if ended:
        return Activity(False, max(ended), "spark", f"last of {len(jobs)} Spark job(s) ended")
    return Activity(False, started_ms or None, "spark", "no Spark job yet: idle since the app started")


def measure_activity(rm: ResourceManagerClient, livy: LivyClient | None, livy_session: LivySession | None,
              app_id: str | None, started_ms: int | None) -> Activity:
    problems: list[str] = []
    if livy is not None and livy_session is not None:
        try:
            return livy_activity(livy, livy_session, started_ms)
        except LivyError as e:
            problems.append(f"Livy: {e}")
    if app_id:
        try:
            return spark_activity(rm, app_id, started_ms)
        except ResourceManagerError as e:
            problems.append(f"Spark UI: {e}")
    return Activity(False, None, "", "; ".join(problems) or "no Livy and no Spark UI to ask")


# ---- inventory -----------------------------------------------------------------------------------


def with_activity(session: Session, activity: Activity, now_ms: int) -> Session:
    idle = 0.0 if activity.busy else (max(0.0, (now_ms - activity.last_ms) / 1000.0)
                                      if activity.last_ms else None)
    return replace(session, busy=activity.busy, idle_s=idle, idle_source=activity.source,
                   note=activity.detail if not activity.source else session.note)


def collect_inventory(rm: ResourceManagerClient, livy: LivyClient | None = None, *,
                      name_pattern: str = DEFAULT_SESSION_NAME, include_all: bool = False,
                      now: float | None = None, livy_required: bool = False) -> SessionInventory:
    """The sessions on the cluster with their resources and idle times, and the cluster's totals.

    An app is a session when its YARN name matches ``name_pattern`` (fnmatch) or Livy lists it;
    ``include_all`` lists every active app. A Livy failure is a warning unless ``livy_required``.
    """
    apps = rm.apps(states=ACTIVE_APP_STATES)
    metrics = rm.cluster_metrics()
    try:
        running_nodes = rm.nodes([RUNNING])
    except ResourceManagerError:
        running_nodes = None
    warnings: list[str] = []
    livy_sessions: list[LivySession] = []
    if livy is not None:
        try:
            livy_sessions = livy.sessions()
        except LivyError as e:
            if livy_required:
                raise
            warnings.append(f"Livy not used: {e}")
            livy = None
    now_s = time.time() if now is None else now
    now_ms = int(now_s * 1000)
    by_app = {s.app_id: s for s in livy_sessions if s.app_id}

    rows: list[tuple[Session, LivySession | None]] = []
    others = OtherApps()
    seen_livy: set[int] = set()
    for app in apps:
        app_id = str(app["id"])
        name = str(app.get("name") or "")
        livy_session = by_app.get(app_id)
        if not (include_all or livy_session is not None or fnmatch.fnmatchcase(name, name_pattern)):
            others = OtherApps(others.count + 1, others.containers + _int(app.get("runningContainers")),
                               others.memory_mb + _int(app.get("allocatedMB")),
                               others.vcores + _int(app.get("allocatedVCores")))
            continue
        started = _int(app.get("startedTime"))
        session = Session(
            name=name, app_id=app_id, yarn_state=str(app.get("state") or ""), yarn_user=str(app.get("user") or ""),
            queue=str(app.get("queue") or ""), containers=_int(app.get("runningContainers")),
            memory_mb=_int(app.get("allocatedMB")), vcores=_int(app.get("allocatedVCores")), started_ms=started,
            age_s=max(0.0, (now_ms - started) / 1000.0) if started else None)
        if livy_session is not None:
            seen_livy.add(livy_session.id)
            session = replace(session, livy_id=livy_session.id, livy_state=livy_session.state,
                              livy_user=livy_session.user)
        rows.append((session, livy_session))
    for ls in livy_sessions:
        if ls.id in seen_livy:
            continue
        # Livy knows it but YARN lists no active app: starting (no app yet), or ended/dead.
        note = "no YARN app yet" if not ls.app_id else f"{ls.app_id} is not active in YARN"
        rows.append((Session(name=ls.name or f"livy-session-{ls.id}", app_id=ls.app_id, livy_id=ls.id,
                             livy_state=ls.state, livy_user=ls.user, note=note), None))

    def measure(row: tuple[Session, LivySession | None]) -> Session:
        session, livy_session = row
        if session.yarn_state != "RUNNING":
            return session  # holds no running app: nothing to be idle
        return with_activity(session, measure_activity(rm, livy, livy_session, session.app_id,
                                                  session.started_ms or None), now_ms)

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(rows)))) as pool:
        sessions = list(pool.map(measure, rows))
    # Sessions holding the cluster first (oldest first), then Livy's starting/ended ones.
    sessions.sort(key=lambda s: (s.yarn_state is None, s.started_ms, s.livy_id if s.livy_id is not None else -1))
    return SessionInventory(sessions, ClusterTotals.from_metrics(metrics, running_nodes), others, now_s, warnings)
