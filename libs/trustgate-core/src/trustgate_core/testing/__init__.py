"""Test helpers shared by every TrustGate package.

Load the pytest plugin from a conftest.py::

    pytest_plugins = ["trustgate_core.testing.fixtures"]

`wait_for` and `NatsServer` can also be imported directly.
"""

from trustgate_core.testing.fixtures import (
    Infra,
    NatsServer,
    create_database,
    drop_database,
    wait_for,
)

__all__ = ["Infra", "NatsServer", "create_database", "drop_database", "wait_for"]
