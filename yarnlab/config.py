"""Hadoop configuration files of the lab (yarn-site.xml, core-site.xml, capacity-scheduler.xml...)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

RM_PORTS = {
    "address": 8032,
    "scheduler.address": 8030,
    "resource-tracker.address": 8031,
    "admin.address": 8033,
    "webapp.address": 8088,
}
NM_PORT = 8041
NM_LOCALIZER_PORT = 8040
NM_HTTP_PORT = 8042
NM_COLLECTOR_PORT = 8048
SHUFFLE_PORT = 7337
#: The decom agent's HTTP endpoint, on the bridge address.
AGENT_PORT = 8788

LOG4J = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.target=System.err
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
log4j.logger.org.apache.hadoop.util.NativeCodeLoader=ERROR
log4j.logger.org.apache.hadoop.yarn.server.resourcemanager.DecommissioningNodesWatcher=DEBUG
log4j.logger.org.eclipse.jetty=WARN
log4j.logger.com.sun.jersey=WARN
log4j.logger.org.glassfish=WARN
"""


def site_xml(props: Mapping[str, object]) -> str:
    lines = ['<?xml version="1.0"?>', "<configuration>"]
    for k, v in props.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        lines.append(f"  <property><name>{escape(k)}</name><value>{escape(str(v))}</value></property>")
    lines.append("</configuration>")
    return "\n".join(lines) + "\n"


def exclude_xml(hosts: Mapping[str, int | None]) -> str:
    """Exclude file in Hadoop's XML form (HostsFileReader reads it so when the name ends in .xml)."""
    lines = ['<?xml version="1.0"?>', "<hosts>"]
    for host, timeout in hosts.items():
        t = "" if timeout is None else f"<timeout>{int(timeout)}</timeout>"
        lines.append(f"  <host><name>{escape(host)}</name>{t}</host>")
    lines.append("</hosts>")
    return "\n".join(lines) + "\n"


def core_site(workdir: Path) -> dict[str, object]:
    return {
        "fs.defaultFS": "file:///",
        "hadoop.tmp.dir": str(workdir / "tmp"),
        "hadoop.security.authentication": "simple",
        # Quick reconnects (RM restarts, failovers) instead of Hadoop's patient defaults.
        "ipc.client.connect.max.retries": 3,
        "ipc.client.connect.retry.interval": 500,
        "ipc.client.connect.max.retries.on.timeouts": 3,
        "ipc.client.connect.timeout": 5000,
    }


def capacity_scheduler() -> dict[str, object]:
    return {
        "yarn.scheduler.capacity.root.queues": "default",
        "yarn.scheduler.capacity.root.default.capacity": 100,
        "yarn.scheduler.capacity.root.default.maximum-capacity": 100,
        "yarn.scheduler.capacity.root.default.user-limit-factor": 1,
        "yarn.scheduler.capacity.root.default.state": "RUNNING",
        "yarn.scheduler.capacity.maximum-am-resource-percent": 0.5,
        "yarn.scheduler.capacity.resource-calculator":
            "org.apache.hadoop.yarn.util.resource.DefaultResourceCalculator",
        # No delay scheduling: executors land on whatever node has room, at once.
        "yarn.scheduler.capacity.node-locality-delay": -1,
    }


def yarn_site_common(
    *,
    workdir: Path,
    rm_hosts: Mapping[str, str],
    exclude_path: Path,
    nm_memory_mb: int,
    nm_vcores: int,
    nm_expiry_ms: int,
    decom_poll_secs: int,
    graceful_timeout_secs: int,
    shuffle_class: str | None,
    shuffle_classpath: str | None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Properties every process reads (RM, NMs, clients). `rm_hosts` maps rm-id -> address."""
    p: dict[str, object] = {}
    ids = list(rm_hosts)
    if len(ids) == 1:
        host = rm_hosts[ids[0]]
        p["yarn.resourcemanager.hostname"] = host
        for key, port in RM_PORTS.items():
            p[f"yarn.resourcemanager.{key}"] = f"{host}:{port}"
    else:
        p.update({
            "yarn.resourcemanager.ha.enabled": True,
            "yarn.resourcemanager.ha.rm-ids": ",".join(ids),
            "yarn.resourcemanager.ha.automatic-failover.enabled": False,
            "yarn.resourcemanager.ha.automatic-failover.embedded": False,
            "yarn.resourcemanager.cluster-id": "yarnlab",
            "yarn.client.failover-max-attempts": 30,
            "yarn.client.failover-sleep-base-ms": 200,
            "yarn.client.failover-sleep-max-ms": 1000,
        })
        for rid, host in rm_hosts.items():
            p[f"yarn.resourcemanager.hostname.{rid}"] = host
            for key, port in RM_PORTS.items():
                p[f"yarn.resourcemanager.{key}.{rid}"] = f"{host}:{port}"
    p.update({
        "yarn.resourcemanager.scheduler.class":
            "org.apache.hadoop.yarn.server.resourcemanager.scheduler.capacity.CapacityScheduler",
        "yarn.scheduler.minimum-allocation-mb": 128,
        "yarn.scheduler.maximum-allocation-mb": nm_memory_mb,
        "yarn.scheduler.minimum-allocation-vcores": 1,
        "yarn.scheduler.maximum-allocation-vcores": nm_vcores,
        # Decommissioning
        "yarn.resourcemanager.nodes.exclude-path": str(exclude_path),
        "yarn.resourcemanager.decommissioning-nodes-watcher.poll-interval-secs": decom_poll_secs,
        "yarn.resourcemanager.nodemanager-graceful-decommission-timeout-secs": graceful_timeout_secs,
        "yarn.nm.liveness-monitor.expiry-interval-ms": nm_expiry_ms,
        "yarn.resourcemanager.nodemanagers.heartbeat-interval-ms": 1000,
        # Restarts: recovery on a local file-system state store so apps and nodes come back.
        "yarn.resourcemanager.recovery.enabled": True,
        "yarn.resourcemanager.store.class":
            "org.apache.hadoop.yarn.server.resourcemanager.recovery.FileSystemRMStateStore",
        "yarn.resourcemanager.fs.state-store.uri": f"file://{workdir / 'rm-state'}",
        "yarn.resourcemanager.fs.state-store.retry-policy-spec": "500,3",
        "yarn.resourcemanager.work-preserving-recovery.enabled": True,
        "yarn.resourcemanager.work-preserving-recovery.scheduling-wait-ms": 2000,
        "yarn.resourcemanager.connect.retry-interval.ms": 1000,
        "yarn.resourcemanager.connect.max-wait.ms": 900000,
        "yarn.nodemanager.resourcemanager.connect.retry-interval.ms": 1000,
        "yarn.nodemanager.resourcemanager.connect.max-wait.ms": 900000,
        "yarn.resourcemanager.am.max-attempts": 2,
        # Quiet, small, local
        "yarn.timeline-service.enabled": False,
        "yarn.system-metrics-publisher.enabled": False,
        "yarn.log-aggregation-enable": False,
        "yarn.webapp.ui2.enable": False,
        "yarn.acl.enable": False,
        "yarn.resourcemanager.client.thread-count": 10,
        "yarn.resourcemanager.scheduler.client.thread-count": 10,
        "yarn.resourcemanager.resource-tracker.client.thread-count": 10,
        "yarn.resourcemanager.admin.client.thread-count": 2,
        "yarn.resourcemanager.amlauncher.thread-count": 5,
        # NodeManager resources and checks
        "yarn.nodemanager.resource.memory-mb": nm_memory_mb,
        "yarn.nodemanager.resource.cpu-vcores": nm_vcores,
        "yarn.nodemanager.resource.detect-hardware-capabilities": False,
        "yarn.nodemanager.vmem-check-enabled": False,
        "yarn.nodemanager.pmem-check-enabled": False,
        "yarn.nodemanager.disk-health-checker.disk-utilization-threshold.enabled": False,
        "yarn.nodemanager.disk-health-checker.disk-free-space-threshold.enabled": False,
        "yarn.nodemanager.disk-health-checker.min-healthy-disks": 0.0,
        "yarn.nodemanager.delete.debug-delay-sec": 0,
        "yarn.nodemanager.container-executor.class":
            "org.apache.hadoop.yarn.server.nodemanager.DefaultContainerExecutor",
        "yarn.nodemanager.container-manager.thread-count": 5,
        "yarn.nodemanager.localizer.client.thread-count": 2,
        "yarn.nodemanager.localizer.fetch.thread-count": 2,
        "yarn.nodemanager.sleep-delay-before-sigkill.ms": 1000,
        "yarn.nodemanager.process-kill-wait.ms": 1000,
        "yarn.nodemanager.env-whitelist":
            "JAVA_HOME,HADOOP_COMMON_HOME,HADOOP_HDFS_HOME,HADOOP_CONF_DIR,CLASSPATH_PREPEND_DISTCACHE,"
            "HADOOP_YARN_HOME,HADOOP_HOME,PATH,LANG,TZ",
    })
    if shuffle_class:
        p.update({
            "yarn.nodemanager.aux-services": "spark_shuffle",
            "yarn.nodemanager.aux-services.spark_shuffle.class": shuffle_class,
            "spark.shuffle.service.port": SHUFFLE_PORT,
        })
        if shuffle_classpath:
            p["yarn.nodemanager.aux-services.spark_shuffle.classpath"] = shuffle_classpath
    if extra:
        p.update(extra)
    return p


def nm_site(base: Mapping[str, object], *, ip: str, node_dir: Path) -> dict[str, object]:
    p = dict(base)
    p.update({
        "yarn.nodemanager.hostname": ip,
        "yarn.nodemanager.bind-host": ip,
        "yarn.nodemanager.address": f"{ip}:{NM_PORT}",
        "yarn.nodemanager.localizer.address": f"{ip}:{NM_LOCALIZER_PORT}",
        "yarn.nodemanager.webapp.address": f"{ip}:{NM_HTTP_PORT}",
        "yarn.nodemanager.collector-service.address": f"{ip}:{NM_COLLECTOR_PORT}",
        "yarn.nodemanager.local-dirs": str(node_dir / "local"),
        "yarn.nodemanager.log-dirs": str(node_dir / "logs"),
        "yarn.nodemanager.recovery.enabled": False,
        "spark.shuffle.service.bind.host": ip,
        "hadoop.tmp.dir": str(node_dir / "tmp"),
    })
    return p


def rm_site(base: Mapping[str, object], *, rm_id: str | None, host: str) -> dict[str, object]:
    p = dict(base)
    p["yarn.resourcemanager.bind-host"] = host
    if rm_id is not None:
        p["yarn.resourcemanager.ha.id"] = rm_id
    return p


def write_conf_dir(path: Path, *, yarn: Mapping[str, object], core: Mapping[str, object],
                   capacity: Mapping[str, object]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "yarn-site.xml").write_text(site_xml(yarn))
    (path / "core-site.xml").write_text(site_xml(core))
    (path / "capacity-scheduler.xml").write_text(site_xml(capacity))
    (path / "log4j.properties").write_text(LOG4J)
    return path
