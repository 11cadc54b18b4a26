package fusioncommerce.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;

/** catalog.products: the latest product per tenant/sku, as streams/tables/catalog.py keeps it. */
final class CatalogProcessor implements Processor<byte[], byte[], Void, Void> {
    static final String STORE = "catalog";

    private KeyValueStore<byte[], byte[]> products;

    @Override
    public void init(ProcessorContext<Void, Void> context) {
        products = context.getStateStore(STORE);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
        JsonNode envelope = Json.read(record.value());
        if (envelope == null || !"ProductUpserted".equals(envelope.path("type").asText())) {
            return;
        }
        JsonNode payload = envelope.path("payload");
        ObjectNode product = Json.MAPPER.createObjectNode();
        product.put("tenant", envelope.path("tenant").asText());
        product.put("sku", payload.path("sku").asText());
        product.put("name", payload.path("name").asText());
        product.set("price", payload.path("price"));
        product.put("updated_at", envelope.path("occurred_at").asText());
        products.put(record.key(), Json.write(product));
    }
}
