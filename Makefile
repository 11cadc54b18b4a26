# The two commands of the README are `make run` and `make test`; the rest are their parts.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install kafka stripe-mock druid broker token trigger unit bench-orders clean

$(STAMP): pyproject.toml
	@echo "[install] creating $(VENV) and installing the project with its test dependencies ..."
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)
	@echo "[install] done"

install: $(STAMP)

kafka: install
	@$(PY) -m devtools.kafka fetch

# stripe-mock built with Go into .cache/stripe-mock (the version is pinned in devtools/stripe_mock.py).
stripe-mock: install
	@$(PY) -m devtools.stripe_mock fetch

# Broker, stripe-mock, worker and gateway under honcho; with KAFKA_BOOTSTRAP_SERVERS set no local
# broker, with STRIPE_API_BASE set no stripe-mock.
run: kafka stripe-mock
	@processes="worker gateway"; \
	if [ -z "$$STRIPE_API_BASE" ]; then processes="stripe-mock $$processes"; fi; \
	if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then processes="broker $$processes"; fi; \
	exec $(VENV)/bin/honcho start -f Procfile $$processes

# The whole suite against a throwaway broker on free ports (or KAFKA_BOOTSTRAP_SERVERS).
test: kafka stripe-mock
	@$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "[test] pytest collected no tests: the suite is missing or filtered away"; exit 1; fi; \
	exit $$status

unit: install
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

broker: kafka
	@exec $(PY) -m devtools.kafka run

# Orders settled per second end to end and latency at half that rate (real broker, one worker).
bench-orders: kafka stripe-mock
	@$(PY) -m bench.orders_e2e $(BENCH_ARGS)

# Apache Druid from Maven Central beside `make run`'s system: ZooKeeper, coordinator+overlord, broker,
# historical, indexer, router on 127.0.0.1; then the supervisors of the analytical topics.
druid: install
	@$(PY) -m devtools.druid run --submit-supervisors

# make trigger EVENT=payment_intent.amount_capturable_updated ORDER=<order id> TOKEN=<the customer's JWT>
trigger: install
	@$(PY) -m devtools.stripe_trigger $(EVENT) --order $(ORDER) --token $(TOKEN) $(TRIGGER_ARGS)

# make token ROLE=vendor TENANT=acme SUB=alice
token: install
	@$(PY) -m gateway.tokens --role $(or $(ROLE),customer) --tenant $(or $(TENANT),acme) --sub $(or $(SUB),alice)

clean:
	rm -rf .data

# Reservations/s of one worker beside a confluent-kafka loop and Kafka Streams on the same input, the
# broker's ceiling and orders end to end, medians of --runs (bench/README.md). BENCH_ARGS="--runs 1 ..."
.PHONY: bench
bench: kafka stripe-mock
	@$(PY) -m bench.run $(BENCH_ARGS)
