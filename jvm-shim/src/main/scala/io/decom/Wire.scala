package io.decom

import org.json4s._
import org.json4s.JsonDSL._

/**
 * The JSON the Python control plane reads: the answers to exclude/unexclude/decommissioned and the
 * report. Pure functions of decom's state, so the contract suite can render them from fixed inputs and
 * compare with the samples in `tests/contract/` that the Python suite parses.
 */
object Wire {
  /** exclude / unexclude: the executors newly (un)excluded, the targets as keys, and the targets whose
   * executors were told to move their blocks off (exclude only). */
  def actionReply(executors: Seq[String], targets: Seq[String], moving: Seq[String]): JObject =
    ("executors" -> executors.distinct) ~ ("targets" -> targets) ~ ("moving" -> moving)

  def decommissionedReply(targets: Seq[String], outputsUnregistered: Int, executorsReleased: Seq[String])
      : JObject =
    ("targets" -> targets) ~ ("outputsUnregistered" -> outputsUnregistered) ~
      ("executorsReleased" -> executorsReleased)

  private def opt(v: Option[Long]): JValue = v.map(JLong(_)).getOrElse(JNull)

  def node(n: NodeRecord): JObject = JObject(
    "key" -> JString(n.target.key),
    "kind" -> JString(n.target match { case _: ExecutorTarget => "executor"; case _ => "node" }),
    "excludedAt" -> opt(n.excludedAt), "excludedUntil" -> opt(n.excludedUntil),
    "unexcludedAt" -> opt(n.unexcludedAt),
    "unexcludeReason" -> n.unexcludeReason.map(JString(_)).getOrElse(JNull),
    "decommissionedAt" -> opt(n.decommissionedAt),
    "excluded" -> JBool(n.excludedNow),
    "executorsExcluded" -> JArray(n.executorsExcluded.toList.map(JString(_))),
    "executorsReleased" -> JArray(n.executorsReleased.toList.map(JString(_))),
    "outputsUnregistered" -> JInt(n.outputsUnregistered),
    "outputsMigrated" -> JInt(n.migrated.size), "outputsOrphaned" -> JInt(n.orphans.size),
    "bytesMigrated" -> JLong(n.bytesMigrated), "letGoAt" -> opt(n.letGoAt),
    "shuffles" -> JArray(n.cleanups.keys.toList.sorted.map(JInt(_))),
    "exemptedStageAttempts" -> JArray(n.exemptedAttempts.toList.map(JString(_))))

  /** nodesLetGo: the nodes the app holds nothing on any more, with what happened to their outputs. */
  def nodesLetGo(nodes: Seq[NodeRecord]): JObject =
    "nodes" -> JArray(nodes.toList.flatMap { n =>
      n.letGoAt.map { at =>
        JObject("key" -> JString(n.target.key), "at" -> JLong(at), "outputsMigrated" -> JInt(n.migrated.size),
          "outputsOrphaned" -> JInt(n.orphans.size), "outputsUnregistered" -> JInt(n.outputsUnregistered),
          "bytesMigrated" -> JLong(n.bytesMigrated))
      }
    })

  def stages(policy: RetryPolicy): List[JObject] = policy.stagesWithFailures.toList.sorted.map { s =>
    JObject("stage" -> JInt(s),
      "countedAttempts" -> JArray(policy.countedAttempts(s).toList.map(JInt(_))),
      "exemptAttempts" -> JArray(policy.exemptAttempts(s).toList.map(JInt(_))),
      "aborted" -> JBool(policy.abortedStages.contains(s)))
  }

  def executor(e: ExecutorInfo, alive: Boolean): JObject =
    JObject("id" -> JString(e.id), "host" -> JString(e.host),
      "nmHost" -> e.nmHost.map(JString(_)).getOrElse(JNull),
      "nmPort" -> e.nmPort.map(JInt(_)).getOrElse(JNull), "alive" -> JBool(alive))

  // scalastyle:off parameter.number
  def report(
      version: String,
      retryMode: String,
      policy: RetryPolicy,
      exemptionEnabled: Boolean,
      sparkLimit: Option[Int],
      fetchFailures: Int,
      exemptFetchFailures: Int,
      nodes: Seq[NodeRecord],
      executors: Seq[(ExecutorInfo, Boolean)],
      events: Seq[JObject]): JObject = JObject(
    "version" -> JString(version),
    "retryPolicy" -> JObject("mode" -> JString(retryMode), "userLimit" -> JInt(policy.userLimit),
      "exemptionEnabled" -> JBool(exemptionEnabled),
      "sparkLimit" -> sparkLimit.map(JInt(_)).getOrElse(JNull)),
    "fetchFailures" -> JObject("total" -> JInt(fetchFailures), "exempt" -> JInt(exemptFetchFailures)),
    "nodes" -> JArray(nodes.toList.map(node)), "stages" -> JArray(stages(policy)),
    "executors" -> JArray(executors.toList.map { case (e, alive) => executor(e, alive) }),
    "events" -> JArray(events.toList))
  // scalastyle:on parameter.number

  /** Every Spark conf key the shim reads; the Python side reads the spark.decom.* ones it doesn't. */
  val ConfigKeys: Seq[String] =
    Seq(Keys.ExemptEnabled, Keys.SparkMaxAttempts, Keys.UserMaxAttempts, Keys.ExtraAttempts, Keys.ReleaseIdle,
      Keys.KeepCapacity, Keys.RetryFetching, Keys.Enabled, Keys.MigrateBlocks, Keys.MigrationWait,
      Keys.DropWithoutLocalDirs, Keys.DropOnShuffleServiceLoss, Keys.DecommissionSetByDecom, Keys.ShuffleService,
      Keys.ShuffleTracking, Keys.NativeDecommission, Keys.StorageDecommission, Keys.ShuffleBlocks, Keys.RddBlocks)
}
