"""Root conftest: the shared fixtures (real Postgres, Redis, NATS, Kafka) for every package."""

pytest_plugins = ["trustgate_testkit.fixtures"]
