// Registers simulated NodeManagers with a real ResourceManager over its resource-tracker RPC, as a
// NodeManager does at start (bench/rm_load.py: the RM's cost per node query at 100 and 10,000 nodes).
// They register and never heartbeat: the bench's lab sets a liveness expiry longer than the bench, so
// they stay RUNNING, and the RM's heartbeat work does not blur the query cost being measured.
//
// Usage: SimNodeManagers <first index> <count> <threads>   (HADOOP_CONF_DIR on the classpath)
// Host i is 127.2.<i / 250>.<1 + i % 250>: distinct hosts, so one can be decommissioned alone.
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import org.apache.hadoop.yarn.api.records.NodeId;
import org.apache.hadoop.yarn.api.records.Resource;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.api.ResourceTracker;
import org.apache.hadoop.yarn.server.api.ServerRMProxy;
import org.apache.hadoop.yarn.server.api.protocolrecords.RegisterNodeManagerRequest;
import org.apache.hadoop.yarn.server.api.protocolrecords.RegisterNodeManagerResponse;
import org.apache.hadoop.yarn.server.api.records.NodeAction;

public final class SimNodeManagers {
  public static String host(int i) {
    return "127.2." + (i / 250) + "." + (1 + i % 250);
  }

  public static void main(String[] args) throws Exception {
    int first = Integer.parseInt(args[0]);
    int count = Integer.parseInt(args[1]);
    int threads = Integer.parseInt(args[2]);
    YarnConfiguration conf = new YarnConfiguration();
    ResourceTracker rm = ServerRMProxy.createRMProxy(conf, ResourceTracker.class);
    String version = org.apache.hadoop.util.VersionInfo.getVersion();
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    List<Future<String>> results = new ArrayList<>();
    for (int i = first; i < first + count; i++) {
      final int n = i;
      results.add(pool.submit(() -> {
        RegisterNodeManagerRequest req = RegisterNodeManagerRequest.newInstance(
            NodeId.newInstance(host(n), 45454), 8042, Resource.newInstance(8192, 4), version,
            Collections.emptyList(), Collections.emptyList());
        RegisterNodeManagerResponse resp = rm.registerNodeManager(req);
        return resp.getNodeAction() == NodeAction.NORMAL ? null
            : host(n) + ": " + resp.getNodeAction() + " " + resp.getDiagnosticsMessage();
      }));
    }
    int failed = 0;
    for (Future<String> f : results) {
      String err = f.get();
      if (err != null) {
        failed++;
        if (failed <= 5) System.err.println("not registered: " + err);
      }
    }
    pool.shutdown();
    System.out.println("{\"registered\": " + (count - failed) + ", \"failed\": " + failed + "}");
    System.exit(failed == 0 ? 0 : 1);
  }
}
