"""TrustGate telemetry: request events fanned out to Kafka and OTLP."""

__version__ = "0.1.0"
