package io.decom

import java.util.{Properties, List => JList}
import java.util.concurrent.{Executors, ScheduledExecutorService, TimeUnit}

import scala.collection.mutable
import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import org.apache.spark.{ExceptionFailure, FetchFailed, SparkConf, SparkContext}
import org.apache.spark.decom.SparkInternals
import org.apache.spark.scheduler._
import org.apache.spark.storage.BlockManagerId
import org.json4s._
import org.json4s.JsonDSL._
import org.json4s.jackson.JsonMethods.{compact, render}
import org.slf4j.LoggerFactory

/** The Spark conf keys the shim reads (EMR's names, so EMR users keep their settings). */
object Keys {
  val ExemptEnabled = "spark.stage.attempt.ignoreOnDecommissionFetchFailure"
  val SparkMaxAttempts = "spark.stage.maxConsecutiveAttempts"
  val UserMaxAttempts = "spark.decom.stage.maxConsecutiveAttempts"
  val ExtraAttempts = "spark.decom.stage.maxDecommissionRetries"
  val ReleaseIdle = "spark.decom.releaseIdleExecutors"
  /** With the shuffle service on, let go of a decommissioning node's executors as soon as their tasks
   * end, even while a job needs their outputs (the node's shuffle service keeps serving them). */
  val KeepCapacity = "spark.decom.keepCapacity"
  /** When a node is gone, retry at once the running tasks that read shuffles it held outputs of. */
  val RetryFetching = "spark.decom.retryFetchingTasks"
  /** A DECOMMISSIONING node's executors move their shuffle outputs and cached blocks to healthy nodes
   * (Spark's own migration, which decom triggers and follows), with the shuffle service on or off. */
  val MigrateBlocks = "spark.decom.migrateBlocks"
  /** decom on or off; the Python side reads it too (it then starts no control plane). */
  val Enabled = "spark.decom.enabled"
  /** How long a told executor may take to move its blocks before decom lets it go anyway (what is left
   * stays served by the node's shuffle service until the node goes). */
  val MigrationWait = "spark.decom.migrationWait"
  /** Drop an executor whose local dirs are gone (a NodeManager restarted without recovery deleted them),
   * and the app's other executors on its host, at the first task that fails for it. */
  val DropWithoutLocalDirs = "spark.decom.dropExecutorsWithoutLocalDirs"
  /** With the shuffle service on: at the first fetch failure saying a node's shuffle service lost the app's
   * outputs (it refused the connection, or forgot the app), drop the app's executors on that node and every
   * output it serves. */
  val DropOnShuffleServiceLoss = "spark.decom.dropExecutorsOnShuffleServiceLoss"
  /** Set by the plugin when it, not the user, turned spark.decommission.enabled on. */
  val DecommissionSetByDecom = "spark.decom.internal.decommissionEnabledByDecom"
  val ShuffleService = "spark.shuffle.service.enabled"
  val ShuffleTracking = "spark.dynamicAllocation.shuffleTracking.enabled"
  val NativeDecommission = "spark.decommission.enabled"
  val StorageDecommission = "spark.storage.decommission.enabled"
  val ShuffleBlocks = "spark.storage.decommission.shuffleBlocks.enabled"
  val RddBlocks = "spark.storage.decommission.rddBlocks.enabled"
  val DefaultMaxAttempts = 4
  val DefaultExtraAttempts = 16
}

/**
 * Raise Spark's stage-retry limit so decom can own the policy: Spark keeps retrying, and
 * [[RetryPolicy]] aborts at the user's limit counting only attempts not caused by decommissioning.
 * Spark's own limit stays as a backstop at user limit + `spark.decom.stage.maxDecommissionRetries`.
 */
object RetryLimits {
  def userLimit(conf: SparkConf): Int =
    conf.getOption(Keys.UserMaxAttempts).map(_.toInt)
      .getOrElse(conf.getInt(Keys.SparkMaxAttempts, Keys.DefaultMaxAttempts))

  def raisedLimit(conf: SparkConf): Int =
    userLimit(conf) + conf.getInt(Keys.ExtraAttempts, Keys.DefaultExtraAttempts)

  /** Returns true when Spark's limit was raised (exemption on). */
  def raise(conf: SparkConf): Boolean = {
    if (!conf.getBoolean(Keys.ExemptEnabled, defaultValue = true)) return false
    val user = userLimit(conf)
    conf.set(Keys.UserMaxAttempts, user.toString)
    conf.set(Keys.SparkMaxAttempts, raisedLimit(conf).toString)
    true
  }
}

/**
 * Block migration (`spark.decom.migrateBlocks`). An executor acts on a decommission message only if
 * `spark.decommission.enabled` and `spark.storage.decommission.enabled` were in its conf when it started,
 * and executors copy the driver's conf once, at registration. So the plugin sets, before any executor
 * exists, the keys the user left unset. What else `spark.decommission.enabled` turns on is undone where
 * it isn't wanted (see [[SparkInternals.killIdleExecutorsOnScaleDown]]).
 */
object Migration {
  val ExecutorKeys: Seq[String] =
    Seq(Keys.NativeDecommission, Keys.StorageDecommission, Keys.ShuffleBlocks, Keys.RddBlocks)

  /** Sets the unset keys to true and returns them; nothing when the user turned migration off. */
  def prepare(conf: SparkConf): Seq[String] = {
    // decom turned off (spark.decom.enabled=false, read by the Python side too) leaves Spark as it was.
    if (!conf.getBoolean(Keys.Enabled, defaultValue = true) ||
      !conf.getBoolean(Keys.MigrateBlocks, defaultValue = true)) return Nil
    val unset = ExecutorKeys.filterNot(conf.contains)
    unset.foreach(conf.set(_, "true"))
    if (unset.contains(Keys.NativeDecommission)) conf.set(Keys.DecommissionSetByDecom, "true")
    // Outputs written after an executor was told move in its next round; Spark's default is 30 s apart.
    if (!conf.contains(ReattemptInterval)) conf.set(ReattemptInterval, "5s")
    unset
  }

  val ReattemptInterval = "spark.storage.decommission.replicationReattemptInterval"

  /** Executors of this app can move their blocks when told. */
  def possible(conf: SparkConf): Boolean =
    conf.getBoolean(Keys.NativeDecommission, defaultValue = false) &&
      conf.getBoolean(Keys.StorageDecommission, defaultValue = false) &&
      (conf.getBoolean(Keys.ShuffleBlocks, defaultValue = false) ||
        conf.getBoolean(Keys.RddBlocks, defaultValue = false))

  /**
   * Dynamic allocation should kill idle executors, as it would had decom not set
   * spark.decommission.enabled; except with neither the shuffle service nor shuffle tracking, where
   * decommissioning them (moving their outputs) is what keeps their outputs at all.
   */
  def keepSparksScaleDown(conf: SparkConf): Boolean =
    conf.getBoolean(Keys.DecommissionSetByDecom, defaultValue = false) &&
      (conf.getBoolean(Keys.ShuffleService, defaultValue = false) ||
        conf.getBoolean(Keys.ShuffleTracking, defaultValue = false))
}

/**
 * The driver-side half of decom, one per SparkContext. The Python control plane calls
 * [[exclude]], [[unexclude]] and [[decommissioned]] through py4j; the listener feeds executor
 * placement, fetch failures and stage outcomes. All state changes happen under this object's lock.
 */
final class DecomShim private (val sc: SparkContext, retryMode: String) {
  import DecomShim.log

  private val conf = sc.getConf
  private val userLimit = RetryLimits.userLimit(conf)
  @volatile private var exemptEnabled = conf.getBoolean(Keys.ExemptEnabled, defaultValue = true)
  private val policy = new RetryPolicy(userLimit)
  private val executors = mutable.LinkedHashMap.empty[String, ExecutorInfo]
  private val alive = mutable.Set.empty[String]
  private val nodes = mutable.LinkedHashMap.empty[String, NodeRecord]
  private val events = mutable.ArrayDeque.empty[JObject]
  private var fetchFailures = 0
  // Release excluded executors once idle, so YARN can drain the node without waiting for dynamic
  // allocation's idle timeout (or forever, with static executors or a long-lived notebook session).
  private val releaseIdle = conf.getBoolean(Keys.ReleaseIdle, defaultValue = true)
  // With the shuffle service on, an executor's outputs outlive it for as long as its node lives.
  private val keepCapacity =
    conf.getBoolean(Keys.KeepCapacity, defaultValue = true) && conf.getBoolean(Keys.ShuffleService, false)
  private val retryFetching = conf.getBoolean(Keys.RetryFetching, defaultValue = true)
  private val dropWithoutLocalDirs = conf.getBoolean(Keys.DropWithoutLocalDirs, defaultValue = true)
  private val dropOnShuffleServiceLoss = conf.getBoolean(Keys.DropOnShuffleServiceLoss, defaultValue = true)
  // As the app's block managers have it: spark.shuffle.service.port, which yarn-site overrides on YARN.
  private lazy val shuffleServicePort = SparkInternals.shuffleServicePort(sc)
  // Spark's own decommissioning with the shuffle service off and block migration on: Spark's YARN trigger
  // then tells a DECOMMISSIONING node's executors to migrate their blocks and exit, but skips executors
  // decom already marked; so decom tells them itself. Only then: a told executor exits on its own once
  // idle, and without migration (or with the shuffle service on) that would drop outputs a job needs.
  private val shuffleService = conf.getBoolean(Keys.ShuffleService, false)
  // With the shuffle service on, Spark's YARN trigger never acts (SPARK-39018) but executors can still
  // migrate: decom tells them, follows their outputs to the receivers, and lets them go once moved.
  private val migrate = shuffleService && Migration.possible(conf) && conf.getBoolean(Keys.MigrateBlocks, true)
  private val migrationWaitMs = conf.getTimeAsMs(Keys.MigrationWait, "60s")
  private val tellExecutors = migrate || (!shuffleService && Migration.possible(conf))
  /** Running task attempts: task id -> (stage, executor, launch time). */
  private val runningAttempts = mutable.Map.empty[Long, (Int, String, Long)]
  /** Stage -> the shuffles it reads (its parents' outputs), from the active jobs' stage infos. */
  private val stageReads = mutable.Map.empty[Int, Set[Int]]
  /** Stage -> the shuffle it writes, from the active jobs' stage infos. */
  private val stageWrites = mutable.Map.empty[Int, Int]
  /** Where each map output was written (its task's executor and host), kept only when decom tells
   * executors to move: an output moved off a node before decom excluded it (by Spark's own YARN trigger,
   * shuffle service off) is still the node's. Pruned to the tracker's outputs as it grows. */
  private val writers = mutable.HashMap.empty[(Int, Long), (String, String)]
  /** The data size of each map output a migration placed on a receiver (Spark reports only migrated
   * shuffle blocks to the master), counted for the node it left whenever decom sees the move. */
  private val migratedBlockBytes = mutable.HashMap.empty[(Int, Long), Long]
  private var writersAfterPrune = 0
  private val jobStages = mutable.Map.empty[Int, Seq[Int]]
  /** Tasks started minus ended per executor, as the listener saw them (results already handled). */
  private val runningTasks = mutable.Map.empty[String, Int]
  private val activeJobs = mutable.Set.empty[Int]
  private var exemptFetchFailures = 0
  private var tasksRetried = 0
  private val listener = new DecomListener(this)
  private val timer: ScheduledExecutorService = Executors.newSingleThreadScheduledExecutor { r =>
    val t = new Thread(r, "decom-exclusion-expiry")
    t.setDaemon(true)
    t
  }
  @volatile private var stopped = false

  private def now(): Long = System.currentTimeMillis()

  private[decom] def start(): this.type = {
    SparkInternals.addListener(sc, listener)
    synchronized {
      SparkInternals.liveExecutors(sc).foreach { e =>
        executorAdded(ExecutorInfo.fromAttributes(e.id, e.host, e.attributes))
      }
      // Jobs already running when decom is enabled mid-session; their JobEnd comes through the listener.
      activeJobs ++= sc.statusTracker.getActiveJobIds()
    }
    timer.scheduleWithFixedDelay(() => tick(), 500, 500, TimeUnit.MILLISECONDS)
    val scaleDownKept = Migration.keepSparksScaleDown(conf) && SparkInternals.killIdleExecutorsOnScaleDown(sc)
    event("shim-started", "driver", ("retryPolicy" -> retryMode) ~ ("userLimit" -> userLimit) ~
      ("migrate" -> migrate) ~ ("tellExecutors" -> tellExecutors) ~ ("sparkScaleDownKept" -> scaleDownKept))
    this
  }

  // ---- what the control plane calls ------------------------------------------------------------

  /**
   * A node (or executors) is decommissioning: no new tasks there until `timeoutMs` has passed or
   * it is recommissioned; running tasks finish. Executors that register there later are excluded
   * too. Returns JSON: {"executors": [ids newly excluded], "targets": [keys], "moving": [keys whose
   * executors were told to move their blocks off]}: the control plane gives those until just before the
   * deadline to move, before it drops what is left.
   */
  def exclude(hosts: JList[String], execs: JList[String], timeoutMs: Long, reason: String): String =
    guarded {
      val t = now()
      val resolved = targets(hosts, execs).map(target => target -> resolve(target))
      // Nodes excluded together leave together: none is a peer for another's blocks.
      val leavingNow = resolved.flatMap(_._2).toSet
      val newly = resolved.flatMap { case (target, execIds) =>
        val rec = record(target)
        if (!rec.excludedNow) {
          rec.excludedAt = Some(t)
          rec.unexcludeReason = None
          rec.letGoAt = None
          rec.executorsTold.clear()
          rec.executorsToTell.clear()
          if (tellExecutors) snapshotOutputs(rec)
        }
        rec.excludedUntil = Some(t + timeoutMs)
        val marked = markOn(rec, execIds, reason, leavingNow)
        event("excluded", target.key, ("executors" -> marked) ~ ("until" -> (t + timeoutMs)))
        marked
      }
      releaseIdleExcluded()
      val ts = targets(hosts, execs)
      val moving = ts.filter(t => nodes.get(t.key).exists(_.executorsTold.nonEmpty)).map(_.key)
      compact(render(Wire.actionReply(newly, ts.map(_.key), moving)))
    }

  /** The node is back (recommissioned, or the exclusion expired): tasks may run there again. */
  def unexclude(hosts: JList[String], execs: JList[String], reason: String): String =
    guarded {
      val freed = targets(hosts, execs).flatMap { target => unexcludeRecord(record(target), reason) }
      compact(render(Wire.actionReply(freed, keys(hosts, execs), Nil)))
    }

  /**
   * The node is gone (DECOMMISSIONED / LOST / SHUTDOWN). Every target passed in one call is
   * handled in one step: executors are marked, then (if `cleanup`) every shuffle output and cached
   * block location on them is dropped before anything else can be scheduled, and the executors
   * are released so YARN can finish draining the node and running tasks are re-offered now.
   */
  def decommissioned(hosts: JList[String], execs: JList[String], cleanup: Boolean, reason: String)
      : String = guarded {
    val t = now()
    val ts = targets(hosts, execs)
    val perTarget = ts.map { target =>
      val rec = record(target)
      val fresh = !rec.decommissioned
      if (fresh) rec.decommissionedAt = Some(t)
      val execIds = resolve(target)
      rec.executorsLost ++= execIds
      rec.executorsLost ++= executors.values.filter(_.runsOn(target)).map(_.id)
      markOn(rec, execIds, reason)
      (target, rec, execIds, fresh)
    }
    var unregistered = 0
    val released = mutable.ArrayBuffer.empty[String]
    val dropped = mutable.Set.empty[Int]
    val lostExecs = mutable.Set.empty[String]
    if (cleanup) {
      // Outputs first, for all targets, so the next map attempt recomputes all of them at once.
      perTarget.foreach { case (target, rec, execIds, _) =>
        val matched = unregisterOutputs(rec, rec.wholeHost, rec.executorsLost, t)
        rec.executorsLost.foreach(id => SparkInternals.removeBlockLocations(sc, id))
        dropped ++= matched.keys
        lostExecs ++= rec.executorsLost
        unregistered += matched.values.sum
        event("outputs-unregistered", target.key,
          ("outputs" -> matched.values.sum) ~ ("shuffles" -> matched.keys.toSeq.sorted))
      }
      perTarget.foreach { case (target, rec, execIds, _) =>
        val gone = SparkInternals.releaseExecutors(sc, execIds, target.workerHost, reason)
        rec.executorsReleased ++= gone
        released ++= gone
        alive --= gone
        if (gone.nonEmpty) event("executors-released", target.key, "executors" -> gone)
      }
    }
    perTarget.foreach { case (target, _, execIds, fresh) =>
      if (fresh) event("decommissioned", target.key, ("executors" -> execIds) ~ ("cleanup" -> cleanup))
    }
    if (cleanup && retryFetching && dropped.nonEmpty) retryTasksReading(dropped.toSet, lostExecs.toSet, t)
    compact(render(Wire.decommissionedReply(ts.map(_.key), unregistered, released.toSeq)))
  }

  /**
   * A task failed because its executor's local dirs are gone. A NodeManager restarted without recovery
   * (Apache's default) deletes the app's dirs as it starts, while the executors it had started live on;
   * YARN tells the app only once the NM re-registers, and the RM never shows the node LOST if it is back
   * within the liveness expiry. Meanwhile every task offered there fails at once, and one task failing
   * `spark.task.maxFailures` times aborts the job (seconds, not minutes). So the executors are dropped
   * now, as lost with their outputs (the files are gone), and running readers of those outputs are retried.
   * With the shuffle service on, all the app's executors on the host and all outputs there go: the dirs
   * are the NM's per-app dirs. With it off, only the failing executor: an executor stopping (preempted,
   * killed by YARN) deletes its own dirs then, and its neighbours are fine; they are dropped at their own
   * first such failure if theirs are gone too. The node itself is not excluded: executors YARN starts
   * there later get fresh dirs.
   */
  private[decom] def localDirsGone(execId: String, taskId: Long, detail: String): Unit = synchronized {
    if (!dropWithoutLocalDirs || !alive.contains(execId)) return
    val host = executors.get(execId) match {
      case Some(e) => e.host
      case None => return
    }
    // The shuffle service's per-app dirs on the host went with the executors' own.
    val lossHost = if (shuffleService) Some(host) else None
    val ids = if (shuffleService) aliveOn(host) else Seq(execId)
    dropOnHost(host, ids, lossHost, "local-dirs-gone", s"executor $execId's local dirs are gone ($detail)",
      ("task" -> taskId) ~ ("failure" -> detail))
  }

  private def aliveOn(host: String): Seq[String] =
    executors.values.filter(e => e.host == host && alive.contains(e.id)).map(_.id).toSeq

  /**
   * A node's shuffle service refused a reducer's fetch (nothing listens: the node's NodeManager, which runs
   * the service, is down) or no longer knows the app (the NodeManager restarted without recovery, Apache's
   * default, and deleted the app's dirs; SPARK-9439 keeps the registrations only with recovery on). No output
   * on the node can be served now, and a reader on that node fails at once (host-local reads,
   * spark.shuffle.readHostLocalDisk, ask the local service for the dirs, with no retry): Spark drops only the
   * one executor's outputs (spark.files.fetchFailure.unRegisterOutputOnHost is off by default), a map task
   * re-run there fails its readers again, and spark.stage.maxConsecutiveAttempts such attempts abort the job
   * (SPARK-27736 proposed asking the service instead; it did not land). So the app's executors on the node
   * and every output it serves are dropped now, as for lost local dirs; the fetch failures that name the
   * node's executors during this stage attempt are then decom's (exempt, see [[Blame]]). A fetch that times
   * out (a node cut off) is the RM's to report, not this. Only the service's port counts: a migrated output is
   * served by its receiving executor, which refuses once it exits normally. With NodeManager recovery on, a
   * restart also refuses for a few seconds: the node's executors are dropped though their files survive
   * (replacements cost seconds, a lost job costs more).
   */
  private def shuffleServiceLost(at: BlockManagerId, shuffleId: Int, stageAttempt: String): Unit = {
    val rec = record(NodeTarget(at.host, None))
    // Act on a current loss only: the executor named is still alive, or its outputs still registered. A late
    // failure naming an executor decom (or YARN, with its outputs) already dropped must not take executors
    // YARN started since on the restarted NodeManager, nor their outputs.
    val current = !rec.executorsLost.contains(at.executorId) && (alive.contains(at.executorId) ||
      SparkInternals.outputsMatching((eid, _) => eid == at.executorId).nonEmpty)
    if (current) {
      // Every executor the app ran there lost its outputs with the service, also those YARN dropped before.
      rec.executorsLost ++= executors.values.filter(_.host == at.host).map(_.id)
      dropOnHost(at.host, aliveOn(at.host), Some(at.host), "shuffle-service-lost",
        s"the shuffle service on ${at.host}:${at.port} lost the app's outputs", "stageAttempt" -> stageAttempt)
      // Spark unregisters the failed output itself, maybe before this ran: this attempt's fetch failures
      // naming the node are decom's to exempt even when nothing of that shuffle was left to drop here.
      rec.cleanups.getOrElseUpdate(shuffleId, mutable.ArrayBuffer.empty) += now()
    }
  }

  /**
   * Drops executors `ids` on `host` and their outputs (all outputs served from `lossHost` when given) as lost:
   * marked first (no new task there), outputs unregistered and recorded on the host's node record (the node
   * is not excluded: executors YARN starts there later are used), released as decommissioned (their running
   * tasks' failures count toward no limit), running readers of the dropped outputs retried.
   */
  private def dropOnHost(host: String, ids: Seq[String], lossHost: Option[String], action: String, why: String,
      detail: JObject): Unit = {
    // No new task there from now: the listener hears of a failure after Spark may have offered the
    // executor the retry; marked, it gets no more offers while the rest of this runs.
    SparkInternals.markDecommissioning(sc, ids, lossHost, s"decom: $why")
    val t = now()
    val rec = record(NodeTarget(host, None))
    val matched = unregisterOutputs(rec, lossHost, ids.toSet, t)
    // The kill is not awaited (it would hold this lock while the AM talks to the RM): a restarted NM no longer
    // knows the container anyway, and the executor exits once the driver refuses it.
    val gone = SparkInternals.releaseExecutors(sc, ids, lossHost, s"decom: $why", decommissionFirst = true,
      awaitKill = false)
    // All of them, also those Spark had dropped already: more failures queued from them must not run this again.
    alive --= ids
    rec.executorsLost ++= ids
    rec.executorsReleased ++= gone
    event(action, rec.target.key, ("executors" -> gone) ~ ("outputs" -> matched.values.sum) ~
      ("shuffles" -> matched.keys.toSeq.sorted) ~ detail)
    if (retryFetching && matched.nonEmpty) retryTasksReading(matched.keySet, ids.toSet, t,
      why = s"map outputs on $host are gone: $why")
  }

  def setExemptionEnabled(enabled: Boolean): Unit = exemptEnabled = enabled

  @volatile private var nodeTimeouts: YarnNodeTimeouts = _

  /**
   * JSON: each DECOMMISSIONING node's graceful-decommission timeout over the RM's client RPC,
   * {"nodes": [{"nodeId", "host", "timeoutSeconds"}]}. Blocks for the RPC (the caller's thread); throws
   * when the RM can't be asked (no Hadoop client, no credentials, RM down).
   */
  def decommissioningTimeouts(): String = {
    if (stopped) throw new IllegalStateException("decom shim is stopped")
    val reader = synchronized {
      if (nodeTimeouts == null) nodeTimeouts = new YarnNodeTimeouts(sc.hadoopConfiguration)
      nodeTimeouts
    }
    compact(render(YarnNodeTimeouts.json(reader.read())))
  }


  /**
   * JSON: the nodes the app holds nothing on any more (no executor, no output, no reader of a moved
   * output), `Wire.nodesLetGo`. The control plane turns them into its "node-let-go" event and hook.
   */
  def nodesLetGo(): String = synchronized { compact(render(Wire.nodesLetGo(nodes.values.toSeq))) }

  /** The figures `decom status` shows, by [[DecomShim.CounterNames]]. */
  def counters(): Map[String, Long] = synchronized {
    val ns = nodes.values.toSeq
    Map(
      "nodesDecommissioning" -> ns.count(n => n.excludedNow && !n.decommissioned).toLong,
      "nodesDecommissioned" -> ns.count(_.decommissioned).toLong,
      "executorsExcluded" -> ns.flatMap(_.executorsExcluded).distinct.size.toLong,
      "executorsReleased" -> ns.flatMap(_.executorsReleased).distinct.size.toLong,
      "outputsUnregistered" -> ns.map(_.outputsUnregistered.toLong).sum,
      "fetchFailures" -> fetchFailures.toLong,
      "fetchFailuresExempt" -> exemptFetchFailures.toLong,
      "stageAttemptsExempt" -> policy.stagesWithFailures.toSeq.map(s => policy.exemptAttempts(s).size.toLong).sum,
      "stagesAborted" -> policy.abortedStages.size.toLong,
      "tasksRetried" -> tasksRetried.toLong,
      "outputsMigrated" -> ns.map(_.migrated.size.toLong).sum,
      "outputsOrphaned" -> ns.map(_.orphans.size.toLong).sum,
      "bytesMigrated" -> ns.map(_.bytesMigrated).sum,
      "nodesLetGo" -> ns.count(_.letGoAt.isDefined).toLong)
  }

  /** JSON: what decom saw and did, per node and per stage. */
  def report(): String = synchronized {
    compact(render(Wire.report(DecomShim.version(), retryMode, policy, exemptEnabled,
      SparkInternals.dagSchedulerMaxConsecutiveAttempts(sc), fetchFailures, exemptFetchFailures,
      nodes.values.toSeq, executors.values.toSeq.map(e => (e, alive.contains(e.id))), events.toSeq)))
  }

  def stop(): Unit = {
    stopped = true
    timer.shutdownNow()
    Option(nodeTimeouts).foreach(_.close())
    try SparkInternals.removeListener(sc, listener) catch { case NonFatal(_) => () }
  }

  // ---- what the listener calls -----------------------------------------------------------------

  private[decom] def executorAdded(info: ExecutorInfo): Unit = synchronized {
    executors(info.id) = info
    alive += info.id
    // An executor that registers on a node already reported gets the node's treatment at once.
    nodes.values.filter(n => n.doomed && info.runsOn(n.target)).foreach { n =>
      markOn(n, Seq(info.id), s"decom: executor ${info.id} registered on ${n.target.key}, which is " +
        (if (n.decommissioned) "decommissioned" else "decommissioning"))
    }
  }

  private[decom] def executorRemoved(id: String): Unit = synchronized {
    alive -= id
    runningTasks -= id
    if (tellExecutors && !shuffleService) retryReadersOfMovedOutputs(id)
  }

  private[decom] def taskStarted(stage: Int, taskId: Long, execId: String, launchTime: Long): Unit =
    synchronized {
      runningTasks(execId) = runningTasks.getOrElse(execId, 0) + 1
      runningAttempts(taskId) = (stage, execId, launchTime)
    }

  /** A task ended; `written`: its host, if it succeeded (a map task's output is then registered). */
  private[decom] def taskEnded(taskId: Long, execId: String, written: Option[String]): Unit = synchronized {
    val stage = runningAttempts.remove(taskId).map(_._1)
    if (tellExecutors) for (host <- written; s <- stage; shuffle <- stageWrites.get(s)) {
      // A map task's output is (shuffle, task attempt id): Spark's map id is the attempt id.
      writers((shuffle, taskId)) = (execId, host)
      if (writers.size > 2 * writersAfterPrune + 10000) {
        val registered = SparkInternals.outputLocations().keySet
        writers.filterInPlace((k, _) => registered.contains(k))
        migratedBlockBytes.filterInPlace((k, _) => registered.contains(k))
        writersAfterPrune = writers.size
      }
    }
    val left = math.max(0, runningTasks.getOrElse(execId, 0) - 1)
    runningTasks(execId) = left
    if (left == 0) releaseIdleExcluded()
  }

  private[decom] def jobStarted(job: Int, stages: Seq[StageInfo]): Unit = synchronized {
    activeJobs += job
    val writes = stages.flatMap(s => SparkInternals.shuffleWrittenBy(s).map(s.stageId -> _)).toMap
    stages.foreach(s => stageReads(s.stageId) = s.parentIds.flatMap(writes.get).toSet)
    stageWrites ++= writes
    jobStages(job) = stages.map(_.stageId)
  }

  private[decom] def jobEnded(job: Int): Unit = synchronized {
    activeJobs -= job
    // A stage can belong to several jobs (a reused shuffle's map stage): forget it with its last job.
    val stillUsed = jobStages.view.filterKeys(_ != job).values.flatten.toSet
    jobStages.remove(job).foreach(_.filterNot(stillUsed.contains).foreach { s =>
      stageReads.remove(s)
      stageWrites.remove(s)
    })
    if (activeJobs.isEmpty) releaseIdleExcluded()
  }

  private[decom] def stageSubmitted(stage: Int, attempt: Int, at: Long): Unit = synchronized {
    policy.submitted(stage, attempt, at)
  }

  private[decom] def fetchFailed(stage: Int, attempt: Int, f: FetchFailed): Unit = synchronized {
    fetchFailures += 1
    val addr = Option(f.bmAddress)
    // First, so the blame below sees the outputs dropped during this attempt.
    addr.foreach { a =>
      if (shuffleService && dropOnShuffleServiceLoss && a.port == shuffleServicePort &&
          ShuffleServiceLost.in(Option(f.message).getOrElse(""), a.host, a.port)) {
        shuffleServiceLost(a, f.shuffleId, s"$stage.$attempt")
      }
    }
    val started = policy.startedAt(stage, attempt).getOrElse(now())
    val causes =
      if (!exemptEnabled) Nil
      else Blame.of(nodes.values, addr.map(_.executorId), addr.map(_.host), f.shuffleId, started)
    if (causes.nonEmpty) {
      exemptFetchFailures += 1
      causes.foreach(k => nodes.get(k).foreach(_.exemptedAttempts += s"$stage.$attempt"))
    }
    // A late fetch failure that blames a reported node turns an already counted attempt exempt.
    policy.fetchFailed(stage, attempt, causes, now()).foreach { _ =>
      event("stage-attempt-exempted", s"stage $stage.$attempt", "causes" -> causes)
    }
  }

  private[decom] def stageCompleted(stage: Int, attempt: Int, failure: Option[String]): Unit = {
    val toAbort = synchronized {
      failure match {
        case None =>
          policy.succeeded(stage)
          None
        case Some(reason) =>
          policy.failed(stage, attempt, reason, now()) match {
            case Exempted(causes) =>
              event("stage-attempt-exempted", s"stage $stage.$attempt", "causes" -> causes)
              None
            case Counted(n, abort) =>
              event("stage-attempt-counted", s"stage $stage.$attempt", ("consecutive" -> n) ~
                ("limit" -> userLimit))
              if (abort) Some((n, reason)) else None
            case NotCounted => None
          }
      }
    }
    toAbort.foreach { case (n, reason) =>
      val exempt = policy.exemptAttempts(stage).size
      val msg = s"Stage $stage has failed the maximum allowable number of times: $n " +
        s"(${Keys.SparkMaxAttempts}=$userLimit; decom did not count $exempt attempt(s) failed by " +
        s"decommissioned nodes). Most recent failure reason: $reason"
      log.warn(s"decom: aborting stage $stage: $msg")
      event("stage-aborted", s"stage $stage", "reason" -> msg)
      SparkInternals.cancelStage(sc, stage, msg)
    }
  }

  /**
   * A reducer already fetching from a node that is gone waits for the network timeout
   * (spark.shuffle.io.connectionTimeout, 120 s), even after the node's outputs are unregistered. So the
   * running attempts of stages that read the dropped shuffles are retried now, against the map outputs
   * as they are after the clean-up: a retry that needs a dropped output fails at once with a fetch
   * failure decom is blamed for (exempt), and the map stage recomputes all dropped outputs in one step.
   */
  private def retryTasksReading(shuffles: Set[Int], lost: Set[String], at: Long,
      launchedBy: Long = Long.MaxValue,
      why: String = "a node this task may be fetching from is gone"): Unit = {
    val victims = runningAttempts.collect {
      case (taskId, (stage, exec, launched)) if !lost.contains(exec) && launched <= launchedBy &&
        stageReads.getOrElse(stage, Set.empty).exists(shuffles.contains) => taskId
    }.toSeq.sorted
    if (victims.isEmpty) return
    val killed = SparkInternals.retryAgainstCurrentOutputs(sc, victims,
      s"decom: $why; retried against the current map outputs")
    tasksRetried += killed.size
    event("fetching-tasks-retried", "driver", ("tasks" -> killed.map(_.toString)) ~
      ("shuffles" -> shuffles.toSeq.sorted) ~ ("at" -> at))
  }

  /**
   * With the shuffle service off, a told executor serves its outputs itself until it exits, which Spark's
   * executor does on its own once its blocks have moved. A reducer launched before the move holds the old
   * location and would fail to fetch (after spark.shuffle.io.maxRetries waits): such readers are retried
   * now, against the outputs' new locations.
   */
  private def retryReadersOfMovedOutputs(id: String): Unit = {
    // Executors go all the time (dynamic allocation): the tracker is read only for one decom told.
    val told = nodes.values.filter(_.executorsTold.contains(id)).toSeq
    if (told.isEmpty) return
    val t = now()
    followMigration(t, SparkInternals.outputLocations()) // the exit may come before the tick saw the move
    told.foreach { n =>
      val shuffles = n.outputsSeen.collect { case (k, eid) if eid == id && n.migrated.contains(k) => k._1 }.toSet
      n.lastMigrationAt.foreach { movedAt =>
        if (shuffles.nonEmpty) retryTasksReading(shuffles, Set(id), t, launchedBy = movedAt,
          why = s"executor $id, which served outputs this task may read before they moved, is gone")
      }
    }
  }

  // ---- internals ---------------------------------------------------------------------------------

  private def guarded(body: => String): String = synchronized {
    if (stopped) throw new IllegalStateException("decom shim is stopped")
    body
  }

  private def targets(hosts: JList[String], execs: JList[String]): Seq[Target] =
    Option(hosts).map(_.asScala.toSeq).getOrElse(Nil).map(Target.node) ++
      Option(execs).map(_.asScala.toSeq).getOrElse(Nil).map(ExecutorTarget(_))

  private def keys(hosts: JList[String], execs: JList[String]): Seq[String] =
    targets(hosts, execs).map(_.key)

  private def record(t: Target): NodeRecord = nodes.getOrElseUpdate(t.key, new NodeRecord(t))

  /** Alive executors of a target, from our registry and, for hosts, the task scheduler. */
  private def resolve(t: Target): Seq[String] = {
    val active = SparkInternals.activeExecutorIds(sc)
    val known = executors.values.filter(e => e.runsOn(t)).map(_.id)
    // The listener may not have seen an executor yet: an explicit id, or the task scheduler's view of
    // a host, needs no registry.
    val extra = t match {
      case ExecutorTarget(id) => Set(id)
      case NodeTarget(h, None) => SparkInternals.executorsAliveOnHost(sc, h)
      case _ => Set.empty[String]
    }
    (known ++ extra).toSeq.distinct.filter(active.contains)
  }

  private def markOn(rec: NodeRecord, execIds: Seq[String], reason: String,
      leavingWith: Set[String] = Set.empty): Seq[String] = {
    val fresh = execIds.filterNot(SparkInternals.isMarkedDecommissioning(sc, _))
    // Only a leaving node's executors are told to move their blocks: a told executor exits once done, so
    // an exclusion of single executors (by hand) stays one its owner can undo.
    val leaving = tellExecutors && rec.target.isInstanceOf[NodeTarget]
    // Told with no other executor to take its blocks, an executor finds no peer, reports its migration
    // done and exits at once; Spark then re-runs its finished map tasks in a running stage, also those the
    // shuffle service still serves. With the service on, they are told once a peer is up (tick), and let go
    // when idle before that (their outputs stay served). With it off, an untold idle executor would have
    // to stay to serve its outputs, holding capacity the job needs: they are told now.
    val tell = leaving && (!shuffleService || hasPeer(execIds.toSet ++ leavingWith))
    // A told executor is marked as Spark's own trigger marks it, with no worker host: when it exits after
    // migrating, only its own (already moved) outputs are dropped, not the whole host's.
    val marked = SparkInternals.markDecommissioning(sc, fresh,
      if (leaving) None else rec.target.workerHost, reason, tellExecutors = tell)
    rec.executorsExcluded ++= execIds
    // Those not marked now were already told, by Spark's own YARN trigger (shuffle service off).
    if (tell) rec.executorsTold ++= execIds
    else if (leaving) rec.executorsToTell ++= execIds.filterNot(rec.executorsTold.contains)
    marked
  }

  /** Is an executor up that is not leaving, so a leaving one's blocks have somewhere to go? */
  private def hasPeer(leaving: Set[String]): Boolean =
    alive.exists(id => !leaving.contains(id) && !SparkInternals.isMarkedDecommissioning(sc, id))

  /** Tell the executors held back for want of a peer (markOn) to move their blocks, once one is up. */
  private def tellOncePeerUp(): Unit = {
    val waiting = nodes.values.filter(_.executorsToTell.nonEmpty).toSeq
    waiting.foreach(n => n.executorsToTell.filterInPlace(id => alive.contains(id) && !n.executorsReleased(id)))
    val held = waiting.filter(n => n.executorsToTell.nonEmpty && n.excludedNow && !n.decommissioned)
    if (held.isEmpty || !hasPeer(held.flatMap(_.executorsToTell).toSet)) return
    held.foreach { n =>
      val told = SparkInternals.tellDecommissioning(sc, n.executorsToTell.toSeq)
      n.executorsToTell.clear()
      n.executorsTold ++= told
      if (told.nonEmpty) event("executors-told", n.target.key, ("executors" -> told) ~ ("onceAPeerWasUp" -> true))
    }
  }

  private def unexcludeRecord(rec: NodeRecord, reason: String): Seq[String] = {
    if (!rec.doomed) return Nil
    rec.unexcludedAt = Some(now())
    rec.unexcludeReason = Some(reason)
    rec.executorsToTell.clear()
    rec.excludedUntil = None
    val ids = rec.executorsExcluded.toSeq.filter(alive.contains)
    // An executor also covered by another node that is still doomed stays excluded.
    val stillDoomed = nodes.values.filter(n => (n ne rec) && n.doomed).flatMap(_.executorsExcluded).toSet
    val freed = SparkInternals.unmarkDecommissioning(sc, ids.filterNot(stillDoomed.contains))
    event("unexcluded", rec.target.key, ("executors" -> freed) ~ ("reason" -> reason))
    freed
  }

  /**
   * Let go of excluded executors that run nothing, so the node drains now. While a job runs, only
   * when their node holds no shuffle outputs: the node's shuffle service keeps serving the running
   * job until YARN takes the node, and releasing would let YARN take it at once.
   */
  private def releaseIdleExcluded(): Unit = if (releaseIdle) {
    // Nodes only: draining is what YARN waits for; a single excluded executor stays for its owner to undo.
    nodes.values.filter(n => n.target.isInstanceOf[NodeTarget] && n.excludedNow && !n.decommissioned).foreach { n =>
      val idle = n.executorsExcluded.toSeq.filter { id =>
        alive.contains(id) && !n.executorsReleased.contains(id) && runningTasks.getOrElse(id, 0) == 0 &&
          !SparkInternals.isExecutorBusy(sc, id) &&
          (!tellExecutors || n.executorsToTell.contains(id) || movedOrWaited(n, id))
      }
      if (idle.nonEmpty && (keepCapacity || activeJobs.isEmpty || !holdsOutputs(n))) {
        // With the shuffle service on, killed first, the executors are lost as "killed": Spark keeps their
        // outputs (the node's shuffle service serves them until decom drops them when the node goes) and
        // re-runs none of their tasks. With it off, their outputs die with them (hence keepCapacity only
        // with the service on), and they are dropped as decommissioned before the kill: Spark then re-runs
        // only the tasks whose outputs did not move off them, not every task they ran in a running stage.
        val lossHost = if (keepCapacity) None else n.target.workerHost
        val gone = SparkInternals.releaseExecutors(sc, idle, lossHost,
          "decom: idle on a decommissioning node", decommissionFirst = !shuffleService)
        n.executorsReleased ++= gone
        alive --= gone
        if (gone.nonEmpty) {
          event("executors-released", n.target.key, ("executors" -> gone) ~ ("idle" -> true) ~
            ("activeJobs" -> activeJobs.size) ~ ("outputsKept" -> keepCapacity))
        }
      }
    }
  }

  /**
   * A told executor is let go once the tracker places none of its outputs on it and the block manager
   * master knows no cached block there (all moved), or once `spark.decom.migrationWait` has passed: what
   * is left then stays served by the node's shuffle service until the node goes.
   */
  private def movedOrWaited(n: NodeRecord, id: String): Boolean =
    n.excludedAt.exists(now() - _ >= migrationWaitMs) ||
      (SparkInternals.outputLocations((eid, _) => eid == id).isEmpty && SparkInternals.cachedBlocks(sc, id) == 0)

  /**
   * Outputs on a node as it is excluded (those whose writer is already gone are orphans), and outputs
   * written there that have already moved (they count as migrated on the next tick).
   */
  private def snapshotOutputs(n: NodeRecord): Unit = n.wholeHost.foreach { h =>
    val locs = SparkInternals.outputLocations()
    locs.foreach { case (k, (eid, host)) =>
      if (host == h) {
        n.outputsSeen(k) = eid
        if (!alive.contains(eid)) n.orphans += k
      }
    }
    writers.foreach { case (k, (eid, host)) =>
      if (host == h && locs.contains(k) && !n.outputsSeen.contains(k)) n.outputsSeen(k) = eid
    }
  }

  /**
   * Follow told executors' outputs to their receivers. Spark's `updateMapOutput` moves an output's
   * location without a new epoch, so executors would keep serving reducers the old location from their
   * cache: each move bumps the epoch, and the tasks launched from then on read where the outputs are now.
   * A node let go holds nothing more to follow.
   */
  private def followMigration(t: Long, locs: => Map[(Int, Long), (String, String)]): Unit = {
    val nodesNow = nodes.values.filter(n => n.excludedNow && !n.decommissioned && n.letGoAt.isEmpty)
      .flatMap(n => n.wholeHost.map(n -> _))
    if (nodesNow.isEmpty) return
    nodesNow.foreach { case (n, h) =>
      locs.foreach { case (k, (eid, host)) => if (host == h && !n.outputsSeen.contains(k)) n.outputsSeen(k) = eid }
      val moved = n.outputsSeen.keys.filter(k => !n.migrated.contains(k) && locs.get(k).exists(_._2 != h)).toSeq
      if (moved.nonEmpty) {
        n.migrated ++= moved
        n.bytesMigrated += moved.iterator.map(k => migratedBlockBytes.getOrElse(k, 0L)).sum
        n.lastMigrationAt = Some(t)
        SparkInternals.bumpEpoch(sc)
        val left = locs.count(_._2._2 == h)
        event("outputs-migrated", n.target.key, ("outputs" -> moved.size) ~ ("migrated" -> n.migrated.size) ~
          ("left" -> left) ~ ("orphans" -> n.orphans.size) ~ ("shuffles" -> moved.map(_._1).distinct.sorted))
      }
    }
    releaseIdleExcluded()
  }

  /**
   * Say when the app holds nothing on a node that a job needs: no live executor there (so no cached
   * block either), no map output placed there, and no running task that may still read a moved output
   * from there (launched before the last move, in a stage reading a shuffle with moved outputs). The
   * cluster agent can then finish the node's decommission without waiting for the app to end.
   */
  private def letGoOfNodes(t: Long, locs: => Map[(Int, Long), (String, String)]): Unit = {
    val candidates = nodes.values
      .filter(n => n.letGoAt.isEmpty && n.excludedAt.isDefined && (n.excludedNow || n.decommissioned))
      .flatMap(n => n.wholeHost.map(n -> _))
    candidates.foreach { case (n, h) =>
      lazy val noExecutor = !executors.values.exists(e => e.runsOn(n.target) && alive.contains(e.id)) &&
        SparkInternals.executorsAliveOnHost(sc, h).isEmpty
      lazy val noOutput = !locs.valuesIterator.exists(_._2 == h)
      lazy val noReader = {
        val shuffles = n.migratedShuffles
        !runningAttempts.values.exists { case (stage, _, launched) =>
          n.lastMigrationAt.exists(launched <= _) && stageReads.getOrElse(stage, Set.empty).exists(shuffles.contains)
        }
      }
      if (noExecutor && noOutput && noReader) {
        n.letGoAt = Some(t)
        event("node-let-go", n.target.key, ("outputsMigrated" -> n.migrated.size) ~
          ("outputsOrphaned" -> n.orphans.size) ~ ("outputsUnregistered" -> n.outputsUnregistered) ~
          ("bytesMigrated" -> n.bytesMigrated) ~ ("executorsReleased" -> n.executorsReleased.toList))
      }
    }
  }

  /** A block a told executor moved (also before decom excluded its node, by Spark's own trigger). */
  private[decom] def blockUpdated(shuffle: Int, mapId: Long, host: String, bytes: Long): Unit = synchronized {
    if (!tellExecutors) return
    val k = (shuffle, mapId)
    val before = migratedBlockBytes.put(k, bytes).getOrElse(0L)
    // Already counted as moved: the new size replaces the old one.
    nodes.values.foreach(n => if (n.migrated.contains(k)) n.bytesMigrated += bytes - before)
  }

  private def holdsOutputs(n: NodeRecord): Boolean =
    SparkInternals.outputsMatching(outputsOf(n.wholeHost, n.executorsExcluded)).nonEmpty

  /** Which map outputs are these: served from `host` (a whole node's), or written by `execs`. */
  private def outputsOf(host: Option[String], execs: collection.Set[String]): (String, String) => Boolean =
    (eid, h) => host.contains(h) || execs.contains(eid)

  /**
   * Drops the outputs `outputsOf(host, execs)` names from Spark's map-output tracker and records them on the
   * node (its cleanups and unregistered count). Returns shuffle id -> outputs dropped.
   */
  private def unregisterOutputs(rec: NodeRecord, host: Option[String], execs: collection.Set[String],
      t: Long): Map[Int, Int] = {
    val matched = SparkInternals.outputsMatching(outputsOf(host, execs))
    host.foreach(SparkInternals.removeOutputsOnHost)
    execs.foreach(SparkInternals.removeOutputsOnExecutor)
    matched.foreach { case (shuffle, n) =>
      rec.cleanups.getOrElseUpdate(shuffle, mutable.ArrayBuffer.empty) += t
      rec.outputsUnregistered += n
    }
    matched
  }

  /** Every 500 ms: expire exclusions, follow migrations, let go of nodes. */
  private def tick(): Unit = try {
    synchronized {
      val t = now()
      nodes.values.filter(n => n.excludedNow && !n.decommissioned && n.excludedUntil.exists(_ <= t))
        .foreach(unexcludeRecord(_, "exclusion timeout expired"))
      // One read of the map output tracker serves both, and only if either needs it.
      lazy val locs = SparkInternals.outputLocations()
      if (migrate) tellOncePeerUp()
      if (tellExecutors) followMigration(t, locs)
      letGoOfNodes(t, locs)
    }
  } catch { case NonFatal(e) => log.warn("decom: periodic check failed", e) }

  private def event(action: String, target: String, detail: JObject): Unit = {
    val e = ("time" -> now()) ~ ("action" -> action) ~ ("target" -> target) ~ ("detail" -> detail)
    events.append(e)
    while (events.size > DecomShim.MaxEvents) events.removeHead()
    log.info(s"decom: $action $target ${compact(render(detail))}")
  }

}

object DecomShim {
  private[decom] val log = LoggerFactory.getLogger("io.decom.DecomShim")
  val MaxEvents = 2000

  private lazy val versionString: String = {
    val props = new Properties()
    val in = getClass.getResourceAsStream("/decom-shim.properties")
    if (in != null) try props.load(in) finally in.close()
    props.getProperty("version", "unknown")
  }

  val CounterNames: Seq[String] = Seq("nodesDecommissioning", "nodesDecommissioned", "executorsExcluded",
    "executorsReleased", "outputsUnregistered", "fetchFailures", "fetchFailuresExempt", "stageAttemptsExempt",
    "stagesAborted", "tasksRetried", "outputsMigrated", "outputsOrphaned", "bytesMigrated", "nodesLetGo")

  /** The counters of this context's shim (empty before it is installed). */
  def counters(sc: SparkContext): Map[String, Long] = {
    val shim = current
    if (shim != null && (shim.sc eq sc)) shim.counters() else Map.empty
  }

  /** The jar's version; the Python side checks it against its own once. */
  def version(): String = versionString

  @volatile private var current: DecomShim = _

  /**
   * The shim of this context, installed on first use. With the plugin, Spark's retry limit was
   * raised through the conf before the DAGScheduler existed; without it, the running DAGScheduler's
   * limit is raised here ("reflection"), so decom also works on a session started without it.
   */
  def get(sc: SparkContext): DecomShim = synchronized {
    if (current != null && (current.sc eq sc) && !current.stopped) return current
    val conf = sc.getConf
    val exempt = conf.getBoolean(Keys.ExemptEnabled, defaultValue = true)
    val mode =
      if (!exempt) "spark"
      else if (conf.contains(Keys.UserMaxAttempts) &&
        SparkInternals.dagSchedulerMaxConsecutiveAttempts(sc).contains(RetryLimits.raisedLimit(conf))) {
        "plugin"
      } else {
        val raised = RetryLimits.raisedLimit(conf)
        if (SparkInternals.setDagSchedulerMaxConsecutiveAttempts(sc, raised)) "reflection" else "spark"
      }
    if (current != null) current.stop()
    current = new DecomShim(sc, mode).start()
    current
  }

  private[decom] def stopFor(sc: SparkContext): Unit = synchronized {
    if (current != null && (current.sc eq sc)) {
      current.stop()
      current = null
    }
  }
}

/** Feeds the shim from Spark's listener bus (decom's own queue, so a busy app queue can't delay it). */
private[decom] final class DecomListener(shim: DecomShim) extends SparkListener {
  private def safely(what: String)(f: => Unit): Unit =
    try f catch { case NonFatal(e) => DecomShim.log.warn(s"decom: $what failed", e) }

  override def onExecutorAdded(e: SparkListenerExecutorAdded): Unit = safely("executor added") {
    shim.executorAdded(ExecutorInfo.fromAttributes(e.executorId, e.executorInfo.executorHost,
      e.executorInfo.attributes))
  }

  override def onExecutorRemoved(e: SparkListenerExecutorRemoved): Unit =
    safely("executor removed")(shim.executorRemoved(e.executorId))

  override def onStageSubmitted(e: SparkListenerStageSubmitted): Unit = safely("stage submitted") {
    val i = e.stageInfo
    shim.stageSubmitted(i.stageId, i.attemptNumber(), i.submissionTime.getOrElse(System.currentTimeMillis()))
  }

  override def onTaskStart(e: SparkListenerTaskStart): Unit =
    safely("task start")(shim.taskStarted(e.stageId, e.taskInfo.taskId, e.taskInfo.executorId,
      e.taskInfo.launchTime))

  override def onTaskEnd(e: SparkListenerTaskEnd): Unit = {
    e.reason match {
      case f: FetchFailed => safely("fetch failure")(shim.fetchFailed(e.stageId, e.stageAttemptId, f))
      case f: ExceptionFailure => LocalDirsGone.in(f.className, f.description, f.fullStackTrace).foreach { line =>
        safely("local dirs gone")(shim.localDirsGone(e.taskInfo.executorId, e.taskInfo.taskId, line))
      }
      case _ => ()
    }
    val written = if (e.reason == org.apache.spark.Success) Some(e.taskInfo.host) else None
    safely("task end")(shim.taskEnded(e.taskInfo.taskId, e.taskInfo.executorId, written))
  }

  override def onBlockUpdated(e: SparkListenerBlockUpdated): Unit = safely("block updated") {
    val info = e.blockUpdatedInfo
    info.blockId match {
      case org.apache.spark.storage.ShuffleDataBlockId(shuffle, mapId, _) if info.diskSize > 0 =>
        shim.blockUpdated(shuffle, mapId, info.blockManagerId.host, info.diskSize)
      case _ => ()
    }
  }

  override def onJobStart(e: SparkListenerJobStart): Unit =
    safely("job start")(shim.jobStarted(e.jobId, e.stageInfos))

  override def onJobEnd(e: SparkListenerJobEnd): Unit = safely("job end")(shim.jobEnded(e.jobId))

  override def onStageCompleted(e: SparkListenerStageCompleted): Unit = safely("stage completed") {
    val i = e.stageInfo
    shim.stageCompleted(i.stageId, i.attemptNumber(), i.failureReason)
  }
}
