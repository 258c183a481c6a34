package org.apache.spark.decom

import scala.collection.mutable

import org.apache.spark.{MapOutputTrackerMaster, SparkConf, SparkContext, SparkEnv}
import org.apache.spark.scheduler.{ExecutorDecommission, ExecutorDecommissionInfo, ExecutorLossReason, TaskSchedulerImpl}
import org.apache.spark.scheduler.cluster.CoarseGrainedSchedulerBackend

/**
 * The only place decom calls Spark 4.3's `private[spark]` APIs. Everything else lives in `io.decom`
 * and talks to Spark through this object, so a Spark upgrade has one small file to re-check.
 */
object SparkInternals {

  /** An executor as the driver's status store knows it (attributes hold YARN's NM_HOST/NM_PORT). */
  final case class ExecutorRecord(id: String, host: String, attributes: Map[String, String])

  /** The context's own mutable conf: only safe to change from `DriverPlugin.init`. */
  def mutableConf(sc: SparkContext): SparkConf = sc.conf

  private def backend(sc: SparkContext): Option[CoarseGrainedSchedulerBackend] =
    Option(sc.schedulerBackend).collect { case b: CoarseGrainedSchedulerBackend => b }

  private def taskScheduler(sc: SparkContext): Option[TaskSchedulerImpl] =
    Option(sc.taskScheduler).collect { case t: TaskSchedulerImpl => t }

  def liveExecutors(sc: SparkContext): Seq[ExecutorRecord] =
    sc.statusStore.executorList(true).filter(_.id != "driver").map { s =>
      val host = s.hostPort.lastIndexOf(':') match {
        case -1 => s.hostPort
        case i => s.hostPort.substring(0, i)
      }
      ExecutorRecord(s.id, host, s.attributes)
    }

  def activeExecutorIds(sc: SparkContext): Set[String] =
    backend(sc).map(_.getExecutorIds().toSet).getOrElse(Set.empty)

  def executorsAliveOnHost(sc: SparkContext, host: String): Set[String] =
    taskScheduler(sc).flatMap(_.getExecutorsAliveOnHost(host)).getOrElse(Set.empty)

  /** The task scheduler's own view: does the executor run a task right now? */
  def isExecutorBusy(sc: SparkContext, execId: String): Boolean =
    taskScheduler(sc).exists(_.isExecutorBusy(execId))

  def isMarkedDecommissioning(sc: SparkContext, execId: String): Boolean =
    taskScheduler(sc).exists(_.getExecutorDecommissionState(execId).isDefined)

  /**
   * Spark's own decommission marking, driver side only (`triggeredByExecutor = true` sends nothing
   * to the executor): the executor gets no new task offers, its running tasks finish, and if
   * `workerHost` is set, losing it later unregisters every shuffle output on that host.
   */
  def markDecommissioning(
      sc: SparkContext, execIds: Seq[String], workerHost: Option[String], message: String,
      tellExecutors: Boolean = false)
      : Seq[String] = backend(sc) match {
    case Some(b) if execIds.nonEmpty =>
      val infos = execIds.map(id => (id, ExecutorDecommissionInfo(message, workerHost))).toArray
      // tellExecutors: also send each executor Spark's decommission message, so it migrates its blocks
      // (spark.decommission.enabled) the way Spark's own YARN trigger would have; Spark skips executors
      // already pending decommission, so marking them silently first would stop that migration.
      b.decommissionExecutors(infos, adjustTargetNumExecutors = false, triggeredByExecutor = !tellExecutors)
    case _ => Seq.empty
  }

  /**
   * Undo [[markDecommissioning]]; Spark has no API for it. Both pending-decommission maps are
   * cleared under their owners' locks, taken in Spark's own order (task scheduler, then backend).
   */
  def unmarkDecommissioning(sc: SparkContext, execIds: Seq[String]): Seq[String] =
    (backend(sc), taskScheduler(sc)) match {
      case (Some(b), Some(ts)) if execIds.nonEmpty =>
        val backendPending = accessor[mutable.HashMap[String, _]](b, "executorsPendingDecommission")
        val undone = ts.synchronized {
          b.synchronized {
            execIds.filter { id =>
              val inBackend = backendPending.remove(id).isDefined
              val inScheduler = ts.executorsPendingDecommission.remove(id).isDefined
              inBackend || inScheduler
            }
          }
        }
        if (undone.nonEmpty) b.reviveOffers()
        undone
      case _ => Seq.empty
    }

  /** Shuffle ids, and the number of map outputs, whose location matches `lost`. */
  def outputsMatching(lost: (String, String) => Boolean): Map[Int, Int] =
    outputLocations(lost).keys.groupMapReduce(_._1)(_ => 1)(_ + _)

  /** Registered map outputs as (shuffle id, map id) -> (executor id, host) of where they are served. */
  def outputLocations(keep: (String, String) => Boolean = (_, _) => true): Map[(Int, Long), (String, String)] =
    mapOutputTracker.map { t =>
      t.shuffleStatuses.iterator.flatMap { case (shuffleId, status) =>
        status.withMapStatuses { statuses =>
          statuses.iterator.filter(s => s != null && keep(s.location.executorId, s.location.host))
            .map(s => (shuffleId, s.mapId) -> ((s.location.executorId, s.location.host))).toList
        }
      }.toMap
    }.getOrElse(Map.empty)

  /**
   * A new map-output epoch, handed to the running task sets too. Spark's `updateMapOutput` (a migrated
   * output's new location) does not bump it; executors keep cached map statuses until a task brings a
   * newer epoch; and a task set gives each task the epoch its stage attempt started with. So from now on
   * every task launched, in running stages too, makes its executor read the map statuses afresh.
   */
  def bumpEpoch(sc: SparkContext): Unit = mapOutputTracker.foreach { tracker =>
    tracker.incrementEpoch()
    val epoch = tracker.getEpoch
    taskScheduler(sc).foreach { ts =>
      val sets = field(ts, "taskSetsByStageIdAndAttempt").get(ts)
        .asInstanceOf[mutable.HashMap[Int, mutable.HashMap[Int, org.apache.spark.scheduler.TaskSetManager]]]
      ts.synchronized { sets.valuesIterator.flatMap(_.valuesIterator).foreach(raisePendingEpochs(_, epoch, Set.empty)) }
    }
  }

  /** Cached RDD blocks the block manager master knows on this executor (asks the master endpoint). */
  def cachedBlocks(sc: SparkContext, execId: String): Int =
    sc.env.blockManager.master.getStorageStatus.find(_.blockManagerId.executorId == execId)
      .map(_.rddBlocks.size).getOrElse(0)

  /**
   * With `spark.decommission.enabled`, dynamic allocation decommissions (migrates, then stops) idle
   * executors instead of killing them. decom turns that setting on only so executors can act on its
   * decommission message; this keeps Spark's own scale-down as it was (kill). False if not applied.
   */
  def killIdleExecutorsOnScaleDown(sc: SparkContext): Boolean =
    sc.executorAllocationManager.exists { m =>
      val f = field(m, "decommissionEnabled")
      f.setBoolean(m, false)
      true
    }

  /** The external shuffle service's port the app's block managers register outputs at: Spark's conf, which
   * the NodeManager's yarn-site overrides on YARN (StorageUtils.externalShuffleServicePort). */
  def shuffleServicePort(sc: SparkContext): Int = sc.env.blockManager.externalShuffleServicePort

  def removeOutputsOnHost(host: String): Unit = mapOutputTracker.foreach(_.removeOutputsOnHost(host))

  def removeOutputsOnExecutor(execId: String): Unit =
    mapOutputTracker.foreach(_.removeOutputsOnExecutor(execId))

  /** Forget the executor's cached blocks so no task is sent to read them from a dying node. */
  def removeBlockLocations(sc: SparkContext, execId: String): Unit =
    sc.env.blockManager.master.removeExecutorAsync(execId)

  /**
   * Let go of executors: ask the cluster manager to kill them (so YARN can finish draining the node)
   * and drop them on the driver at once, so their running tasks are re-offered now instead of
   * after a heartbeat timeout when the node has vanished.
   *
   * Killed first, Spark loses them as "killed" (its kill wins over any other reason): with the shuffle
   * service on it then keeps their outputs and re-runs none of their finished map tasks. With
   * `decommissionFirst` they are dropped first, so Spark loses them as decommissioned executors: a running
   * map stage then re-runs only the finished tasks whose outputs did not move off them (a kill would re-run
   * them all when the shuffle service is off), and the containers are killed after (the kill awaited for up
   * to 30 s unless `awaitKill` is false).
   */
  def releaseExecutors(
      sc: SparkContext, execIds: Seq[String], workerHost: Option[String], message: String,
      decommissionFirst: Boolean = false, awaitKill: Boolean = true)
      : Seq[String] = backend(sc) match {
    case Some(b) if execIds.nonEmpty =>
      val alive = execIds.filter(b.getExecutorIds().contains)
      // `removeExecutor` and `doKillExecutors` are Scala-protected (public in bytecode). The first is the
      // call Spark makes when an executor's connection drops, here with the decommission loss reason.
      val remove = b.getClass.getMethod("removeExecutor", classOf[String], classOf[ExecutorLossReason])
      if (decommissionFirst) {
        alive.foreach(id => remove.invoke(b, id, ExecutorDecommission(workerHost, message)))
        // killExecutors skips executors the driver no longer knows: ask the cluster manager directly.
        val kill = b.getClass.getMethod("doKillExecutors", classOf[scala.collection.immutable.Seq[_]])
        val done = kill.invoke(b, alive).asInstanceOf[scala.concurrent.Future[Any]]
        if (awaitKill) scala.util.Try(org.apache.spark.util.ThreadUtils.awaitResult(done,
          scala.concurrent.duration.Duration(30, java.util.concurrent.TimeUnit.SECONDS)))
      } else {
        b.killExecutors(alive, adjustTargetNumExecutors = false, countFailures = false, force = true)
        alive.foreach(id => remove.invoke(b, id, ExecutorDecommission(workerHost, message)))
      }
      alive
    case _ => Seq.empty
  }

  /**
   * Send executors already marked decommissioning Spark's decommission message, so they move their blocks
   * off. `decommissionExecutors` skips executors already marked, hence the message is sent here.
   */
  def tellDecommissioning(sc: SparkContext, execIds: Seq[String]): Seq[String] = backend(sc) match {
    case Some(b) if execIds.nonEmpty =>
      val data = accessor[mutable.HashMap[String, AnyRef]](
        b, "org$apache$spark$scheduler$cluster$CoarseGrainedSchedulerBackend$$executorDataMap")
      val refs = b.synchronized(execIds.flatMap(id => data.get(id).map(id -> _)))
      refs.map { case (id, d) =>
        accessor[org.apache.spark.rpc.RpcEndpointRef](d, "executorEndpoint")
          .send(org.apache.spark.scheduler.cluster.CoarseGrainedClusterMessages.DecommissionExecutor)
        id
      }
    case _ => Seq.empty
  }

  /** The shuffle a map stage writes (from the listener's StageInfo; `shuffleDepId` is private[spark]). */
  def shuffleWrittenBy(info: org.apache.spark.scheduler.StageInfo): Option[Int] = info.shuffleDepId

  /**
   * Kill these running task attempts so they are retried at once against the map outputs as they are
   * now. A retried attempt would carry its task set's epoch from when the stage attempt started, and an
   * executor keeps map statuses cached until it sees a newer epoch; so the task set's tasks get the
   * tracker's current epoch first, and the retry reads fresh statuses (a dropped output then fails it at
   * once with a fetch failure, instead of a fetch to a host that is gone). Returns the attempts killed.
   */
  def retryAgainstCurrentOutputs(sc: SparkContext, taskIds: Seq[Long], reason: String): Seq[Long] =
    (taskScheduler(sc), mapOutputTracker) match {
      case (Some(ts), Some(tracker)) if taskIds.nonEmpty =>
        val byTask = accessor[java.util.concurrent.ConcurrentHashMap[Long, org.apache.spark.scheduler.TaskSetManager]](
          ts, "taskIdToTaskSetManager")
        val epoch = tracker.getEpoch
        // A killed barrier task fails its whole stage attempt (counted as Spark counts it): leave those.
        val victims = taskIds.filter(id => Option(byTask.get(id)).exists(!_.tasks.exists(_.isBarrier)))
        val managers = victims.flatMap(id => Option(byTask.get(id))).distinct
        ts.synchronized {
          managers.foreach { m =>
            val infos = accessor[mutable.HashMap[Long, org.apache.spark.scheduler.TaskInfo]](m, "taskInfos")
            val killed = victims.filter(id => byTask.get(id) eq m).flatMap(id => infos.get(id).map(_.index))
            raisePendingEpochs(m, epoch, killed.toSet)
          }
        }
        victims.filter(id => sc.killTaskAttempt(id, interruptThread = true, reason))
      case _ => Seq.empty
    }

  /**
   * The new epoch for a task set's tasks not running and not done (plus `also`, attempts about to be
   * killed and relaunched). A running attempt keeps its epoch: the DAGScheduler compares it with its
   * executor's failure epoch to drop late results from a lost executor.
   */
  private def raisePendingEpochs(m: org.apache.spark.scheduler.TaskSetManager, epoch: Long, also: Set[Int])
      : Unit = m.tasks.indices.foreach { i =>
    val t = m.tasks(i)
    if (t.epoch < epoch && ((m.copiesRunning(i) == 0 && !m.successful(i)) || also.contains(i))) t.epoch = epoch
  }

  /** The retry limit the running DAGScheduler enforces. */
  def dagSchedulerMaxConsecutiveAttempts(sc: SparkContext): Option[Int] =
    Option(sc.dagScheduler).map(d => field(d, "maxConsecutiveStageAttempts").getInt(d))

  /**
   * Raise the running DAGScheduler's retry limit, for sessions whose context started without the
   * decom plugin (the plugin sets it through the conf before the DAGScheduler exists).
   */
  def setDagSchedulerMaxConsecutiveAttempts(sc: SparkContext, limit: Int): Boolean =
    Option(sc.dagScheduler).exists { d =>
      field(d, "maxConsecutiveStageAttempts").setInt(d, limit)
      true
    }

  def cancelStage(sc: SparkContext, stageId: Int, reason: String): Unit =
    sc.cancelStage(stageId, reason)

  def addListener(sc: SparkContext, listener: org.apache.spark.scheduler.SparkListenerInterface)
      : Unit = sc.listenerBus.addToQueue(listener, "decom")

  def removeListener(sc: SparkContext, listener: org.apache.spark.scheduler.SparkListenerInterface)
      : Unit = sc.listenerBus.removeListener(listener)

  private def mapOutputTracker: Option[MapOutputTrackerMaster] =
    Option(SparkEnv.get).map(_.mapOutputTracker).collect { case m: MapOutputTrackerMaster => m }

  private def accessor[T](target: AnyRef, name: String): T =
    target.getClass.getMethod(name).invoke(target).asInstanceOf[T]

  private def field(target: AnyRef, name: String): java.lang.reflect.Field = {
    var cls: Class[_] = target.getClass
    while (cls != null) {
      try {
        val f = cls.getDeclaredField(name)
        f.setAccessible(true)
        return f
      } catch {
        case _: NoSuchFieldException => cls = cls.getSuperclass
      }
    }
    throw new NoSuchFieldException(s"${target.getClass.getName}.$name")
  }
}
