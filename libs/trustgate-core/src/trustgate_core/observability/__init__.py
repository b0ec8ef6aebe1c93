"""Observability helpers every service shares: OpenTelemetry tracing (`tracing`) and
Prometheus metrics rendering (`metrics`).

Nothing here does anything at import: a service calls `tracing.setup_tracing` and builds its
own `prometheus_client.CollectorRegistry` in its composition root. OpenTelemetry itself is
imported only when tracing is configured, so a service without an OTLP endpoint never
loads it.
"""
