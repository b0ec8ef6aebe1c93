"""The proxy's metrics and traces, recorded from finished calls off the request path.

The request handler only hands each finished `Call` to the event sink; `CallRecorder`
(a sink wrapper) keeps it in a bounded buffer that a background task (and every scrape of
``/metrics``) drains into `ProxyMetrics` aggregates and, when tracing is on, `CallTracer`
spans.
"""
