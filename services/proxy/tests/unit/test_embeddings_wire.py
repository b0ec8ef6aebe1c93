"""An embeddings answer as OpenAI writes it, numbers or base64 (``encoding_format``): the
same unit vector either way; anything else is refused, never half read."""

from __future__ import annotations

import base64
import math
import struct

import pytest

from trustgate_proxy.services.semantic import _vectors_of
from trustgate_testkit.proxy.mock_upstream import openai_embedding

VALUES = [0.5, -1.25, 3.0, 0.0]


def answer(*embeddings: object) -> dict[str, object]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)
        ],
    }


def test_base64_and_numbers_give_the_same_unit_vector() -> None:
    packed = openai_embedding(VALUES, "base64")
    assert isinstance(packed, str)
    as_numbers, as_base64 = _vectors_of(answer(VALUES, packed), 2)
    assert as_numbers is not None and as_base64 is not None
    assert as_base64 == pytest.approx(as_numbers, abs=1e-7)
    assert math.hypot(*as_base64) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "embedding",
    [
        "not base64!",  # not base64 at all
        base64.b64encode(b"\x00\x00\x80").decode(),  # 3 bytes: not whole float32 values
    ],
)
def test_a_broken_base64_embedding_is_refused(embedding: str) -> None:
    with pytest.raises(ValueError):
        _vectors_of(answer(embedding), 1)


def test_base64_is_little_endian_float32() -> None:
    packed = base64.b64encode(struct.pack("<2f", 3.0, 4.0)).decode()
    (vector,) = _vectors_of(answer(packed), 1)
    assert vector == pytest.approx((0.6, 0.8))


def test_the_cache_gets_a_base64_embedding_as_it_came_and_numbers_packed() -> None:
    """The semantic cache's form is ``encode_vector``'s (float32 LE, base64): a base64
    answer is passed on untouched, numbers are packed; a zero vector is none."""
    from trustgate_core.cache import decode_vector
    from trustgate_proxy.services.semantic import _packed_of

    packed = openai_embedding(VALUES, "base64")
    as_given, from_numbers, zero = _packed_of(answer(packed, VALUES, [0.0, 0.0]), 3)
    assert as_given == packed
    assert from_numbers is not None and decode_vector(from_numbers) == pytest.approx(VALUES)
    assert zero is None
    with pytest.raises(ValueError):
        _packed_of(answer("not base64!"), 1)
    with pytest.raises(ValueError):
        _packed_of(answer(["a", "b"]), 1)
