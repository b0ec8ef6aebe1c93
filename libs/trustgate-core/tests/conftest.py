pytest_plugins = ["trustgate_core.testing.fixtures"]
