"""``trustgate receipts verify FILE``: check the receipts of a file of events, offline.

FILE holds JSON lines: exported events (the telemetry file sink's
``.trustgate/telemetry/events.jsonl``, Kafka's values) or request events as the proxy
publishes them. For each event with a ``receipt``, the signature must verify under the
key its ``kid`` names AND the signed record must equal the record rebuilt from the
event's own fields, so editing the receipt or the event beside it (a token count, a
cost) fails. The keys come from JWKS documents (``--jwks``: a file, offline, or a URL;
repeatable) or from the admin (``--admin-url``: each gateway's public JWKS).

Exit status: 0 when no event failed, 1 when one did, 2 when the command could not run
(no such file, no keys).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from trustgate_core.receipts.keys import public_key_of, thumbprint
from trustgate_core.receipts.record import (
    RECORD_KEYS,
    is_exported,
    record_of_exported,
    record_of_request,
)
from trustgate_core.receipts.signing import ReceiptInvalid, check_receipt

FETCH_TIMEOUT = 10.0


class UsageError(Exception):
    """The command cannot run (exit 2)."""


@dataclass
class Summary:
    verified: int = 0
    unsigned: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    other_gateways: int = 0  # events left out by --gateway

    def as_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "failed": self.failed,
            "unsigned": len(self.unsigned),
            "unsigned_lines": self.unsigned,
            "other_gateways": self.other_gateways,
        }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="trustgate receipts", description="Check the signed usage receipts of events."
    )
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="verify the receipts in a JSON-lines file of events")
    v.add_argument("file", help="JSON lines: exported events or request events ('-': stdin)")
    v.add_argument(
        "--jwks",
        action="append",
        default=[],
        metavar="PATH_OR_URL",
        help="a JWKS document with the gateways' public keys (repeatable)",
    )
    v.add_argument(
        "--admin-url",
        default=None,
        help="fetch each gateway's public JWKS from this admin instead of --jwks",
    )
    v.add_argument(
        "--gateway",
        action="append",
        default=[],
        metavar="ID",
        help="check only this gateway's events (repeatable): one file holds every gateway's",
    )
    v.add_argument("--json", action="store_true", help="print the summary as JSON")
    v.add_argument("--require", action="store_true", help="an event without a receipt fails")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        lines = _read_lines(args.file)
        events = list(_decode(lines))
        others = 0
        if args.gateway:
            wanted = set(args.gateway)
            kept = [(n, e) for n, e in events if e is None or e.get("gateway_id") in wanted]
            events, others = kept, len(events) - len(kept)
        keys = _load_keys(args.jwks, args.admin_url, events)
    except UsageError as exc:
        print(f"receipts verify: {exc}", file=sys.stderr)
        return 2
    summary = verify_events(events, keys, require=args.require)
    summary.other_gateways = others
    _print(summary, as_json=args.json)
    return 1 if summary.failed else 0


# -- the checks ------------------------------------------------------------------------------
def verify_events(
    events: Iterable[tuple[int, Any]],
    keys: Mapping[str | None, Mapping[str, Ed25519PublicKey]],
    *,
    require: bool = False,
) -> Summary:
    """Check each ``(line number, decoded event)``. ``keys`` maps a gateway id to its keys
    (``kid`` → public key); the ``None`` entry holds keys trusted for any gateway."""
    summary = Summary()
    for line, event in events:
        reason = _check(event, keys, summary, line, require)
        if reason is not None:
            trace = event.get("trace_id") if isinstance(event, Mapping) else None
            summary.failed.append({"line": line, "trace_id": trace, "reason": reason})
    return summary


def _check(
    event: Any,
    keys: Mapping[str | None, Mapping[str, Ed25519PublicKey]],
    summary: Summary,
    line: int,
    require: bool,
) -> str | None:
    if not isinstance(event, Mapping):
        return "not a JSON object"
    receipt = event.get("receipt")
    if receipt is None:
        summary.unsigned.append(line)
        return "no receipt" if require else None
    gateway = str(event.get("gateway_id"))
    trusted = {**keys.get(None, {}), **keys.get(gateway, {})}
    try:
        signed = check_receipt(receipt, trusted)
        own = record_of_exported(event) if is_exported(event) else record_of_request(event)
    except ReceiptInvalid as exc:
        return str(exc)
    except (TypeError, ValueError, AttributeError) as exc:
        return f"the event is malformed ({exc})"
    differs = _differences(signed, own)
    if differs:
        return "the event differs from its receipt: " + "; ".join(differs)
    summary.verified += 1
    return None


def _differences(signed: Mapping[str, Any], own: Mapping[str, Any]) -> list[str]:
    """What differs between the signed record and the event's, field by field."""
    out: list[str] = []
    for key in sorted(set(RECORD_KEYS) | set(signed)):
        a, b = signed.get(key), own.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    out.append(f"{key}.{sub}: {a.get(sub)!r} signed, {b.get(sub)!r} in the event")
        elif a != b:
            out.append(f"{key}: {a!r} signed, {b!r} in the event")
    return out


# -- input -----------------------------------------------------------------------------------
def _read_lines(name: str) -> list[str]:
    if name == "-":
        return sys.stdin.read().splitlines()
    try:
        return Path(name).read_text("utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from exc


def _decode(lines: Iterable[str]) -> Iterable[tuple[int, Any]]:
    """``(line number, decoded event)``, blank lines skipped; an undecodable line is kept
    as ``None`` (it fails: a file of receipts is not to be silently shortened)."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except ValueError:
            yield number, None


def _load_keys(
    sources: Sequence[str], admin_url: str | None, events: Sequence[tuple[int, Any]]
) -> dict[str | None, dict[str, Ed25519PublicKey]]:
    if not sources and not admin_url:
        raise UsageError("name the public keys: --jwks PATH_OR_URL or --admin-url URL")
    keys: dict[str | None, dict[str, Ed25519PublicKey]] = {None: {}}
    for source in sources:
        keys[None].update(parse_jwks(_fetch(source)))
    if admin_url:
        for gateway in _signed_gateways(events):
            url = f"{admin_url.rstrip('/')}/.well-known/trustgate/receipts/{gateway}/jwks.json"
            keys[gateway] = parse_jwks(_fetch(url, missing_ok=True))
    return keys


def _signed_gateways(events: Iterable[tuple[int, Any]]) -> set[str]:
    return {
        str(e.get("gateway_id"))
        for _, e in events
        if isinstance(e, Mapping) and e.get("receipt") is not None
    }


def _fetch(source: str, *, missing_ok: bool = False) -> Any:
    """A JWKS document from a URL or a file (``{"keys": []}`` for a gateway the admin
    does not know, with ``missing_ok``: its receipts then fail as signed by unknown keys)."""
    try:
        if source.startswith(("http://", "https://")):
            request = urllib.request.Request(source, headers={"Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as answer:
                    return json.loads(answer.read())
            except urllib.error.HTTPError as exc:
                if missing_ok and exc.code == 404:
                    return {"keys": []}
                raise UsageError(f"cannot fetch {source}: HTTP {exc.code}") from exc
        return json.loads(Path(source).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load the keys from {source}: {exc}") from exc


def parse_jwks(doc: Any) -> dict[str, Ed25519PublicKey]:
    """``kid`` → public key of a JWKS's Ed25519 keys. A key's ``kid`` must be its
    thumbprint: a JWKS cannot make a key answer for another's name."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
        raise UsageError("a JWKS is an object with a 'keys' list")
    out: dict[str, Ed25519PublicKey] = {}
    for key in doc["keys"]:
        if not isinstance(key, Mapping) or key.get("kty") != "OKP" or key.get("crv") != "Ed25519":
            continue
        x = key.get("x")
        if not isinstance(x, str):
            continue
        kid = thumbprint(x)
        if key.get("kid", kid) != kid:
            raise UsageError(f"the JWKS key {key.get('kid')} is not its thumbprint {kid}")
        try:
            out[kid] = public_key_of(x)
        except ValueError as exc:
            raise UsageError(f"the JWKS key {kid} is not an Ed25519 public key") from exc
    return out


# -- output ----------------------------------------------------------------------------------
def _print(summary: Summary, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.as_json(), indent=2))
        return
    for failure in summary.failed:
        trace = f" (trace {failure['trace_id']})" if failure["trace_id"] else ""
        print(f"line {failure['line']}{trace}: FAILED: {failure['reason']}")
    others = f", other gateways: {summary.other_gateways}" if summary.other_gateways else ""
    print(
        f"verified: {summary.verified}, failed: {len(summary.failed)},"
        f" unsigned: {len(summary.unsigned)}{others}"
    )
