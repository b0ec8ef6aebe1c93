"""The `trustgate` command: one entry point, a subcommand per service."""
