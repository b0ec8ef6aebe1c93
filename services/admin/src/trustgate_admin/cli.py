"""`trustgate admin [serve|migrate|republish|token|audit verify]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from trustgate_admin.settings import AdminSettings


def main(action: str, args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = AdminSettings()
    if action == "serve":
        from trustgate_admin.main import serve

        serve(settings)
        return 0
    if action == "token":
        return _token(settings, args)
    if action == "migrate":
        from trustgate_admin.adapters.db.engine import create_engine
        from trustgate_admin.adapters.db.migrate import migrate

        async def _migrate() -> None:
            engine = create_engine(settings.dsn)
            try:
                await migrate(engine)
            finally:
                await engine.dispose()

        asyncio.run(_migrate())
        print("migrations applied")
        return 0
    if action == "audit":
        from trustgate_admin.governance.chain import verify_command

        return verify_command(settings, list(getattr(args, "rest", [])))
    if action == "republish":
        from trustgate_admin.services.republish import republish_all

        count = asyncio.run(republish_all(settings))
        print(f"queued {count} config events; the relay publishes them")
        return 0
    print(f"unknown action {action}", file=sys.stderr)
    return 2


def _token(settings: AdminSettings, args: argparse.Namespace) -> int:
    """Print a console token: a platform one unless ``--tenant``; ``--read-only`` GETs only."""
    from trustgate_admin.api.security import mint_admin_token
    from trustgate_core.durations import parse_duration

    try:
        ttl = parse_duration(args.ttl, bare="s")
    except ValueError:
        ttl = 0.0
    if not 0 < ttl <= settings.max_token_ttl:
        print(f"--ttl must be positive and at most {settings.max_token_ttl:g}s", file=sys.stderr)
        return 2
    token = mint_admin_token(
        settings.server_secret_key,
        ttl_seconds=int(ttl),
        subject=args.subject,
        tenant_id=args.tenant,
        read_only=args.read_only,
    )
    print(token)
    return 0
