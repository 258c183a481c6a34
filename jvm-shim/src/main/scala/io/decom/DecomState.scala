package io.decom

import scala.collection.mutable

/** What decom's callers name: a node (host, or YARN node id "host:port") or one executor. */
sealed trait Target {
  def key: String
  /** The host Spark is told the executors were lost with (a node target's), so it drops its outputs. */
  def workerHost: Option[String] = None
}

final case class NodeTarget(host: String, port: Option[Int]) extends Target {
  val key: String = port.fold(host)(p => s"$host:$p")
  override def workerHost: Option[String] = Some(host)
}

final case class ExecutorTarget(id: String) extends Target {
  val key: String = s"executor:$id"
}

object Target {
  private val NodeId = """^(.+):(\d+)$""".r

  /** "host" or a YARN node id "host:port" (IPv6 literals come in brackets: "[::1]:8041"). */
  def node(spec: String): NodeTarget = spec.trim match {
    case NodeId(h, p) if !h.contains(':') || h.startsWith("[") => NodeTarget(h, Some(p.toInt))
    case h => NodeTarget(h, None)
  }
}

/**
 * An executor and the node it runs on. On YARN, `nmHost`/`nmPort` come from the executor's
 * NM_HOST/NM_PORT attributes, which tell apart several NodeManagers on one host.
 */
final case class ExecutorInfo(id: String, host: String, nmHost: Option[String], nmPort: Option[Int]) {
  def runsOn(t: Target): Boolean = t match {
    case ExecutorTarget(eid) => eid == id
    case NodeTarget(h, port) =>
      (nmHost.contains(h) || host == h) && port.forall(p => nmPort.forall(_ == p))
  }
}

object ExecutorInfo {
  def fromAttributes(id: String, host: String, attributes: collection.Map[String, String])
      : ExecutorInfo =
    ExecutorInfo(id, host, attributes.get("NM_HOST"),
      attributes.get("NM_PORT").flatMap(_.toIntOption))
}

/** Everything decom did to one node (or executor), for exemption decisions and the report. */
final class NodeRecord(val target: Target) {
  var excludedAt: Option[Long] = None
  var excludedUntil: Option[Long] = None
  var unexcludedAt: Option[Long] = None
  var unexcludeReason: Option[String] = None
  var decommissionedAt: Option[Long] = None
  val executorsExcluded: mutable.LinkedHashSet[String] = mutable.LinkedHashSet.empty
  val executorsReleased: mutable.LinkedHashSet[String] = mutable.LinkedHashSet.empty
  /** Executors that were on the node when it was reported decommissioned (alive or not). */
  val executorsLost: mutable.LinkedHashSet[String] = mutable.LinkedHashSet.empty
  /** Executors decom told to move their blocks off the node (Spark's decommission message). */
  val executorsTold: mutable.LinkedHashSet[String] = mutable.LinkedHashSet.empty
  /** Executors to tell once another executor can take their blocks: told with no peer, an executor
   * finds nothing to move to, reports its migration done and exits, and Spark re-runs its map tasks. */
  val executorsToTell: mutable.LinkedHashSet[String] = mutable.LinkedHashSet.empty
  var outputsUnregistered: Int = 0
  /** shuffle id -> times decom unregistered outputs of that shuffle on this node. */
  val cleanups: mutable.Map[Int, mutable.ArrayBuffer[Long]] = mutable.Map.empty
  val exemptedAttempts: mutable.LinkedHashSet[String] = mutable.LinkedHashSet.empty
  /** Map outputs seen on the node since its exclusion: (shuffle, map id) -> the executor serving it then. */
  val outputsSeen: mutable.Map[(Int, Long), String] = mutable.Map.empty
  /** Outputs on the node at its exclusion whose writer executor was already gone: only the node's
   * shuffle service has them, so they can't move. */
  val orphans: mutable.Set[(Int, Long)] = mutable.Set.empty
  /** Outputs seen on the node that the map output tracker now places on another node. */
  val migrated: mutable.Set[(Int, Long)] = mutable.Set.empty
  var bytesMigrated: Long = 0L
  var lastMigrationAt: Option[Long] = None
  /** When decom found the app holding nothing on the node any more (see DecomShim.letGoOfNodes). */
  var letGoAt: Option[Long] = None

  def migratedShuffles: Set[Int] = migrated.iterator.map(_._1).toSet

  /** The host, when the target is a whole host (not one executor, nor a YARN node id "host:port"). */
  def wholeHost: Option[String] = target match {
    case NodeTarget(h, None) => Some(h)
    case _ => None
  }

  def excludedNow: Boolean = excludedAt.isDefined && unexcludedAt.forall(u => excludedAt.exists(_ > u))
  def decommissioned: Boolean = decommissionedAt.exists(d => unexcludedAt.forall(_ < d))
  /** A node whose fetch failures are decom-caused: decommissioning (excluded) or decommissioned. */
  def doomed: Boolean = excludedNow || decommissioned
}

/** The decision on one failed stage attempt. */
sealed trait Verdict
case object NotCounted extends Verdict
final case class Exempted(causes: Seq[String]) extends Verdict
final case class Counted(consecutive: Int, abort: Boolean) extends Verdict

/**
 * decom's own stage-retry policy. Spark's `spark.stage.maxConsecutiveAttempts` is raised by the
 * plugin, so Spark retries; this class counts the failed attempts Spark would count, minus those a
 * decommissioned node caused, and says when the user's limit is reached.
 *
 * Spark counts a stage attempt that failed through a FetchFailed (or a barrier task) and clears the
 * count when the stage succeeds; so does this. An attempt is exempt when any of its fetch failures
 * was caused by a node decom was told about, including one that arrives after the attempt failed.
 */
final class RetryPolicy(val userLimit: Int) {
  private final class Attempt(val startedAt: Long) {
    var fetchFailed = false
    val causes: mutable.LinkedHashSet[String] = mutable.LinkedHashSet.empty
    var verdict: Verdict = NotCounted
  }

  private val attempts = mutable.Map.empty[(Int, Int), Attempt]
  private val counted = mutable.Map.empty[Int, mutable.LinkedHashSet[Int]]
  private val exempted = mutable.Map.empty[Int, mutable.LinkedHashSet[Int]]
  private val aborted = mutable.Set.empty[Int]

  def submitted(stage: Int, attempt: Int, at: Long): Unit =
    attempts.getOrElseUpdate((stage, attempt), new Attempt(at))

  def startedAt(stage: Int, attempt: Int): Option[Long] = attempts.get((stage, attempt)).map(_.startedAt)

  /** Record a fetch failure; returns a changed verdict when it turns a counted attempt exempt. */
  def fetchFailed(stage: Int, attempt: Int, causes: Seq[String], now: Long): Option[Verdict] = {
    val a = attempts.getOrElseUpdate((stage, attempt), new Attempt(now))
    a.fetchFailed = true
    a.causes ++= causes
    a.verdict match {
      case Counted(_, false) if causes.nonEmpty =>
        counted.get(stage).foreach(_ -= attempt)
        exempted.getOrElseUpdate(stage, mutable.LinkedHashSet.empty) += attempt
        a.verdict = Exempted(a.causes.toSeq)
        Some(a.verdict)
      case _ => None
    }
  }

  def failed(stage: Int, attempt: Int, reason: String, now: Long): Verdict = {
    val a = attempts.getOrElseUpdate((stage, attempt), new Attempt(now))
    val barrier = reason.startsWith("Stage failed because barrier task")
    a.verdict =
      if (!a.fetchFailed && !barrier) NotCounted
      else if (a.causes.nonEmpty) {
        exempted.getOrElseUpdate(stage, mutable.LinkedHashSet.empty) += attempt
        Exempted(a.causes.toSeq)
      } else {
        val c = counted.getOrElseUpdate(stage, mutable.LinkedHashSet.empty)
        c += attempt
        val abort = c.size >= userLimit && !aborted.contains(stage)
        if (abort) aborted += stage
        Counted(c.size, abort)
      }
    a.verdict
  }

  def succeeded(stage: Int): Unit = {
    counted.remove(stage)
    exempted.remove(stage)
  }

  def countedAttempts(stage: Int): Seq[Int] = counted.get(stage).map(_.toSeq).getOrElse(Nil)
  def exemptAttempts(stage: Int): Seq[Int] = exempted.get(stage).map(_.toSeq).getOrElse(Nil)
  def abortedStages: Set[Int] = aborted.toSet
  def stagesWithFailures: Set[Int] = (counted.keySet ++ exempted.keySet ++ aborted).toSet
}

/**
 * Does a task failure say its executor's local dirs are gone? Spark names them `blockmgr-<uuid>`; a missing
 * one shows as `NoSuchFileException` (a subdir created under it) or `FileNotFoundException` "(No such file or
 * directory)" (a file under a subdir made before); other file errors there (too many open files, permission)
 * are not it. Returns the line that says so.
 */
object LocalDirsGone {
  private val Dir = "/blockmgr-"

  def in(className: String, description: String, fullStackTrace: String): Option[String] =
    (s"$className: $description".linesIterator.toSeq ++
      Option(fullStackTrace).toSeq.flatMap(_.linesIterator.take(400).toSeq))
      .map(_.trim)
      .find(l => l.contains(Dir) && (l.contains("java.nio.file.NoSuchFileException") ||
        (l.contains("java.io.FileNotFoundException") && l.contains("(No such file or directory)"))))
}

/**
 * Does a fetch failure from the shuffle service at `host:port` say the service can't serve the app's outputs?
 * Either it refused the connection: nothing listens there, so the node's NodeManager, which runs the service,
 * is down (a node cut off times out instead; Spark's message reads "Failed to connect to /host:port" with a
 * cause "Connection refused"). Or it answered "Executor is not registered": it restarted without NodeManager
 * recovery and forgot the app's executors (SPARK-9439), whose dirs the restarted NodeManager deleted.
 */
object ShuffleServiceLost {
  def in(message: String, host: String, port: Int): Boolean =
    message.contains("Executor is not registered (appId=") ||
      (message.contains("Connection refused") && message.linesIterator.take(400).exists(l =>
        l.contains("Failed to connect to ") && l.contains(s":$port") &&
          (l.contains(s"/$host:$port") || l.contains(s"to $host/") || l.contains(s"to $host:$port"))))
}

/**
 * Which nodes a fetch failure is to be blamed on. Pure bookkeeping over [[NodeRecord]]s.
 *
 * With an address (executor id + host of the block manager that served the output): a node that
 * decom excluded or decommissioned and that ran that executor or is that host, or that host when decom
 * dropped that executor and outputs of that shuffle there since the stage attempt began (the node's shuffle
 * service or the executor's local dirs gone). Without one (Spark's "Missing an output location", seen by
 * reducers after outputs were unregistered): a node whose outputs of that shuffle decom unregistered since the
 * stage attempt began (`slackMs` absorbs the clock gap between Spark's submission time and ours).
 */
object Blame {
  def of(
      nodes: Iterable[NodeRecord],
      execId: Option[String],
      host: Option[String],
      shuffleId: Int,
      attemptStartedAt: Long,
      slackMs: Long = 1000L): Seq[String] = execId match {
    case Some(id) =>
      nodes.filter { n =>
        (n.doomed && (n.executorsExcluded.contains(id) || n.executorsLost.contains(id) ||
          n.executorsReleased.contains(id) || (n.target match {
            case ExecutorTarget(eid) => eid == id
            case NodeTarget(h, _) => host.contains(h)
          }))) ||
          (n.executorsLost.contains(id) && n.wholeHost.exists(host.contains) &&
            cleanedSince(n, shuffleId, attemptStartedAt - slackMs))
      }.map(_.target.key).toSeq
    case None =>
      nodes.filter(n => cleanedSince(n, shuffleId, attemptStartedAt - slackMs)).map(_.target.key).toSeq
  }

  private def cleanedSince(n: NodeRecord, shuffleId: Int, since: Long): Boolean =
    n.cleanups.get(shuffleId).exists(_.exists(_ >= since))
}
