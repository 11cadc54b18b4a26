package fusioncommerce.bench;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams peer of the reservation benchmark: the project's inventory decision for
 * ReserveStock (and AdjustStock, which sets up the opening stock) as a Processor API topology.
 *
 * <pre>
 * catalog.products   --> catalog   (store "catalog": product JSON by tenant/sku)
 * inventory.commands --> inventory (store "stock": StockLevel JSON by tenant/sku; reads "catalog")
 *                                  --> &lt;output-prefix&gt;inventory.reservations   (key: order id)
 *                                  --> &lt;output-prefix&gt;inventory.stock-changes (key: tenant/sku)
 * </pre>
 *
 * Both stores are persistent RocksDB stores with a changelog and no record cache, so every state
 * write reaches the changelog (the worker's runtime writes one changelog record per key changed
 * per commit, so at most as many); processing.guarantee is exactly_once_v2. Arguments:
 * --bootstrap, --namespace (topic prefix of the stack under test), --application-id, --state-dir,
 * --output-prefix, optional --threads (default 1) and --commit-interval-ms (default 100).
 */
public final class ReservationsApp {
    private ReservationsApp() {
    }

    public static void main(String[] argv) throws InterruptedException {
        Map<String, String> args = parse(argv);
        String namespace = args.getOrDefault("namespace", "");
        String outputPrefix = args.get("output-prefix");

        Topology topology = new Topology();
        ByteArrayDeserializer bytesIn = new ByteArrayDeserializer();
        ByteArraySerializer bytesOut = new ByteArraySerializer();
        topology.addSource("catalog-source", bytesIn, bytesIn, namespace + "catalog.products");
        topology.addSource("commands-source", bytesIn, bytesIn, namespace + "inventory.commands");
        topology.addProcessor("catalog", CatalogProcessor::new, "catalog-source");
        topology.addProcessor("inventory", InventoryProcessor::new, "commands-source");
        topology.addStateStore(
            Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(CatalogProcessor.STORE),
                Serdes.ByteArray(), Serdes.ByteArray()).withCachingDisabled(),
            "catalog", "inventory");
        topology.addStateStore(
            Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(InventoryProcessor.STORE),
                Serdes.ByteArray(), Serdes.ByteArray()).withCachingDisabled(),
            "inventory");
        topology.addSink(InventoryProcessor.RESERVATIONS, outputPrefix + "inventory.reservations",
            bytesOut, bytesOut, "inventory");
        topology.addSink(InventoryProcessor.STOCK_CHANGES, outputPrefix + "inventory.stock-changes",
            bytesOut, bytesOut, "inventory");

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args.get("application-id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args.get("bootstrap"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.STATE_DIR_CONFIG, Path.of(args.get("state-dir")).toString());
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(args.getOrDefault("threads", "1")));
        // The worker commits every 100 ms (FC_COMMIT_INTERVAL); exactly_once_v2's default is the same.
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Integer.parseInt(args.getOrDefault("commit-interval-ms", "100")));
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

        KafkaStreams streams = new KafkaStreams(topology, props);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("[kstreams] " + before + " -> " + now);
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(20));
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
        System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) {
            if (!argv[i].startsWith("--")) {
                throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        for (String required : new String[] {"bootstrap", "application-id", "state-dir", "output-prefix"}) {
            if (!args.containsKey(required)) {
                throw new IllegalArgumentException("missing --" + required);
            }
        }
        return args;
    }
}
