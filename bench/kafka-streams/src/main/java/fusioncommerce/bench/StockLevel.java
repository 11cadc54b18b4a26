package fusioncommerce.bench;

import java.util.LinkedHashMap;
import java.util.Map;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonProperty;

/** streams.models.StockLevel: on hand, holds by order id, the latest adjustment outcomes by id. */
@JsonIgnoreProperties(ignoreUnknown = true)
final class StockLevel {
    public String tenant;
    public String sku;
    @JsonProperty("on_hand")
    public long onHand;
    public Map<String, Long> holds = new LinkedHashMap<>();
    @JsonProperty("recent_adjustments")
    public Map<String, Outcome> recentAdjustments = new LinkedHashMap<>();

    StockLevel() {
    }

    StockLevel(String tenant, String sku) {
        this.tenant = tenant;
        this.sku = sku;
    }

    long reserved() {
        long sum = 0;
        for (long units : holds.values()) {
            sum += units;
        }
        return sum;
    }

    long available() {
        return onHand - reserved();
    }

    @JsonIgnoreProperties(ignoreUnknown = true)
    static final class Outcome {
        public boolean applied;
        public String reason;

        Outcome() {
        }

        Outcome(boolean applied, String reason) {
            this.applied = applied;
            this.reason = reason;
        }
    }
}
