"""`trustgate <service>`: starts one service, or all of them with `run`.

Each subcommand imports its service lazily, so a deployment that ships only one service
package can still use this command for it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _admin(args: argparse.Namespace) -> int:
    from trustgate_admin import cli as admin_cli

    return admin_cli.main(args.action, args)


def _proxy(args: argparse.Namespace) -> int:
    try:
        from trustgate_proxy.main import serve
    except ImportError:
        print("trustgate: the proxy package (trustgate-proxy) is not installed", file=sys.stderr)
        return 2
    serve()
    return 0


def _telemetry(args: argparse.Namespace) -> int:
    try:
        from trustgate_telemetry.main import serve
    except ImportError:
        print(
            "trustgate: the telemetry package (trustgate-telemetry) is not installed",
            file=sys.stderr,
        )
        return 2
    serve()
    return 0


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
    parser = argparse.ArgumentParser(prog="trustgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    admin = sub.add_parser("admin", help="the admin plane (configuration API, port 8080)")
    admin.add_argument(
        "action",
        nargs="?",
        default="serve",
        choices=["serve", "migrate", "republish", "token"],
        help="serve (default); migrate the database; re-emit every entity; print a token",
    )
    admin.add_argument("--ttl", type=int, default=3600, help="token lifetime in seconds")
    admin.set_defaults(func=_admin)

    proxy = sub.add_parser("proxy", help="the proxy plane (LLM traffic, port 8081)")
    proxy.set_defaults(func=_proxy)

    telemetry = sub.add_parser(
        "telemetry", help="request events to Kafka and OTLP (health and metrics, port 8083)"
    )
    telemetry.set_defaults(func=_telemetry)

    run = sub.add_parser("run", help="a single node: embedded NATS and Postgres, all planes")
    run.add_argument("--data-dir", default=None, help="where embedded services keep data")
    run.set_defaults(func=_run)

    asyncapi = sub.add_parser("asyncapi", help="print the AsyncAPI document of the bus")
    asyncapi.add_argument("--format", choices=["yaml", "json"], default="yaml")
    asyncapi.add_argument("--out", default=None)
    asyncapi.set_defaults(func=_asyncapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
