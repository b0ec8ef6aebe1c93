"""The sealed ``Mcp-Session-Id``: what any replica of the deployment opens, and what it
refuses (tampered, another deployment's, expired), across a key rotation."""

from __future__ import annotations

import base64
from uuid import UUID

from trustgate_core.ids import uuid7
from trustgate_mcp.domain.sessions import SessionClaims, SessionSealer, credential_of, new_nonce

NOW = 1_800_000_000


def claims(**changes: object) -> SessionClaims:
    fields: dict[str, object] = {
        "gateway_id": uuid7(),
        "consumer_id": uuid7(),
        "credential": credential_of(uuid7(), None),
        "protocol_version": "2025-06-18",
        "issued_at": NOW,
        "expires_at": NOW + 3600,
        "nonce": new_nonce(),
        "upstreams": {uuid7(): ("abc123", "2025-11-25"), uuid7(): (None, "2025-06-18")},
    }
    fields.update(changes)
    return SessionClaims(**fields)  # type: ignore[arg-type]


def test_a_session_sealed_by_one_replica_opens_on_another_with_the_same_key() -> None:
    sealed = claims()
    session_id = SessionSealer("key-one").seal(sealed)
    assert SessionSealer("key-one").open(session_id, NOW) == sealed
    assert session_id.isascii() and "=" not in session_id


def test_the_id_reveals_nothing_in_clear() -> None:
    sealed = claims()
    raw = base64.urlsafe_b64decode(SessionSealer("k").seal(sealed) + "==")
    assert b"abc123" not in raw and sealed.nonce.encode() not in raw


def test_a_tampered_id_does_not_open() -> None:
    sealer = SessionSealer("key-one")
    session_id = sealer.seal(claims())
    for i in (0, 3, 10, len(session_id) // 2, len(session_id) - 2):
        flipped = session_id[:i] + ("A" if session_id[i] != "A" else "B") + session_id[i + 1 :]
        assert sealer.open(flipped, NOW) is None
    assert sealer.open(session_id[:-4], NOW) is None
    assert sealer.open("", NOW) is None
    assert sealer.open("not base64 !!", NOW) is None
    assert sealer.open("x" * 10_000, NOW) is None


def test_another_deployments_id_does_not_open() -> None:
    session_id = SessionSealer("theirs").seal(claims())
    assert SessionSealer("ours").open(session_id, NOW) is None


def test_an_expired_session_does_not_open() -> None:
    sealer = SessionSealer("k")
    session_id = sealer.seal(claims(expires_at=NOW + 10))
    assert sealer.open(session_id, NOW + 9) is not None
    assert sealer.open(session_id, NOW + 10) is None


def test_after_a_key_rotation_sessions_of_the_previous_key_still_open() -> None:
    old_id = SessionSealer("old").seal(claims())
    rotated = SessionSealer("new", ["old"])
    assert rotated.open(old_id, NOW) is not None
    new_id = rotated.seal(claims())
    assert SessionSealer("new").open(new_id, NOW) is not None  # sealed with the new key
    assert SessionSealer("old").open(new_id, NOW) is None


def test_the_credential_names_the_auth_else_the_token_subject() -> None:
    auth = UUID(int=7)
    assert credential_of(auth, None) == f"a:{auth}"
    assert credential_of(auth, "alice") == f"s:{auth}:alice"
    assert credential_of(auth, "bob") != credential_of(auth, "alice")
    assert credential_of(None, "alice") == "s::alice"
