"""Unit tests of the core contracts: secrets, config events, the replica state, ids."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
import yaml
from cryptography.exceptions import InvalidTag

from trustgate_core.asyncapi import render
from trustgate_core.crypto import SecretBox, find_masked, mask, mask_fields, merge_masked
from trustgate_core.events import (
    AuthEvent,
    ConsumerEvent,
    GatewayEvent,
    config_subject,
    decode_config_event,
    encode_event,
    parse_config_subject,
)
from trustgate_core.ids import consumer_slug, hash_api_key, new_api_key, uuid7
from trustgate_core.models import Auth, Consumer, Gateway
from trustgate_core.replica import ReplicaState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BOX = SecretBox("k" * 32)


def test_sealed_secrets_open_only_with_the_key_and_keep_non_secret_fields_readable() -> None:
    doc = {
        "type": "aws",
        "aws": {
            "region": "eu-west-1",
            "access_key_id": "AKIA",
            "secret_access_key": "s3cr3t-value",
        },
    }
    sealed = BOX.seal_fields(doc)
    assert sealed["aws"]["region"] == "eu-west-1"
    assert sealed["aws"]["secret_access_key"].startswith("tgs1:")
    assert "s3cr3t-value" not in str(sealed)
    assert BOX.open_fields(sealed) == doc
    with pytest.raises(InvalidTag):
        SecretBox("other" * 8).open_fields(sealed)


def test_header_maps_are_sealed_value_by_value() -> None:
    sealed = BOX.seal_fields(
        {"url": "https://x", "headers": {"Authorization": "Bearer abcdefghijk"}}
    )
    assert sealed["url"] == "https://x"
    assert BOX.open(sealed["headers"]["Authorization"]) == "Bearer abcdefghijk"


def test_masking_shows_only_the_last_four_and_masked_updates_keep_the_stored_value() -> None:
    assert mask("sk-1234567890") == "***7890"
    assert mask("short") == "***"
    sealed = BOX.seal_fields({"api_key": {"api_key": "sk-1234567890"}})
    shown = mask_fields(BOX, sealed)
    assert shown == {"api_key": {"api_key": "***7890"}}
    assert find_masked(shown) == "api_key.api_key"
    assert merge_masked(shown, sealed) == sealed
    assert merge_masked({"api_key": {"api_key": "new-key-000"}}, sealed) == {
        "api_key": {"api_key": "new-key-000"}
    }


def test_api_keys_have_the_reference_format() -> None:
    key = new_api_key()
    assert key.startswith("ag_") and len(key) == 46 and "=" not in key
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert len(consumer_slug()) == 8 and consumer_slug().isalnum()
    a, b = uuid7(), uuid7()
    assert (a.version == 7 and a < b) or a.int >> 80 == b.int >> 80


def _gateway(gid, slug="demo", revision=1, op="upsert", status="active"):  # type: ignore[no-untyped-def]
    entity = Gateway(
        id=gid, gateway_id=gid, slug=slug, status=status, created_at=NOW, updated_at=NOW
    )
    return GatewayEvent(
        op=op,
        revision=revision,
        gateway_id=gid,
        entity_id=gid,
        occurred_at=NOW,
        entity=entity if op == "upsert" else None,
    )


def test_config_events_round_trip_through_their_wire_form() -> None:
    gid = uuid4()
    event = _gateway(gid)
    decoded = decode_config_event(encode_event(event))
    assert decoded == event
    subject = config_subject("gateway", gid, gid)
    assert parse_config_subject(subject) == (event.kind, str(gid), str(gid))


def test_replica_applies_only_newer_revisions_and_honours_tombstones() -> None:
    state = ReplicaState()
    gid = uuid4()
    assert state.apply(_gateway(gid, revision=5))
    assert not state.apply(_gateway(gid, slug="stale", revision=3))
    assert state.gateway_by_slug("demo") is not None and state.gateway_by_slug("stale") is None
    assert state.apply(_gateway(gid, slug="renamed", revision=6))
    assert state.gateway_by_slug("demo") is None
    assert state.gateway_by_host("renamed.llm.example.com:8081", "llm.example.com") is not None
    assert state.gateway_by_host("a.renamed.llm.example.com", "llm.example.com") is None
    assert state.apply(_gateway(gid, revision=7, op="delete"))
    assert state.gateway_by_slug("renamed") is None
    assert not state.apply(_gateway(gid, revision=6))  # an old upsert cannot resurrect it


def test_replica_indexes_consumers_by_slug_and_auths_by_key_hash() -> None:
    state = ReplicaState()
    gid, cid, aid = uuid4(), uuid4(), uuid4()
    key = new_api_key()
    auth = Auth(
        id=aid,
        gateway_id=gid,
        name="k",
        type="api_key",
        key_hash=hash_api_key(key),
        created_at=NOW,
        updated_at=NOW,
    )
    consumer = Consumer(
        id=cid,
        gateway_id=gid,
        name="app",
        slug="AbCd1234",
        auth_ids=[aid],
        created_at=NOW,
        updated_at=NOW,
    )
    state.apply(
        AuthEvent(
            op="upsert", revision=1, gateway_id=gid, entity_id=aid, occurred_at=NOW, entity=auth
        )
    )
    state.apply(
        ConsumerEvent(
            op="upsert", revision=2, gateway_id=gid, entity_id=cid, occurred_at=NOW, entity=consumer
        )
    )
    assert state.auth_by_key_hash(hash_api_key(key)) == auth
    assert state.consumer_by_slug(gid, "AbCd1234") == consumer
    state.apply(AuthEvent(op="delete", revision=3, gateway_id=gid, entity_id=aid, occurred_at=NOW))
    assert state.auth_by_key_hash(hash_api_key(key)) is None


def test_exported_asyncapi_document_matches_the_code() -> None:
    exported = Path(__file__).resolve().parents[3] / "deploy" / "asyncapi.yaml"
    assert yaml.safe_load(exported.read_text()) == yaml.safe_load(render("yaml")), (
        "run `trustgate asyncapi --out deploy/asyncapi.yaml`"
    )


def test_a_request_event_naming_an_error_kind_unknown_to_this_version_still_decodes() -> None:
    from trustgate_core.events import decode_request_event

    doc = {
        "trace_id": "0" * 32,
        "gateway_id": "01a23405-4071-7345-8333-ac82cc49a266",
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 502,
        "error_kind": "a_kind_from_a_newer_proxy",
        "timings": {"total_ms": 1.0, "gateway_ms": 1.0},
        "started_at": "2026-12-01T00:00:00Z",
        "ended_at": "2026-12-01T00:00:01Z",
    }
    event = decode_request_event(json.dumps(doc))
    assert event.error_kind == "a_kind_from_a_newer_proxy" and not event.ok
