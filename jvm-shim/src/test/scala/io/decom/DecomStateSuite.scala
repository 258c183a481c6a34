package io.decom

import scala.collection.mutable

import org.scalatest.funsuite.AnyFunSuite

class DecomStateSuite extends AnyFunSuite {

  test("node targets: host, YARN node id, IPv6 literal") {
    assert(Target.node("node-1") == NodeTarget("node-1", None))
    assert(Target.node("node-1:8041") == NodeTarget("node-1", Some(8041)))
    assert(Target.node("[::1]:8041") == NodeTarget("[::1]", Some(8041)))
    assert(Target.node("::1") == NodeTarget("::1", None))
    assert(Target.node(" 198.18.0.11 ").key == "198.18.0.11")
  }

  test("executors match their node by NM host and port, or by executor host") {
    val yarnExec = ExecutorInfo.fromAttributes("3", "10.0.0.5",
      Map("NM_HOST" -> "nm-a", "NM_PORT" -> "8041"))
    assert(yarnExec.runsOn(Target.node("nm-a")))
    assert(yarnExec.runsOn(Target.node("nm-a:8041")))
    assert(!yarnExec.runsOn(Target.node("nm-a:8042")), "another NodeManager on the same host")
    assert(yarnExec.runsOn(Target.node("10.0.0.5")))
    assert(!yarnExec.runsOn(Target.node("nm-b")))
    assert(yarnExec.runsOn(ExecutorTarget("3")) && !yarnExec.runsOn(ExecutorTarget("4")))
    val plain = ExecutorInfo("1", "host-1", None, None)
    assert(plain.runsOn(Target.node("host-1:8041")), "no NM port known: host match decides")
  }

  private def decommissioned(target: Target, execs: Seq[String], at: Long,
                             cleaned: Map[Int, Long] = Map.empty): NodeRecord = {
    val r = new NodeRecord(target)
    r.excludedAt = Some(at)
    r.decommissionedAt = Some(at)
    r.executorsLost ++= execs
    cleaned.foreach { case (s, t) => r.cleanups.getOrElseUpdate(s, collection.mutable.ArrayBuffer.empty) += t }
    r
  }

  test("blame: an address on a reported node or executor") {
    val node = decommissioned(Target.node("h1"), Seq("1", "2"), at = 100)
    val exec = decommissioned(ExecutorTarget("7"), Seq("7"), at = 100)
    val nodes = Seq(node, exec)
    assert(Blame.of(nodes, Some("1"), Some("h1"), 0, 0) == Seq("h1"))
    assert(Blame.of(nodes, Some("9"), Some("h1"), 0, 0) == Seq("h1"), "later executor on that host")
    assert(Blame.of(nodes, Some("7"), Some("h2"), 0, 0) == Seq("executor:7"))
    assert(Blame.of(nodes, Some("8"), Some("h2"), 0, 0).isEmpty, "healthy node: not decom's doing")
  }

  test("blame: a missing output location only when decom cleaned that shuffle during the attempt") {
    val node = decommissioned(ExecutorTarget("1"), Seq("1"), at = 5000, cleaned = Map(3 -> 5000L))
    assert(Blame.of(Seq(node), None, None, 3, attemptStartedAt = 4000) == Seq("executor:1"))
    assert(Blame.of(Seq(node), None, None, 4, attemptStartedAt = 4000).isEmpty, "other shuffle")
    assert(Blame.of(Seq(node), None, None, 3, attemptStartedAt = 9000).isEmpty,
      "the attempt began after the clean-up: its missing outputs are someone else's")
  }

  test("blame: an address on a host whose outputs of that shuffle decom dropped during the attempt") {
    // A node decom never saw leave (its NodeManager restarted): not doomed, but its outputs were dropped.
    val r = new NodeRecord(Target.node("h1"))
    r.cleanups.getOrElseUpdate(2, mutable.ArrayBuffer.empty) += 5000L
    r.executorsLost += "8"
    assert(Blame.of(Seq(r), Some("8"), Some("h1"), 2, attemptStartedAt = 4000) == Seq("h1"))
    assert(Blame.of(Seq(r), Some("9"), Some("h1"), 2, attemptStartedAt = 4000).isEmpty,
      "a neighbour decom did not drop (shuffle service off: only the failing executor goes)")
    assert(Blame.of(Seq(r), Some("8"), Some("h2"), 2, attemptStartedAt = 4000).isEmpty, "another host")
    assert(Blame.of(Seq(r), Some("8"), Some("h1"), 3, attemptStartedAt = 4000).isEmpty, "another shuffle")
    assert(Blame.of(Seq(r), Some("8"), Some("h1"), 2, attemptStartedAt = 9000).isEmpty,
      "the attempt began after the drop: a failure of its own")
  }

  test("shuffle service down: a refused connection to that host's service, not a timeout nor another host") {
    def failure(cause: String): String =
      "org.apache.spark.shuffle.FetchFailedException\n\tat org.apache.spark.storage.ShuffleBlockFetcherIterator" +
        s".throwFetchFailedException(ShuffleBlockFetcherIterator.scala:1259)\nCaused by: $cause\nCaused by: " +
        "java.net.ConnectException: finishConnect(..) failed with error(-111): Connection refused\n"
    val refused = failure("java.io.IOException: Failed to connect to /198.18.0.14:7337")
    assert(ShuffleServiceLost.in(refused, "198.18.0.14", 7337))
    assert(!ShuffleServiceLost.in(refused, "198.18.0.1", 7337), "a host whose address is a prefix")
    assert(!ShuffleServiceLost.in(refused, "198.18.0.15", 7337), "another host")
    assert(!ShuffleServiceLost.in(refused, "198.18.0.14", 7447), "another port")
    assert(ShuffleServiceLost.in(failure("java.io.IOException: Failed to connect to n4.example/10.0.0.4:7337"),
      "n4.example", 7337), "a host name")
    val timedOut = refused.replace("Connection refused", "Connection timed out")
    assert(!ShuffleServiceLost.in(timedOut, "198.18.0.14", 7337), "a node cut off times out: the RM's to report")
    val forgot = "org.apache.spark.shuffle.FetchFailedException: java.lang.RuntimeException: Executor is not " +
      "registered (appId=application_1_0001, execId=8)\n\tat org.apache.spark.network.shuffle." +
      "ExternalShuffleBlockResolver.getContinuousBlocksData(ExternalShuffleBlockResolver.java:196)\n"
    assert(ShuffleServiceLost.in(forgot, "198.18.0.14", 7337), "restarted without recovery: the app is forgotten")
    assert(!ShuffleServiceLost.in("java.io.IOException: Stream is corrupted", "198.18.0.14", 7337))
  }

  test("blame: a recommissioned node is no longer blamed") {
    val r = new NodeRecord(Target.node("h1"))
    r.excludedAt = Some(100)
    r.executorsExcluded += "1"
    assert(Blame.of(Seq(r), Some("1"), Some("h1"), 0, 0) == Seq("h1"))
    r.unexcludedAt = Some(200)
    assert(Blame.of(Seq(r), Some("1"), Some("h1"), 0, 0).isEmpty)
  }

  test("retry policy: counts fetch-failed attempts, aborts at the user's limit, resets on success") {
    val p = new RetryPolicy(userLimit = 2)
    p.submitted(5, 0, 0)
    p.fetchFailed(5, 0, Nil, 1)
    assert(p.failed(5, 0, "FetchFailed", 2) == Counted(1, abort = false))
    p.succeeded(5)
    p.fetchFailed(5, 1, Nil, 3)
    assert(p.failed(5, 1, "FetchFailed", 4) == Counted(1, abort = false), "success resets the count")
    p.fetchFailed(5, 2, Nil, 5)
    assert(p.failed(5, 2, "FetchFailed", 6) == Counted(2, abort = true))
    p.fetchFailed(5, 3, Nil, 7)
    assert(p.failed(5, 3, "FetchFailed", 8) == Counted(3, abort = false), "abort is asked for once")
  }

  test("retry policy: decommission-caused attempts are exempt, also when the blame comes late") {
    val p = new RetryPolicy(userLimit = 2)
    p.fetchFailed(1, 0, Seq("h1"), 1)
    assert(p.failed(1, 0, "FetchFailed", 2) == Exempted(Seq("h1")))
    p.fetchFailed(1, 1, Nil, 3)
    assert(p.failed(1, 1, "FetchFailed", 4) == Counted(1, abort = false))
    assert(p.fetchFailed(1, 1, Seq("h2"), 5) == Some(Exempted(Seq("h2"))))
    assert(p.countedAttempts(1).isEmpty && p.exemptAttempts(1) == Seq(0, 1))
    p.fetchFailed(1, 2, Nil, 6)
    assert(p.failed(1, 2, "FetchFailed", 7) == Counted(1, abort = false),
      "two exempt attempts and one counted: below a limit of 2")
  }

  test("retry policy: failures other than fetch failures are Spark's business; barrier ones count") {
    val p = new RetryPolicy(userLimit = 1)
    assert(p.failed(2, 0, "Job aborted due to task failure", 1) == NotCounted)
    assert(p.failed(3, 0, "Stage failed because barrier task ResultTask(3, 0) finished unsuccessfully.", 1) ==
      Counted(1, abort = true))
  }

  test("local dirs gone: a missing blockmgr dir or subdir, not other file errors") {
    val dir = "/data/nm-local-dir/usercache/u/appcache/application_1_0012/blockmgr-6eb3785c-434f-46f6"
    // what a task on an executor of a restarted NodeManager reported (seed 8 of make chaos --long)
    val trace = s"java.nio.file.NoSuchFileException: $dir/36\n\tat java.base/sun.nio.fs.UnixException" +
      ".translateToIOException(UnixException.java:92)\n\tat org.apache.spark.storage.DiskBlockManager.getFile"
    assert(LocalDirsGone.in("java.nio.file.NoSuchFileException", s"$dir/36", trace).contains(s"java.nio.file.NoSuchFileException: $dir/36"))
    val wrapped = s"org.apache.spark.SparkException: Task failed\nCaused by: java.io.FileNotFoundException: " +
      s"$dir/0c/temp_shuffle_1 (No such file or directory)"
    assert(LocalDirsGone.in("org.apache.spark.SparkException", "Task failed", wrapped).exists(_.startsWith("Caused by")))
    assert(LocalDirsGone.in("java.io.FileNotFoundException", s"$dir/0c/temp_shuffle_1 (Too many open files)", "")
      .isEmpty)
    assert(LocalDirsGone.in("java.nio.file.NoSuchFileException", "/user/data/part-0001.parquet", null).isEmpty)
    assert(LocalDirsGone.in("java.lang.RuntimeException", "boom", null).isEmpty)
  }
}
