"""Pure state transitions: `decide(state, event, now) -> Decision`, free of Kafka, the runtime and HTTP."""
