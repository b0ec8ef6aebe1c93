"""Test helpers for the proxy: provider mocks speaking each provider's wire format, the
official SDKs as clients, config published straight to the bus, and the proxy served
in-loop. Used by the proxy's tests, cross-service tests and ``bench/``. Nothing here runs at
import."""
