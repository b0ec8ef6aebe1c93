"""TrustGate telemetry: request events fanned out to Kafka and OTLP."""
