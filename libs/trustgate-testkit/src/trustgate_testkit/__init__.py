"""Test helpers shared by every TrustGate package's tests: a dev-only distribution, never a
dependency of the shipped ones.

- `trustgate_testkit.fixtures`: the pytest plugin with the shared infrastructure fixtures;
- `trustgate_testkit.otlp`: an OTLP collector stand-in;
- `trustgate_testkit.admin`, `trustgate_testkit.telemetry`: each service run on a port;
- `trustgate_testkit.proxy`: provider mocks, SDK helpers, config on the bus, the proxy
  served in-loop.

Load the pytest plugin from a conftest.py::

    pytest_plugins = ["trustgate_testkit.fixtures"]

`wait_for` and `NatsServer` can also be imported directly.
"""

from trustgate_testkit.fixtures import (
    Infra,
    NatsServer,
    create_database,
    drop_database,
    wait_for,
)

__all__ = ["Infra", "NatsServer", "create_database", "drop_database", "wait_for"]
