/*
 * yarnlab's stand-in for Spark's YARN shuffle service.
 *
 * Spark's own aux service (org.apache.spark.network.yarn.YarnShuffleService, artifact
 * org.apache.spark:spark-network-yarn_2.13) is not available from the Maven Central this project
 * can reach (no version of spark-network-yarn resolves, and no Spark 4.3.0 artifact at all), so
 * yarnlab compiles this small NodeManager auxiliary service at lab start instead. It serves the
 * same protocol with the same server-side handler: Spark 4.3.0's ExternalBlockHandler from the
 * spark-network-shuffle jar pyspark ships. Executors register with it and reducers fetch map
 * output from it exactly as they would from the real service. Not supported here: SASL
 * authentication (spark.authenticate=true), the registered-executor recovery DB, push-based
 * shuffle merging and the service's metrics.
 *
 * NodeManager configuration (yarn-site.xml), written by yarnlab:
 *   yarn.nodemanager.aux-services = spark_shuffle
 *   yarn.nodemanager.aux-services.spark_shuffle.class = decom.yarnlab.LabShuffleService
 *   yarn.nodemanager.aux-services.spark_shuffle.classpath = <dir with this jar + Spark network jars>/*
 *   spark.shuffle.service.port = 7337
 *   spark.shuffle.service.bind.host = <node address>   (default: yarn.nodemanager.hostname)
 */
package decom.yarnlab;

import java.nio.ByteBuffer;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.yarn.server.api.ApplicationInitializationContext;
import org.apache.hadoop.yarn.server.api.ApplicationTerminationContext;
import org.apache.hadoop.yarn.server.api.AuxiliaryService;
import org.apache.hadoop.yarn.server.api.ContainerInitializationContext;
import org.apache.hadoop.yarn.server.api.ContainerTerminationContext;
import org.apache.spark.network.TransportContext;
import org.apache.spark.network.server.TransportServer;
import org.apache.spark.network.shuffle.ExternalBlockHandler;
import org.apache.spark.network.util.ConfigProvider;
import org.apache.spark.network.util.TransportConf;

public class LabShuffleService extends AuxiliaryService {
  private TransportServer server;
  private TransportContext context;
  private ExternalBlockHandler handler;

  public LabShuffleService() {
    super("spark_shuffle");
  }

  /** Spark network settings (spark.shuffle.io.*, ...) read from the NodeManager's configuration. */
  private static final class HadoopConfProvider extends ConfigProvider {
    private final Configuration conf;

    HadoopConfProvider(Configuration conf) {
      this.conf = conf;
    }

    @Override
    public String get(String name) {
      String v = conf.get(name);
      if (v == null) {
        throw new java.util.NoSuchElementException(name);
      }
      return v;
    }

    @Override
    public String get(String name, String defaultValue) {
      String v = conf.get(name);
      return v == null ? defaultValue : v;
    }

    @Override
    public Iterable<Map.Entry<String, String>> getAll() {
      List<Map.Entry<String, String>> all = new ArrayList<>();
      for (Map.Entry<String, String> e : conf) {
        all.add(new AbstractMap.SimpleImmutableEntry<>(e.getKey(), e.getValue()));
      }
      return all;
    }
  }

  @Override
  protected void serviceInit(Configuration conf) throws Exception {
    TransportConf transportConf = new TransportConf("shuffle", new HadoopConfProvider(conf));
    handler = new ExternalBlockHandler(transportConf, null);
    context = new TransportContext(transportConf, handler, true);
    int port = conf.getInt("spark.shuffle.service.port", 7337);
    String host = conf.get("spark.shuffle.service.bind.host", conf.get("yarn.nodemanager.hostname"));
    server = context.createServer(host, port, Collections.emptyList());
    System.err.println("yarnlab: spark_shuffle (LabShuffleService) listening on " + host + ":" + server.getPort());
    super.serviceInit(conf);
  }

  @Override
  protected void serviceStop() throws Exception {
    if (server != null) {
      server.close();
    }
    if (context != null) {
      context.close();
    }
    if (handler != null) {
      handler.close();
    }
    super.serviceStop();
  }

  @Override
  public void initializeApplication(ApplicationInitializationContext ctx) {
    // Nothing to do without authentication.
  }

  @Override
  public void stopApplication(ApplicationTerminationContext ctx) {
    // Same as Spark's service: forget the app's executors; the NodeManager deletes its dirs.
    handler.applicationRemoved(ctx.getApplicationId().toString(), false);
  }

  @Override
  public void initializeContainer(ContainerInitializationContext ctx) {}

  @Override
  public void stopContainer(ContainerTerminationContext ctx) {}

  @Override
  public ByteBuffer getMetaData() {
    return ByteBuffer.allocate(0);
  }
}
