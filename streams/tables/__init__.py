"""Pure state transitions: `decide(state, event, now) -> Decision`, free of Kafka, Faust and HTTP."""
