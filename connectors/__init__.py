"""Adapters to the outside world: Kafka producers for non-Faust writers, later Stripe and Druid."""
