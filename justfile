# TrustGate developer recipes. Every recipe goes through scripts/dev.py, which creates
# and updates .venv first.

# a single node: embedded NATS and Postgres, admin and proxy
run *args:
    python3 scripts/dev.py run {{args}}

# local services, lint, type check and the whole test suite
test *args:
    python3 scripts/dev.py test {{args}}

# ruff, mypy and the module-boundary contracts (lint-imports) only
lint:
    python3 scripts/dev.py lint

# make sure Postgres, Redis, NATS (JetStream) and a Kafka-protocol broker are up locally
services:
    python3 scripts/services.py ensure

# the container image (as docker-compose.yml names it), with the commit and build date
# that GET /__/version reports
image tag="trustgate:local":
    docker build -f deploy/Dockerfile -t {{tag}} \
        --build-arg TRUSTGATE_COMMIT=$(git rev-parse HEAD) \
        --build-arg TRUSTGATE_BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) .

# write the bus's AsyncAPI document
asyncapi:
    python3 scripts/dev.py install
    .venv/bin/trustgate asyncapi --out deploy/asyncapi.yaml
