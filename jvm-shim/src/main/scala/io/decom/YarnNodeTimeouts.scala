package io.decom

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import org.apache.hadoop.conf.Configuration
import org.apache.hadoop.yarn.api.records.NodeState
import org.apache.hadoop.yarn.client.api.YarnClient
import org.json4s._
import org.json4s.JsonDSL._

/** One DECOMMISSIONING node's graceful-decommission timeout, as the RM's client RPC reports it. */
final case class NodeTimeout(nodeId: String, host: String, timeoutSeconds: Option[Int])

/**
 * Reads each DECOMMISSIONING node's timeout over the ResourceManager's client RPC
 * (`YarnClient.getNodeReports`), in the driver, with the application's Hadoop configuration and
 * credentials. YARN's REST API has no such field (DESIGN.md section 7). The value is the configured
 * total (`-g N`, the per-host timeout, or the RM default), not the time left.
 *
 * The RM-connect retries are cut on a copy of the conf (15 min by default): an RM that does not answer
 * costs one `read` a few seconds, never the driver.
 */
final class YarnNodeTimeouts(appConf: Configuration) {
  private lazy val client: YarnClient = {
    val conf = new Configuration(appConf)
    conf.setLong("yarn.resourcemanager.connect.max-wait.ms", 10000L)
    conf.setLong("yarn.resourcemanager.connect.retry-interval.ms", 1000L)
    conf.setInt("yarn.client.failover-max-attempts", 2)
    conf.setInt("ipc.client.connect.max.retries", 1)
    conf.setInt("ipc.client.connect.max.retries.on.timeouts", 1)
    val c = YarnClient.createYarnClient()
    c.init(conf)
    c.start()
    c
  }

  def read(): Seq[NodeTimeout] =
    client.getNodeReports(NodeState.DECOMMISSIONING).asScala.toSeq.map { r =>
      NodeTimeout(r.getNodeId.toString, r.getNodeId.getHost,
        Option(r.getDecommissioningTimeout).map(_.intValue))
    }

  def close(): Unit = try client.stop() catch { case NonFatal(_) => () }
}

object YarnNodeTimeouts {
  /**
   * For the decom agent, outside Spark: prints `json` of the cluster's DECOMMISSIONING nodes, with the
   * Hadoop configuration on the classpath (HADOOP_CONF_DIR) and the client jars pyspark ships. Exit 1
   * with the reason on stderr if the RM can't be asked.
   */
  def main(args: Array[String]): Unit = {
    val reader = new YarnNodeTimeouts(new org.apache.hadoop.yarn.conf.YarnConfiguration())
    try {
      println(org.json4s.jackson.JsonMethods.compact(org.json4s.jackson.JsonMethods.render(json(reader.read()))))
    } catch {
      case NonFatal(e) =>
        System.err.println(s"cannot read decommissioning timeouts from the ResourceManager: $e")
        sys.exit(1)
    } finally reader.close()
  }

  def json(nodes: Seq[NodeTimeout]): JObject =
    "nodes" -> nodes.map(n => ("nodeId" -> n.nodeId) ~ ("host" -> n.host) ~
      ("timeoutSeconds" -> n.timeoutSeconds.map(JInt(_)).getOrElse(JNull)))
}
