"""Test helpers shipped with the proxy (as ``trustgate_core.testing`` is with core): a mock
OpenAI upstream, config published straight to the bus, and the proxy served in-loop. Used by
the proxy's tests and by ``bench/``. Nothing here runs at import."""
