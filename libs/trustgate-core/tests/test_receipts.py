"""Usage receipts: the canonical record, the derived keys, signing and verifying."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from trustgate_core.events.requests import decode_request_event
from trustgate_core.receipts.keys import ReceiptKey, b64url, b64url_decode, public_x, thumbprint
from trustgate_core.receipts.record import canonical_bytes, record_of_request, utc_text
from trustgate_core.receipts.signing import ReceiptInvalid, check_receipt, sign_record
from trustgate_core.receipts.verify import main
from trustgate_core.telemetry.event import export_event

SECRET = "a-test-secrets-key-of-at-least-thirty-two-bytes"
GATEWAY = UUID("0193a5b0-0000-7000-8000-000000000001")


def payload(**changes: Any) -> dict[str, Any]:
    """A request event as the proxy builds it (UUIDs, datetimes, floats)."""
    started = datetime(2026, 12, 7, 5, 43, 21, 123456, tzinfo=UTC)
    doc: dict[str, Any] = {
        "schema_version": 1,
        "kind": "llm",
        "trace_id": uuid4().hex,
        "gateway_id": GATEWAY,
        "tenant_id": "acme",
        "consumer_id": UUID("0193a5b0-0000-7000-8000-000000000002"),
        "method": "POST",
        "path": "/v1/chat/completions",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": 200,
        "error_kind": None,
        "timings": {"total_ms": 12.5, "gateway_ms": 0.4},
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        "cost": {
            "prompt_usd": 1.65e-06,
            "completion_usd": 4.2e-06,
            "cached_usd": 0.0,
            "total_usd": 5.85e-06,
            "currency": "USD",
        },
        "started_at": started,
        "ended_at": datetime(2026, 12, 7, 5, 43, 21, 135956, tzinfo=UTC),
    }
    doc.update(changes)
    return doc


def signed(key: ReceiptKey, **changes: Any) -> dict[str, Any]:
    doc = payload(**changes)
    doc["receipt"] = sign_record(key, record_of_request(doc))
    return doc


@pytest.fixture(scope="module")
def key() -> ReceiptKey:
    return ReceiptKey.derive(SECRET, GATEWAY, 1)


# -- the record and its canonical bytes --------------------------------------------------------
def test_canonical_bytes_are_sorted_compact_utf8_and_stable() -> None:
    record = {"b": 1, "a": {"z": None, "y": 'é\n"x"'}, "c": [2, "3"]}
    assert (
        canonical_bytes(record) == '{"a":{"y":"é\\n\\"x\\"","z":null},"b":1,"c":[2,"3"]}'.encode()
    )
    reordered = {"c": [2, "3"], "a": {"y": 'é\n"x"', "z": None}, "b": 1}
    assert canonical_bytes(reordered) == canonical_bytes(record)


def test_canonical_bytes_escape_every_character_as_rfc_8785_does() -> None:
    text = "".join(chr(i) for i in range(0x80)) + "é\u2028\u2029\ue000\uffff😀"
    record = {"s": text, "n": {"big": 2**62, "neg": -1, "none": None}, "B": 1, "a": 2}
    reference = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_bytes(record) == reference.encode("utf-8")
    assert b"\\u001f" in canonical_bytes(record) and b"\\n" in canonical_bytes(record)


def test_a_record_refuses_floats() -> None:
    with pytest.raises(TypeError):
        canonical_bytes({"cost": 0.1})


def test_the_record_has_no_floats_and_exact_text_for_cost_and_times() -> None:
    record = record_of_request(payload())
    assert record["cost"] == {"total_usd": "0.00000585", "currency": "USD"}
    assert record["started_at"] == "2026-12-07T05:43:21.123456Z"
    assert record["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "cached_input_tokens": None,
    }
    assert record["gateway_id"] == str(GATEWAY)
    canonical_bytes(record)  # no float anywhere


def test_the_record_is_the_same_from_the_payload_its_json_and_its_exported_form() -> None:
    from trustgate_core.receipts.record import record_of_exported

    doc = payload()
    as_json = json.loads(orjson.dumps(doc))
    event = decode_request_event(orjson.dumps(doc))
    exported = json.loads(orjson.dumps(export_event(event).model_dump(mode="json")))
    assert record_of_request(doc) == record_of_request(as_json) == record_of_exported(exported)


def test_times_are_utc_with_microseconds_whatever_their_zone() -> None:
    assert utc_text("2026-12-07T06:43:21+01:00") == "2026-12-07T05:43:21.000000Z"
    assert utc_text("2026-12-07T05:43:21.5Z") == "2026-12-07T05:43:21.500000Z"


# -- keys -----------------------------------------------------------------------------------
def test_the_okp_thumbprint_is_rfc_8037s_example() -> None:
    # RFC 8037 appendix A.1-A.3
    private = Ed25519PrivateKey.from_private_bytes(
        b64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
    )
    x = public_x(private.public_key())
    assert x == "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    assert thumbprint(x) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    # A.4: Ed25519 is deterministic, so the example signature is reproduced exactly
    sig = private.sign(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc")
    assert b64url(sig) == (
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    )


def test_a_gateways_key_is_derived_the_same_everywhere_and_differs_by_version_gateway_and_secret(
    key: ReceiptKey,
) -> None:
    again = ReceiptKey.derive(SECRET, GATEWAY, 1)
    assert (again.x, again.kid) == (key.x, key.kid)
    others = [
        ReceiptKey.derive(SECRET, GATEWAY, 2),
        ReceiptKey.derive(SECRET, uuid4(), 1),
        ReceiptKey.derive(SECRET + "-rotated", GATEWAY, 1),
    ]
    assert len({key.kid, *(k.kid for k in others)}) == 4
    assert key.jwk() == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": key.x,
        "kid": key.kid,
        "use": "sig",
        "alg": "EdDSA",
    }


# -- signing ----------------------------------------------------------------------------------
def test_a_receipt_verifies_under_its_key(key: ReceiptKey) -> None:
    doc = signed(key)
    record = check_receipt(doc["receipt"], {key.kid: key.private.public_key()})
    assert record == record_of_request(doc)


def test_a_changed_token_count_in_the_record_fails(key: ReceiptKey) -> None:
    receipt = copy.deepcopy(signed(key)["receipt"])
    receipt["record"]["usage"]["completion_tokens"] = 6
    with pytest.raises(ReceiptInvalid, match="does not verify"):
        check_receipt(receipt, {key.kid: key.private.public_key()})


def test_another_key_fails(key: ReceiptKey) -> None:
    other = ReceiptKey.derive(SECRET, GATEWAY, 2)
    receipt = signed(key)["receipt"]
    with pytest.raises(ReceiptInvalid, match="unknown key"):
        check_receipt(receipt, {other.kid: other.private.public_key()})
    forged = {**receipt, "kid": other.kid}  # claiming another key's name does not help
    with pytest.raises(ReceiptInvalid, match="does not verify"):
        check_receipt(forged, {other.kid: other.private.public_key()})


# -- the command ------------------------------------------------------------------------------
def write_events(path: Path, docs: list[dict[str, Any]], exported: bool = True) -> Path:
    lines = []
    for doc in docs:
        if exported:
            event = decode_request_event(orjson.dumps(doc))
            lines.append(orjson.dumps(export_event(event).model_dump(mode="json")).decode())
        else:
            lines.append(orjson.dumps(doc).decode())
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jwks(path: Path, *keys: ReceiptKey) -> Path:
    path.write_text(json.dumps({"keys": [k.jwk() for k in keys]}))
    return path


def test_verify_passes_a_file_of_signed_exported_events(
    key: ReceiptKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_events(tmp_path / "events.jsonl", [signed(key), signed(key), payload()])
    jwks = write_jwks(tmp_path / "jwks.json", key)
    assert main(["verify", str(events), "--jwks", str(jwks)]) == 0
    assert "verified: 2, failed: 0, unsigned: 1" in capsys.readouterr().out
    assert main(["verify", str(events), "--jwks", str(jwks), "--require"]) == 1


def test_verify_passes_raw_request_events(key: ReceiptKey, tmp_path: Path) -> None:
    events = write_events(tmp_path / "raw.jsonl", [signed(key)], exported=False)
    assert main(["verify", str(events), "--jwks", str(write_jwks(tmp_path / "k", key))]) == 0


def test_a_token_count_changed_in_the_event_beside_its_receipt_fails_naming_the_line(
    key: ReceiptKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = write_events(tmp_path / "events.jsonl", [signed(key), signed(key)])
    lines = events.read_text().splitlines()
    second = json.loads(lines[1])
    second["usage"]["completion_tokens"] = 70
    lines[1] = json.dumps(second)
    events.write_text("\n".join(lines) + "\n")
    jwks = write_jwks(tmp_path / "jwks.json", key)
    assert main(["verify", str(events), "--jwks", str(jwks), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["verified"] == 1
    [failure] = summary["failed"]
    assert failure["line"] == 2 and "usage.completion_tokens: 7 signed, 70" in failure["reason"]


def test_a_token_count_changed_in_the_receipt_fails(key: ReceiptKey, tmp_path: Path) -> None:
    doc = signed(key)
    doc["receipt"]["record"]["usage"]["prompt_tokens"] = 1
    doc["usage"] = {**doc["usage"], "prompt_tokens": 1}  # both edited: the signature catches it
    events = write_events(tmp_path / "events.jsonl", [doc])
    assert main(["verify", str(events), "--jwks", str(write_jwks(tmp_path / "k", key))]) == 1


def test_verify_with_the_wrong_keys_fails_and_without_keys_cannot_run(
    key: ReceiptKey, tmp_path: Path
) -> None:
    events = write_events(tmp_path / "events.jsonl", [signed(key)])
    other = write_jwks(tmp_path / "other.json", ReceiptKey.derive(SECRET, GATEWAY, 9))
    assert main(["verify", str(events), "--jwks", str(other)]) == 1
    assert main(["verify", str(events)]) == 2
    assert main(["verify", str(tmp_path / "absent.jsonl"), "--jwks", str(other)]) == 2


def test_a_jwks_cannot_name_a_key_after_another(key: ReceiptKey, tmp_path: Path) -> None:
    events = write_events(tmp_path / "events.jsonl", [signed(key)])
    liar = ReceiptKey.derive(SECRET, GATEWAY, 3).jwk() | {"kid": key.kid}
    (tmp_path / "liar.json").write_text(json.dumps({"keys": [liar]}))
    assert main(["verify", str(events), "--jwks", str(tmp_path / "liar.json")]) == 2


def test_an_undecodable_line_fails(key: ReceiptKey, tmp_path: Path) -> None:
    events = write_events(tmp_path / "events.jsonl", [signed(key)])
    events.write_text(events.read_text() + "{not json\n")
    assert main(["verify", str(events), "--jwks", str(write_jwks(tmp_path / "k", key))]) == 1


def test_gateway_checks_one_gateways_events_in_a_file_that_holds_every_gateways(
    key: ReceiptKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other_gateway = UUID("0193a5b0-0000-7000-8000-000000000002")
    theirs = ReceiptKey.derive(SECRET, other_gateway, 1)
    docs = [signed(key), signed(theirs, gateway_id=other_gateway), signed(key)]
    events = write_events(tmp_path / "events.jsonl", docs)
    jwks = str(write_jwks(tmp_path / "jwks.json", key))  # this gateway's keys only
    assert main(["verify", str(events), "--jwks", jwks]) == 1  # the other's: unknown key
    capsys.readouterr()
    assert main(["verify", str(events), "--jwks", jwks, "--gateway", str(GATEWAY)]) == 0
    assert "verified: 2, failed: 0, unsigned: 0, other gateways: 1" in capsys.readouterr().out
