# The two commands of the README are `make run` and `make test`; the rest are their parts.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install kafka stripe-mock druid broker token trigger carrier unit bench-orders clean
.PHONY: prometheus metrics webhook-replay webhook-receiver

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

# Broker, stripe-mock, SMTP server, worker, notifications and webhooks workers and gateway under honcho; with
# KAFKA_BOOTSTRAP_SERVERS set no local broker, with STRIPE_API_BASE set no stripe-mock, with SMTP_URL
# set no SMTP server (mail lands in .data/mail as .eml files otherwise). In development mode
# (FC_DEVELOPMENT=1 unless set): unset secrets are the repository's, which the worker and the gateway say in their first lines.
run: kafka stripe-mock
	@export FC_DEVELOPMENT=$${FC_DEVELOPMENT:-1}; \
	if [ "$$FC_DEVELOPMENT" = 1 ]; then echo "[run] development mode (FC_DEVELOPMENT=1): unset secrets are the" \
		"repository's development JWT and webhook secrets; never use this outside a laptop"; fi; \
	processes="worker notifications webhooks gateway"; \
	if [ -z "$$SMTP_URL" ]; then processes="smtp $$processes"; fi; \
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

# Prometheus built with Go into .cache/prometheus, its web UI with npm (devtools/prometheus.py pins both).
prometheus: install
	@$(PY) -m devtools.prometheus fetch

# Prometheus on 127.0.0.1:9090 (FC_PROMETHEUS_PORT) beside `make run`: scrapes the gateway and the workers'
# /metrics every 5 s with the read credential of the JWT secret (development mode unless FC_DEVELOPMENT is
# set, as `make token`); data in .data/prometheus. dashboards/fusioncommerce.json is the Grafana dashboard.
metrics: install
	@FC_DEVELOPMENT=$${FC_DEVELOPMENT:-1} exec $(PY) -m devtools.prometheus run

# make trigger EVENT=payment_intent.amount_capturable_updated ORDER=<order id> TOKEN=<the customer's JWT>
# Signed with STRIPE_WEBHOOK_SECRET, the development one unless set (as `make run`).
trigger: install
	@FC_DEVELOPMENT=$${FC_DEVELOPMENT:-1} $(PY) -m devtools.stripe_trigger $(EVENT) --order $(ORDER) --token $(TOKEN) \
		$(TRIGGER_ARGS)

# make carrier TRACKING=<tracking number> STATUS=in_transit: a signed EasyPost tracker update (STATUS is
# EasyPost's: pre_transit, in_transit, out_for_delivery, delivered, return_to_sender, failure, ...).
# Signed with CARRIER_WEBHOOK_SECRET, the development one unless set (as `make run`).
carrier: install
	@FC_DEVELOPMENT=$${FC_DEVELOPMENT:-1} $(PY) -m devtools.carrier_trigger $(TRACKING) $(or $(STATUS),in_transit) \
		$(CARRIER_ARGS)

# make token ROLE=vendor TENANT=acme SUB=alice; an admin's token says MFA (amr pwd, mfa) unless MFA=no.
# Signed with GATEWAY_JWT_SECRET, the development one unless set (as `make run`), with
# GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE as iss and aud when set.
token: install
	@FC_DEVELOPMENT=$${FC_DEVELOPMENT:-1} $(PY) -m gateway.tokens --role $(or $(ROLE),customer) \
		--tenant $(or $(TENANT),acme) --sub $(or $(SUB),alice) $(if $(filter no 0 false,$(MFA)),--no-mfa)

# make webhook-receiver SECRET=whsec_... [FAIL=2]: a development endpoint on 127.0.0.1:8099 that prints
# each delivery and checks its signature (devtools/webhook_receiver.py).
webhook-receiver: install
	@$(PY) -m devtools.webhook_receiver --secret $(SECRET) $(if $(FAIL),--fail $(FAIL))

# make webhook-replay TENANT=acme ENDPOINT=<id> SINCE=6h [TYPE=OrderStatusChanged]: the tenant's
# events since then delivered to the endpoint again (streams/webhook_replay.py).
webhook-replay: install
	@$(PY) -m streams.webhook_replay --tenant $(or $(TENANT),acme) --endpoint $(ENDPOINT) --since $(or $(SINCE),1h) \
		$(if $(TYPE),--type $(TYPE))

clean:
	rm -rf .data

# Reservations/s of one worker beside a confluent-kafka loop and Kafka Streams on the same input, the
# broker's ceiling and orders end to end, medians of --runs (bench/README.md). BENCH_ARGS="--runs 1 ..."
.PHONY: bench
bench: kafka stripe-mock
	@$(PY) -m bench.run $(BENCH_ARGS)
