"""The cluster's make-up: a lab's settings, nodes and addresses, and how it is set up.

Owns LabLayout, the bottom layer of YarnLab: the constructor (every setting and every piece of
state the other layers share), the RM addresses, node look-up, the run's work directory, the
Hadoop configuration files (written by yarnlab.config), the bridge and node namespaces (made
through yarnlab.net, each recorded first for clean-up), the daemons' JVM command lines, and the
environment and settings a Spark driver needs to use the lab.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import config, jars, net
from .supervisor import STATE_PATH, Proc, Supervisor

RM_MAIN = "org.apache.hadoop.yarn.server.resourcemanager.ResourceManager"
NM_MAIN = "org.apache.hadoop.yarn.server.nodemanager.NodeManager"
RM2_IP = net.SUBNET_PREFIX + "2"  # second ResourceManager of HA mode, also on the host side
QUICK_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"  # the Spark JVMs of quick_spark_jvms

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


class LabLayout:
    """A lab's settings and make-up; YarnLab's constructor (see yarnlab/lab.py)."""

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
        emulate_emr_drain: bool = False,
        agent: bool = False,
        quick_spark_jvms: bool = False,
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
        # -- settings
        self.num_nodes = nodes
        self.shuffle_service = shuffle_service
        self.nm_memory_mb = nm_memory_mb
        self.nm_vcores = nm_vcores
        self.rm_heap_mb = rm_heap_mb
        self.nm_heap_mb = nm_heap_mb
        self.ha = ha
        # Apache Hadoop keeps a DECOMMISSIONING node until every app that ran there ends (or the timeout);
        # EMR's private wait-for-applications=false lets it go once its containers are gone. Opt-in only.
        self.emulate_emr_drain = emulate_emr_drain
        # The decom agent (one per cluster, next to the RM): started with the lab, or by start_agent().
        self.agent = agent
        # Short-lived Spark JVMs (the tests): C1 only and the serial GC, as the lab's own daemons run.
        # An app then starts in ~30 s instead of ~50 s on two cores. Off for benchmarks, whose work is
        # long enough for the C2 compiler to pay.
        self.quick_spark_jvms = quick_spark_jvms
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
        # -- make-up, filled in by start()
        self._workdir_arg = Path(workdir) if workdir else None
        self.workdir: Path = Path()
        self.nodes: list[Node] = []
        self.rm_ids: list[str] = ["rm1", "rm2"] if ha else ["rm1"]
        self.rm_hosts: dict[str, str] = {"rm1": net.BRIDGE_IP, "rm2": RM2_IP} if ha else {"rm1": net.BRIDGE_IP}
        self.active_rm: str = "rm1"
        self.hadoop_conf_dir: Path = Path()
        self.shuffle: jars.ShuffleService | None = None
        self.startup_seconds: float | None = None
        self._hadoop_jars: Path = Path()
        # -- processes and what was made (yarnlab.supervisor)
        self._sup = Supervisor(self.lab_id, self.marker, self.state_path)
        self._started = False
        self._stopping = False
        self._mutex = threading.RLock()
        self._rm_down_ok = False  # an RM was stopped on purpose: waits don't fail on it
        # -- decommission bookkeeping (yarnlab.ops): host -> per-host timeout in the exclude file
        self._excluded: dict[str, int | None] = {}
        self._admin_lock = threading.RLock()
        self._drained_early: set[str] = set()
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._defaults = {"emulate_emr_drain": emulate_emr_drain, "agent": agent}  # what reset() restores

    # -- addresses and look-ups ----------------------------------------------------------------
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

    @property
    def agent_url(self) -> str:
        """The decom agent's endpoint (drivers in nodes reach the bridge address too)."""
        return f"http://{net.BRIDGE_IP}:{config.AGENT_PORT}"

    @property
    def agent_secret_file(self) -> Path:
        return self.workdir / "agent.secret"

    @property
    def _procs(self) -> dict[str, Proc]:
        """The daemons started, by role ("rm1", "rm2", "nm-n1")."""
        return self._sup.procs

    def node(self, ref: str | Node) -> Node:
        """Look a node up by name ("n1"), host ("198.18.0.11"), netns or node id."""
        if isinstance(ref, Node):
            return ref
        for n in self.nodes:
            if ref in (n.name, n.host, n.netns, n.node_id):
                return n
        raise KeyError(f"no lab node {ref!r}")

    # -- set-up --------------------------------------------------------------------------------
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
            graceful_timeout_secs=self.graceful_timeout_secs,
            shuffle_class=self.shuffle.class_name if self.shuffle else None,
            shuffle_classpath=self.shuffle.classpath if self.shuffle else None,
            extra=self.extra_yarn_site,
        )
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
        self._sup.made_bridge = True
        self._write_state()
        for n in self.nodes:
            # recorded before it is made: a half-made node is removed too
            self._sup.made_nodes.append(net.NodeNet(n.index, n.host, n.netns, n.veth))
            self._write_state()
            net.create_node(n.index)

    def _write_state(self) -> None:
        self._sup.write_state(workdir=self.workdir, rm_url=self.rm_url, hadoop_conf_dir=self.hadoop_conf_dir)

    # -- daemons -------------------------------------------------------------------------------
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

    def _start_rm(self, rid: str) -> None:
        conf_dir = self.workdir / "conf" / rid
        log = self.log_dir / f"{rid}.log"
        argv = self._java_argv(self.rm_heap_mb, conf_dir, RM_MAIN, f"{rid}.log")
        self._sup.spawn(rid, argv, log, self._env(conf_dir), None, cwd=self.workdir)

    def _start_nm(self, n: Node) -> None:
        extra = self.shuffle.jvm_options if self.shuffle else ()
        argv = self._java_argv(self.nm_heap_mb, n.conf_dir, NM_MAIN, n.log_path.name, extra)
        self._sup.spawn(f"nm-{n.name}", argv, n.log_path, self._env(n.conf_dir), n.netns, cwd=self.workdir)

    # -- for Spark -----------------------------------------------------------------------------
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
        agent = self._procs.get("agent")
        if agent is not None and agent.alive():
            c["spark.decom.agent.url"] = self.agent_url
            c["spark.decom.agent.secretFile"] = str(self.agent_secret_file)
        if self.quick_spark_jvms:
            for key in ("spark.driver.extraJavaOptions", "spark.yarn.am.extraJavaOptions",
                        "spark.executor.extraJavaOptions"):
                c[key] = QUICK_JVM_OPTIONS
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
