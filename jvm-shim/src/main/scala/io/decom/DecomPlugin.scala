package io.decom

import java.util.{Collections, Map => JMap}

import com.codahale.metrics.Gauge

import org.apache.spark.SparkContext
import org.apache.spark.api.plugin.{DriverPlugin, ExecutorPlugin, PluginContext, SparkPlugin}
import org.apache.spark.decom.SparkInternals

/**
 * `spark.plugins=io.decom.DecomPlugin`: what `decom.configure(builder)` adds, and what
 * spark-defaults users set. Driver only.
 */
class DecomPlugin extends SparkPlugin {
  override def driverPlugin(): DriverPlugin = new DecomDriverPlugin
  override def executorPlugin(): ExecutorPlugin = null
}

/**
 * `init` runs before the TaskScheduler and DAGScheduler exist: it only adjusts the conf they are
 * about to read (Spark's retry limit) and keeps the context. The shim is installed in
 * `registerMetrics`, which Spark calls once the schedulers are running.
 */
class DecomDriverPlugin extends DriverPlugin {
  @volatile private var sc: SparkContext = _

  override def init(sc: SparkContext, ctx: PluginContext): JMap[String, String] = {
    this.sc = sc
    val set = Migration.prepare(SparkInternals.mutableConf(sc))
    if (set.nonEmpty) {
      DecomShim.log.info(s"decom: executors start able to move their blocks when their node leaves " +
        s"(${Keys.MigrateBlocks}): set ${set.map(_ + "=true").mkString(", ")}")
    }
    if (RetryLimits.raise(SparkInternals.mutableConf(sc))) {
      DecomShim.log.info(s"decom: stage retries are decom's: ${Keys.SparkMaxAttempts} raised to " +
        s"${RetryLimits.raisedLimit(sc.getConf)}, the user's limit " +
        s"${RetryLimits.userLimit(sc.getConf)} is enforced without decommission-caused attempts")
    }
    Collections.emptyMap()
  }

  override def registerMetrics(appId: String, ctx: PluginContext): Unit = {
    if (sc == null) return
    DecomShim.get(sc)
    // decom's counters as Spark metrics: the UI's /metrics/json (read by `decom status`) and any sink.
    DecomShim.CounterNames.foreach { name =>
      ctx.metricRegistry().register(name, new Gauge[Long] {
        override def getValue: Long = DecomShim.counters(sc).getOrElse(name, 0L)
      })
    }
  }

  override def shutdown(): Unit = {
    if (sc != null) DecomShim.stopFor(sc)
  }
}
