"""`trustgate [command]`: starts one plane, or all of them with `run`; a bare `trustgate`
starts the proxy (as the Go TrustGate does).

Each subcommand imports its plane lazily, so a deployment that ships only one plane's
package can still use this command for it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from trustgate.planes import ADMIN, DEFAULT, PLANES, Plane


def _missing(plane: Plane) -> int:
    print(f"trustgate: {plane.not_installed}", file=sys.stderr)
    return 2


def _serve(plane: Plane) -> Callable[[argparse.Namespace], int]:
    def serve(args: argparse.Namespace) -> int:
        if not plane.installed():
            return _missing(plane)
        plane.serve()
        return 0

    return serve


def _admin(args: argparse.Namespace) -> int:
    if not ADMIN.installed():
        return _missing(ADMIN)
    from trustgate_admin import cli as admin_cli

    return admin_cli.main(args.action, args)


def _receipts(args: argparse.Namespace) -> int:
    from trustgate_core.receipts.verify import main as verify

    return verify(args.rest)


def _run(args: argparse.Namespace) -> int:
    from trustgate.run import run

    return run(data_dir=args.data_dir)


def _asyncapi(args: argparse.Namespace) -> int:
    from trustgate_core.asyncapi import render

    text = render(fmt=args.format)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustgate", usage="%(prog)s [-h] [command] ...", description=__doc__
    )
    parser.set_defaults(func=_serve(DEFAULT))
    sub = parser.add_subparsers(dest="command", metavar="command")
    for plane in PLANES:
        sub.add_parser(plane.name, help=plane.describe).set_defaults(func=_serve(plane))

    admin = sub.choices[ADMIN.name]
    admin.add_argument(
        "action",
        nargs="?",
        default="serve",
        choices=["serve", "migrate", "republish", "token", "audit"],
        help="serve (default); migrate the database; re-emit every entity; print a token;"
        " audit verify: check the hash-chained audit log",
    )
    admin.add_argument(
        "--ttl", default="3600", help="token lifetime: seconds or a duration (1h); at most 24h"
    )
    scope = admin.add_mutually_exclusive_group()
    scope.add_argument("--tenant", help="token: act for this tenant only")
    scope.add_argument(
        "--platform", action="store_true", help="token: an operator token over every tenant"
    )
    admin.add_argument("--read-only", action="store_true", help="token: GET only")
    admin.add_argument("--subject", default="admin", help="token: its sub (the audit's who)")
    admin.set_defaults(func=_admin)

    run = sub.add_parser("run", help="a single node: embedded NATS and Postgres, all planes")
    run.add_argument("--data-dir", default=None, help="where embedded services keep data")
    run.set_defaults(func=_run)

    receipts = sub.add_parser(
        "receipts", help="receipts verify FILE: check the signed usage receipts of exported events"
    )
    receipts.set_defaults(func=_receipts)

    asyncapi = sub.add_parser("asyncapi", help="print the AsyncAPI document of the bus")
    asyncapi.add_argument("--format", choices=["yaml", "json"], default="yaml")
    asyncapi.add_argument("--out", default=None)
    asyncapi.set_defaults(func=_asyncapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The commands that parse their own options (``admin audit ...``, ``receipts ...``)
    get the rest of the command line as it was written. A setting the environment gets
    wrong ends the command with what is wrong, exit 2 and no traceback (the settings
    classes never echo a value: it may be a secret)."""
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except ValidationError as bad:
        print(f"trustgate: invalid settings: {_settings_errors(bad)}", file=sys.stderr)
        return 2


def _settings_errors(bad: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or bad.title}: {error['msg']}"
        for error in bad.errors(include_input=False, include_url=False)
    )


def _dispatch(argv: list[str]) -> int:
    parser = build_parser()
    for prefix in (["admin", "audit"], ["receipts"]):
        if argv[: len(prefix)] == prefix:  # their own parsers, --help included
            args = parser.parse_args(prefix)
            args.rest = argv[len(prefix) :]
            return int(args.func(args) or 0)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
