package fusioncommerce.bench;

import java.nio.charset.StandardCharsets;
import java.util.Iterator;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * inventory.commands: streams/tables/inventory.py's `reserve` and `adjust`, one SKU's stock per key.
 * A reservation holds `quantity` units under the order id if that many are available, else it is
 * refused with the project's reason; a repeated order id changes nothing and emits nothing.
 * Release and commit are not sent by the benchmark and are ignored here, as are envelopes the
 * project would dead-letter (undecodable, or keyed other than tenant/sku).
 */
final class InventoryProcessor implements Processor<byte[], byte[], byte[], byte[]> {
    static final String STORE = "stock";
    static final String RESERVATIONS = "reservations";
    static final String STOCK_CHANGES = "stock-changes";
    static final int REMEMBERED_ADJUSTMENTS = 100;

    private ProcessorContext<byte[], byte[]> context;
    private KeyValueStore<byte[], byte[]> stock;
    private KeyValueStore<byte[], byte[]> products;

    @Override
    public void init(ProcessorContext<byte[], byte[]> context) {
        this.context = context;
        stock = context.getStateStore(STORE);
        products = context.getStateStore(CatalogProcessor.STORE);
    }

    @Override
    public void process(Record<byte[], byte[]> record) {
        JsonNode envelope = Json.read(record.value());
        if (envelope == null) {
            return;
        }
        JsonNode payload = envelope.path("payload");
        String tenant = envelope.path("tenant").asText();
        String sku = payload.path("sku").asText();
        byte[] key = (tenant + "/" + sku).getBytes(StandardCharsets.UTF_8);
        if (!java.util.Arrays.equals(key, record.key())) {
            return;
        }
        byte[] raw = stock.get(key);
        StockLevel state = raw == null ? new StockLevel(tenant, sku) : Json.read(raw, StockLevel.class);
        byte[] product = products.get(key);
        JsonNode price = product == null ? null : Json.read(product).path("price");
        boolean changed;
        switch (envelope.path("type").asText()) {
            case "ReserveStock" -> changed = reserve(envelope, payload, state, price, record);
            case "AdjustStock" -> changed = adjust(envelope, payload, state, price, record);
            default -> changed = false;
        }
        if (changed) {
            stock.put(key, Json.write(state));
        }
    }

    private boolean reserve(JsonNode envelope, JsonNode payload, StockLevel state, JsonNode price,
                            Record<byte[], byte[]> record) {
        String order = payload.path("order_id").asText();
        if (state.holds.containsKey(order)) {
            return false;
        }
        long quantity = payload.path("quantity").asLong();
        String reason = null;
        if (price == null) {
            reason = "unknown_sku: the SKU is not in the catalog";
        } else if (quantity < 1) {
            reason = "invalid_quantity: a quantity must be at least 1";
        } else if (state.available() < quantity) {
            reason = "insufficient_stock: " + state.available() + " available, " + quantity + " requested";
        }
        ObjectNode out = Json.MAPPER.createObjectNode();
        out.put("order_id", order);
        out.put("sku", state.sku);
        out.put("quantity", quantity);
        String type;
        if (reason == null) {
            state.holds.put(order, quantity);
            out.set("unit_price", price);
            type = "StockReserved";
        } else {
            out.put("reason", reason);
            type = "StockReservationRejected";
        }
        byte[] value = Json.derive(envelope, 0, type, out);
        context.forward(record.withKey(order.getBytes(StandardCharsets.UTF_8)).withValue(value), RESERVATIONS);
        // Only a hold changes the state (a refusal leaves it as it was, and is not written).
        return reason == null;
    }

    private boolean adjust(JsonNode envelope, JsonNode payload, StockLevel state, JsonNode price,
                           Record<byte[], byte[]> record) {
        String id = payload.path("adjustment_id").asText();
        if (state.recentAdjustments.containsKey(id)) {
            return false;
        }
        long delta = payload.path("delta").asLong();
        long newOnHand = state.onHand + delta;
        String reason = null;
        if (price == null) {
            reason = "unknown_sku: the SKU is not in the catalog; create the product first";
        } else if (newOnHand < 0) {
            reason = "insufficient_stock: on_hand is " + state.onHand + ", a delta of " + delta
                + " would make it negative";
        } else if (newOnHand < state.reserved()) {
            reason = "insufficient_stock: " + state.reserved()
                + " units are held by orders; on_hand cannot go below that";
        }
        Iterator<String> oldest = state.recentAdjustments.keySet().iterator();
        while (state.recentAdjustments.size() > REMEMBERED_ADJUSTMENTS - 1 && oldest.hasNext()) {
            oldest.next();
            oldest.remove();
        }
        state.recentAdjustments.put(id, new StockLevel.Outcome(reason == null, reason));
        ObjectNode out = Json.MAPPER.createObjectNode();
        out.put("adjustment_id", id);
        out.put("sku", state.sku);
        out.put("delta", delta);
        String type;
        if (reason == null) {
            state.onHand = newOnHand;
            out.put("reason", payload.path("reason").asText());
            out.put("on_hand", state.onHand);
            out.put("reserved", state.reserved());
            type = "StockAdjusted";
        } else {
            out.put("reason", reason);
            type = "StockAdjustmentRejected";
        }
        context.forward(record.withValue(Json.derive(envelope, 0, type, out)), STOCK_CHANGES);
        return true;
    }
}
