package io.decom

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Paths}

import org.json4s._
import org.json4s.JsonDSL._
import org.json4s.jackson.JsonMethods.{compact, parse, render}
import org.scalatest.funsuite.AnyFunSuite

/**
 * The shim's JSON must be exactly the samples in tests/contract/, which the Python suite parses
 * (tests/unit/test_contract.py). Rendered from fixed state, so neither suite depends on the other's run.
 */
class WireContractSuite extends AnyFunSuite {
  private def sample(name: String): JValue = {
    // mvn runs in jvm-shim/; the samples live with the Python tests.
    val path = Paths.get("..", "tests", "contract", name)
    parse(new String(Files.readAllBytes(path), StandardCharsets.UTF_8))
  }

  /** Through text and back, so Long/Int and field order don't matter, only the JSON does. */
  private def normal(v: JValue): JValue = parse(compact(render(v)))

  test("the report is the checked-in sample") {
    val node = new NodeRecord(Target.node("198.18.0.11"))
    node.excludedAt = Some(1000L)
    node.excludedUntil = Some(3601000L)
    node.decommissionedAt = Some(5000L)
    node.executorsExcluded ++= Seq("1", "2")
    node.executorsReleased += "2"
    node.outputsUnregistered = 7
    node.cleanups.getOrElseUpdate(2, collection.mutable.ArrayBuffer.empty) += 5000L
    node.cleanups.getOrElseUpdate(0, collection.mutable.ArrayBuffer.empty) += 5000L
    node.exemptedAttempts += "3.0"
    node.migrated += ((0, 11L))
    node.orphans += ((2, 12L))
    node.bytesMigrated = 2048L
    node.letGoAt = Some(6000L)
    val exec = new NodeRecord(ExecutorTarget("7"))
    exec.excludedAt = Some(2000L)
    exec.excludedUntil = Some(3602000L)
    exec.unexcludedAt = Some(4000L)
    exec.unexcludeReason = Some("decom: node is back in service")
    exec.executorsExcluded += "7"
    val policy = new RetryPolicy(userLimit = 4)
    policy.fetchFailed(3, 0, Seq("198.18.0.11"), 1)
    policy.failed(3, 0, "FetchFailed", 2)
    policy.fetchFailed(3, 1, Nil, 3)
    policy.failed(3, 1, "FetchFailed", 4)
    val executors = Seq(
      (ExecutorInfo("1", "198.18.0.11", Some("198.18.0.11"), Some(8041)), false),
      (ExecutorInfo("3", "198.18.0.12", None, None), true))
    val event: JObject = ("time" -> 1000L) ~ ("action" -> "excluded") ~ ("target" -> "198.18.0.11") ~
      ("detail" -> (("executors" -> Seq("1", "2")) ~ ("until" -> 3601000L)))
    val report = Wire.report("contract", "plugin", policy, exemptionEnabled = true, sparkLimit = Some(20),
      fetchFailures = 3, exemptFetchFailures = 2, Seq(node, exec), executors, Seq(event))
    assert(normal(report) == sample("report.json"))
  }

  test("the action answers are the checked-in samples") {
    val actions = sample("actions.json")
    assert(normal(Wire.actionReply(Seq("1", "2", "1"), Seq("198.18.0.11", "executor:7"), Seq("198.18.0.11"))) ==
      actions \ "exclude")
    assert(normal(Wire.actionReply(Nil, Seq("executor:7"), Nil)) == actions \ "unexclude")
    assert(normal(Wire.decommissionedReply(Seq("198.18.0.11"), 7, Seq("2"))) == actions \ "decommissioned")
  }

  test("the nodes let go are the checked-in sample") {
    val gone = new NodeRecord(Target.node("198.18.0.11"))
    gone.excludedAt = Some(1000L)
    gone.decommissionedAt = Some(5000L)
    gone.migrated ++= Seq((0, 1L), (0, 2L))
    gone.orphans += ((1, 3L))
    gone.outputsUnregistered = 1
    gone.bytesMigrated = 5L * 1024 * 1024 * 1024 // past Int.MaxValue: a Long on the wire
    gone.letGoAt = Some(7000L)
    val held = new NodeRecord(Target.node("198.18.0.12"))
    held.excludedAt = Some(2000L)
    held.migrated += ((0, 4L))
    held.bytesMigrated = 512L
    assert(normal(Wire.nodesLetGo(Seq(gone, held))) == sample("let_go.json"))
  }

  test("the decommissioning timeouts read over RPC are the checked-in sample") {
    val nodes = Seq(NodeTimeout("198.18.0.12:45454", "198.18.0.12", Some(15)),
      NodeTimeout("198.18.0.13:45454", "198.18.0.13", None))
    assert(normal(YarnNodeTimeouts.json(nodes)) == sample("timeouts.json"))
  }

  test("the conf keys the shim reads are the checked-in list") {
    val JArray(keys) = sample("config_keys.json") \ "jvm": @unchecked
    assert(keys.map { case JString(k) => k; case other => fail(s"not a key: $other") } == Wire.ConfigKeys)
  }
}
