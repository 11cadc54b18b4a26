"""Adapters to the outside world: Kafka writers outside the workers, Stripe, Druid."""
