"""Fetch (once) and locate the jars the lab runs: Hadoop YARN from Maven Central, a shuffle service.

Layout under the jar dir (default ``<repo>/.lab/jars``, override with ``$YARNLAB_JARS``)::

    hadoop/          ResourceManager, NodeManager, yarn client (RMAdminCLI) and their dependencies
    spark-shuffle/   Spark's own YarnShuffleService, if Maven Central has it (it does not today)
    lab-shuffle/     otherwise: yarnlab's LabShuffleService + the Spark 4.3 network jars of pyspark
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError, LabUnavailable

PKG_DIR = Path(__file__).resolve().parent
REPO_ROOT = PKG_DIR.parent
POM = PKG_DIR / "pom.xml"
JAVA_SRC = PKG_DIR / "java"

SPARK_SHUFFLE_CLASS = "org.apache.spark.network.yarn.YarnShuffleService"
LAB_SHUFFLE_CLASS = "decom.yarnlab.LabShuffleService"

# Jars of pyspark's jars/ dir the lab shuffle service needs (prefix match on the file name).
_SHUFFLE_JAR_PREFIXES = (
    "spark-network-common_",
    "spark-network-shuffle_",
    "spark-common-utils-java_",
    "spark-tags_",
    "netty-buffer-",
    "netty-codec-",
    "netty-common-",
    "netty-handler-",
    "netty-resolver-",
    "netty-transport-",
    "jackson-core-",
    "jackson-databind-",
    "jackson-annotations-",
    "metrics-core-",
    "RoaringBitmap-",
    "commons-crypto-",
    "commons-lang3-",
    "commons-io-",
    "tink-",
    "leveldbjni-all-",
    "rocksdbjni-",
    # Spark's logging (SparkLoggerFactory) needs log4j 2 and slf4j 2 inside the service's loader
    "log4j-api-",
    "log4j-core-",
    "log4j-slf4j2-impl-",
    "slf4j-api-",
)
# Logging of the Spark classes inside the NM (they log through log4j 2, the NM through log4j 1).
_SHUFFLE_LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{ISO8601} %p %c{1} (spark_shuffle): %m%n
logger.shuffle.name = org.apache.spark.network.shuffle
logger.shuffle.level = info
"""
_SKIP_MARKERS = ("aarch_64", "osx-", "windows-", "riscv64", "kqueue", "-http", "-dns", "-socks", "-proxy")


def java_home() -> Path:
    env = os.environ.get("JAVA_HOME")
    candidates = [Path(env)] if env else []
    candidates.append(Path("/usr/lib/jvm/java-17-openjdk-amd64"))
    for c in candidates:
        if (c / "bin" / "java").exists():
            return c
    java = shutil.which("java")
    if java:
        return Path(os.path.realpath(java)).parent.parent
    raise LabUnavailable("no Java found: set JAVA_HOME (Java 17 is what Hadoop 3.5 needs)")


def default_jar_dir() -> Path:
    return Path(os.environ.get("YARNLAB_JARS", str(REPO_ROOT / ".lab" / "jars")))


def pyspark_jars_dir() -> Path:
    spark_home = os.environ.get("SPARK_HOME")
    if spark_home and (Path(spark_home) / "jars").is_dir():
        return Path(spark_home) / "jars"
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise LabError("pyspark is not importable and SPARK_HOME is unset: cannot find Spark's jars")
    return Path(list(spec.submodule_search_locations)[0]) / "jars"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _mvn_copy(profile: str, out: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LabUnavailable("mvn not found: Maven is needed once to fetch the Hadoop jars")
    env = dict(os.environ, JAVA_HOME=str(java_home()))
    return subprocess.run(
        [mvn, "-q", "-B", "-f", str(POM), "-P", profile, "dependency:copy-dependencies",
         f"-DoutputDirectory={out}", "-DincludeScope=runtime"],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


def ensure_hadoop_jars(jar_dir: Path | None = None, timeout: float = 1200) -> Path:
    """Download the Hadoop YARN jars once; returns the directory holding them."""
    jar_dir = jar_dir or default_jar_dir()
    dest = jar_dir / "hadoop"
    if (dest / ".complete").exists():
        return dest
    with _locked(jar_dir / ".lock"):
        if (dest / ".complete").exists():
            return dest
        failure = _fetch(dest, "hadoop", "hadoop-yarn-server-resourcemanager-*.jar", timeout)
        if failure is not None:
            raise LabError("could not fetch the Hadoop jars with Maven:\n" + failure)
    return dest


def _fetch(dest: Path, profile: str, expect: str, timeout: float) -> str | None:
    """Copy a pom profile's jars into `dest` (all or nothing, marked .complete); None, or Maven's output
    when it failed or brought no jar matching `expect`."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{profile}.", dir=dest.parent))
    try:
        r = _mvn_copy(profile, tmp, timeout)
        if r.returncode != 0 or not list(tmp.glob(expect)):
            return (r.stdout + r.stderr)[-4000:]
        (tmp / ".complete").write_text("ok\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        return None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class ShuffleService:
    """How the NodeManagers load the `spark_shuffle` aux service."""

    class_name: str
    classpath: str  # value for yarn.nodemanager.aux-services.spark_shuffle.classpath
    impl: str  # "spark" (Spark's YarnShuffleService) or "lab" (yarnlab's LabShuffleService)
    jvm_options: tuple[str, ...] = ()  # extra NodeManager JVM options


def _try_spark_shuffle(jar_dir: Path, timeout: float) -> Path | None:
    dest = jar_dir / "spark-shuffle"
    if (dest / ".complete").exists():
        return dest
    marker = jar_dir / "spark-shuffle.unavailable"
    if marker.exists():
        return None
    failure = _fetch(dest, "spark-shuffle", "spark-network-yarn*.jar", timeout)
    if failure is None:
        return dest
    marker.write_text(failure)
    return None


def _build_lab_shuffle(jar_dir: Path, hadoop_dir: Path) -> Path:
    src_files = sorted(JAVA_SRC.rglob("*.java"))
    spark_jars = pyspark_jars_dir()
    picked = sorted(
        p for p in spark_jars.glob("*.jar")
        if p.name.startswith(_SHUFFLE_JAR_PREFIXES) and not any(m in p.name for m in _SKIP_MARKERS)
    )
    h = hashlib.sha256()
    h.update(_SHUFFLE_LOG4J2.encode())
    for f in src_files:
        h.update(f.read_bytes())
    for p in picked:
        h.update(p.name.encode())
    digest = h.hexdigest()[:16]
    dest = jar_dir / "lab-shuffle"
    stamp = dest / ".complete"
    if stamp.exists() and stamp.read_text().strip() == digest:
        return dest
    if not any(p.name.startswith("spark-network-shuffle_") for p in picked):
        raise LabError(f"no spark-network-shuffle jar in {spark_jars}")
    jhome = java_home()
    tmp = Path(tempfile.mkdtemp(prefix="lab-shuffle.", dir=jar_dir))
    try:
        classes = tmp / "classes"
        classes.mkdir()
        cp = ":".join([str(p) for p in picked] + [str(hadoop_dir / "*")])
        r = subprocess.run(
            [str(jhome / "bin" / "javac"), "-nowarn", "--release", "17", "-cp", cp, "-d", str(classes),
             *map(str, src_files)],
            capture_output=True, text=True, timeout=300,
        )
        if r.returncode != 0:
            raise LabError("javac of LabShuffleService failed:\n" + (r.stdout + r.stderr)[-4000:])
        r = subprocess.run(
            [str(jhome / "bin" / "jar"), "cf", str(tmp / "yarnlab-shuffle.jar"), "-C", str(classes), "."],
            capture_output=True, text=True, timeout=120,
        )
        if r.returncode != 0:
            raise LabError("jar of LabShuffleService failed:\n" + (r.stdout + r.stderr)[-4000:])
        shutil.rmtree(classes)
        for p in picked:
            os.symlink(p, tmp / p.name)
        (tmp / "log4j2.properties").write_text(_SHUFFLE_LOG4J2)
        stamp_tmp = tmp / ".complete"
        stamp_tmp.write_text(digest + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_shuffle_service(jar_dir: Path | None = None, timeout: float = 600) -> ShuffleService:
    """Spark's YarnShuffleService if Maven Central serves it, else yarnlab's LabShuffleService."""
    jar_dir = jar_dir or default_jar_dir()
    hadoop_dir = ensure_hadoop_jars(jar_dir)
    with _locked(jar_dir / ".lock"):
        real = _try_spark_shuffle(jar_dir, timeout)
        if real is not None:
            return ShuffleService(SPARK_SHUFFLE_CLASS, f"{real}/*", "spark")
        lab = _build_lab_shuffle(jar_dir, hadoop_dir)
        # log4j 2 of the Spark classes cannot see a config inside the aux-service class loader
        # (it looks through the thread context loader): point it at the file instead.
        return ShuffleService(LAB_SHUFFLE_CLASS, f"{lab}/*", "lab",
                              (f"-Dlog4j2.configurationFile={lab / 'log4j2.properties'}",))
