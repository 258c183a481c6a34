"""``decom status``: decom's counters from a running driver, or from the event log a driver wrote.

A running driver publishes the shim's counters as Spark metrics (the plugin's gauges, named
``<app>.driver.plugin.io.decom.DecomPlugin.<counter>``), which the Spark UI serves at
``/metrics/json``. The event log (``spark.decom.eventLog``) has one JSON line per transition and
action and survives the driver.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx

from .._errors import DecomError
from .._http import HttpClient, HttpSettings
from .._redact import display_url
from .._units import json_int

__all__ = ["StatusError", "COUNTERS", "counters_from_metrics", "counters_from_ui", "counters_from_event_log"]

_GAUGE_MARK = ".plugin.io.decom.DecomPlugin."

#: The shim's counters (``DecomShim.CounterNames``), in the order ``decom status`` shows them.
COUNTERS = ("nodesDecommissioning", "nodesDecommissioned", "executorsExcluded", "executorsReleased",
            "outputsUnregistered", "fetchFailures", "fetchFailuresExempt", "stageAttemptsExempt", "stagesAborted",
            "tasksRetried", "outputsMigrated", "outputsOrphaned", "bytesMigrated", "nodesLetGo")


class StatusError(DecomError):
    """decom's figures could not be read."""


def counters_from_metrics(data: object, source: str) -> dict[str, Any]:
    """The decom gauges of a Spark ``/metrics/json`` document."""
    gauges = data.get("gauges") if isinstance(data, dict) else None
    if not isinstance(gauges, dict):
        raise StatusError(f"{source} is not Spark's /metrics/json (no gauges)")
    found: dict[str, Any] = {}
    for name, gauge in sorted(gauges.items()):
        if _GAUGE_MARK in name and isinstance(gauge, dict):
            found[name.rsplit(".", 1)[1]] = gauge.get("value")
    if not found:
        raise StatusError(f"{source} has no decom metrics: is spark.plugins=io.decom.DecomPlugin set "
                          "on that application?")
    # The shim's order; counters of another jar version (not listed) follow, by name.
    order = {name: i for i, name in enumerate(COUNTERS)}
    return {"source": source, **dict(sorted(found.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))}


def counters_from_ui(url: str, timeout: float = 5.0, *, auth: str = "none", user: str = "",
                     ca_bundle: str = "", transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """The decom gauges of the Spark UI at ``url`` (the driver's, or the RM proxy's for the app).

    User info in ``url`` becomes Basic auth; ``auth`` is simple (``user.name``, as the RM's web proxy
    wants), kerberos (SPNEGO) or none. Redirects are followed: the RM's proxy and a driver's AmIpFilter
    send the reader on."""
    text = url.strip()
    if text and "://" not in text:
        text = "http://" + text
    shown = display_url(text)
    # No proxy variables (nor .netrc): the UI is the RM's proxy or a driver in the cluster, reached the
    # way the RM client reaches the RM (--app), and the credentials decom sends are the ones given.
    settings = HttpSettings(service="the Spark UI", error=StatusError, urls=(text,), timeout=timeout, auth=auth,
                            user=user, ca_bundle=ca_bundle, trust_env=False, follow_redirects=True)
    with HttpClient(settings, transport=transport) as client:
        target = client.bases[0].rstrip("/") + "/metrics/json/"
        with client.errors(f"cannot reach the Spark UI at {shown}"):
            resp = client.request("GET", target)
    metrics = shown + "/metrics/json/"
    if resp.status_code in (401, 403):
        raise StatusError(f"{metrics} answered HTTP {resp.status_code}: the Spark UI at {shown} wants "
                          "credentials decom may use: put user:password in the URL (Basic auth), or use "
                          "--auth kerberos (SPNEGO) or --auth simple --user NAME (the RM's web proxy)")
    if resp.status_code != 200:
        raise StatusError(f"{metrics} answered HTTP {resp.status_code}: is {shown} a running Spark driver's UI?")
    try:
        data = resp.json()
    except ValueError:
        raise StatusError(f"{metrics} did not answer with JSON: is {shown} a Spark UI?") from None
    return counters_from_metrics(data, shown)


def counters_from_event_log(path: str) -> dict[str, Any]:
    """Counts of the actions and node transitions in a decom event log (JSON lines)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise StatusError(f"cannot read the event log {path}: {e.strerror or e}") from None
    actions: Counter[str] = Counter()
    nodes: dict[str, str] = {}
    # Node -> its last node-let-go detail: the shim's figures per node are cumulative, so only the last counts.
    let_go: dict[str, dict[str, Any]] = {}
    bad = 0
    first = last = None
    for line in lines:
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
            action, target, when = str(ev["action"]), str(ev["target"]), float(ev["time"])
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        first = when if first is None else min(first, when)
        last = when if last is None else max(last, when)
        actions[action] += 1
        detail = ev.get("detail")
        detail = detail if isinstance(detail, dict) else {}
        if action == "transition":
            nodes[target] = str(detail.get("to", ""))
        elif action == "node-let-go":
            let_go[target] = detail
    if not actions:
        raise StatusError(f"{path} holds no decom events" + (f" ({bad} unreadable lines)" if bad else ""))
    figures: dict[str, Any] = {"source": path, "events": sum(actions.values()),
                               "span_s": round((last or 0.0) - (first or 0.0), 1)}
    for state in ("DECOMMISSIONING", "DECOMMISSIONED", "RUNNING"):
        figures[f"nodes_now_{state.lower()}"] = sum(1 for s in nodes.values() if s == state)
    figures["nodes_let_go"] = len(let_go)
    for figure, key in (("outputs_migrated", "outputsMigrated"), ("outputs_orphaned", "outputsOrphaned"),
                        ("bytes_migrated", "bytesMigrated")):
        figures[figure] = sum(json_int(d.get(key)) for d in let_go.values())
    figures.update({f"action_{k}": v for k, v in sorted(actions.items())})
    if bad:
        figures["unreadable_lines"] = bad
    return figures
