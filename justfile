# TrustGate developer recipes. Every recipe goes through scripts/dev.py, which creates
# and updates .venv first.

# a single node: embedded NATS and Postgres, admin and proxy
run *args:
    python3 scripts/dev.py run {{args}}

# local services, lint, type check and the whole test suite
test *args:
    python3 scripts/dev.py test {{args}}

# ruff and mypy only
lint:
    python3 scripts/dev.py lint

# make sure Postgres, Redis, NATS (JetStream) and a Kafka-protocol broker are up locally
services:
    python3 scripts/services.py ensure

# write the bus's AsyncAPI document
asyncapi:
    python3 scripts/dev.py install
    .venv/bin/trustgate asyncapi --out deploy/asyncapi.yaml
