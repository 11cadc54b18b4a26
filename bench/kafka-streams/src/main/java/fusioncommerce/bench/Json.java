package fusioncommerce.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.UUID;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** JSON and envelope helpers shared by the processors. */
final class Json {
    // Holds are a map keyed by order id: with Jackson's default symbol table every new order id
    // would be canonicalized and interned as if it were a field name, a table that only grows.
    static final ObjectMapper MAPPER = new ObjectMapper(JsonFactory.builder()
        .disable(JsonFactory.Feature.INTERN_FIELD_NAMES)
        .disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES)
        .build());

    private Json() {
    }

    /** The parsed value, or null for bytes that are not JSON (the project dead-letters those). */
    static JsonNode read(byte[] raw) {
        try {
            return raw == null ? null : MAPPER.readTree(raw);
        } catch (IOException e) {
            return null;
        }
    }

    static <T> T read(byte[] raw, Class<T> type) {
        try {
            return MAPPER.readValue(raw, type);
        } catch (IOException e) {
            throw new IllegalStateException("unreadable " + type.getSimpleName(), e);
        }
    }

    static byte[] write(Object value) {
        try {
            return MAPPER.writeValueAsBytes(value);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * An event caused by `cause`, as streams.models.Envelope.derive makes it: its id is uuid5 of the
     * cause's id and "index:type", so all three implementations of the benchmark emit the same ids.
     */
    static byte[] derive(JsonNode cause, int index, String type, ObjectNode payload) {
        ObjectNode envelope = MAPPER.createObjectNode();
        UUID causeId = UUID.fromString(cause.path("event_id").asText());
        envelope.put("event_id", uuid5(causeId, index + ":" + type).toString());
        envelope.put("type", type);
        envelope.put("schema_version", 1);
        envelope.put("tenant", cause.path("tenant").asText());
        envelope.put("occurred_at", Instant.now().toString());
        envelope.set("payload", payload);
        return write(envelope);
    }

    static UUID uuid5(UUID namespace, String name) {
        MessageDigest sha1;
        try {
            sha1 = MessageDigest.getInstance("SHA-1");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        sha1.update(ByteBuffer.allocate(16)
            .putLong(namespace.getMostSignificantBits())
            .putLong(namespace.getLeastSignificantBits())
            .array());
        byte[] hash = sha1.digest(name.getBytes(StandardCharsets.UTF_8));
        hash[6] = (byte) ((hash[6] & 0x0f) | 0x50);
        hash[8] = (byte) ((hash[8] & 0x3f) | 0x80);
        ByteBuffer bits = ByteBuffer.wrap(hash, 0, 16);
        return new UUID(bits.getLong(), bits.getLong());
    }
}
