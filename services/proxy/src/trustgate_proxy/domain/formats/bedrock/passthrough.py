"""Usage and completeness of a pass-through Converse exchange: the plain body's usage, or
the stream's last frame (found by its prelude) when it is the ``metadata`` event.
"""

from __future__ import annotations

import struct
from binascii import crc32
from typing import Any

from botocore.eventstream import EventStreamBuffer

from trustgate_proxy.domain.formats.bedrock.response import usage_of
from trustgate_proxy.domain.formats.bedrock.stream import MALFORMED
from trustgate_proxy.domain.formats.common import json_object
from trustgate_proxy.domain.formats.model import Usage

_PRELUDE = struct.Struct(">III")


def _last_frame(tail: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The frame ending exactly at the end of ``tail`` (headers, payload), if one does:
    found by its prelude (total length reaching the end, prelude CRC valid) and checked by
    botocore's parser."""
    end = len(tail)
    for start in range(max(0, end - 65536), end - 15):
        total, _headers_len, prelude_crc = _PRELUDE.unpack_from(tail, start)
        if start + total != end or crc32(tail[start : start + 8]) != prelude_crc:
            continue
        buffer = EventStreamBuffer()
        buffer.add_data(tail[start:])
        try:
            message = next(buffer)
        except (*MALFORMED, StopIteration):
            return None
        return message.headers, message.payload
    return None


class BedrockUsage:
    """Usage and completeness of a Converse exchange without decoding all of it."""

    head_bytes = 0

    def from_body(self, body: bytes) -> Usage | None:
        doc = json_object(body)
        return usage_of(doc.get("usage")) if doc is not None else None

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        frame = _last_frame(tail)
        if frame is None or frame[0].get(":event-type") != "metadata":
            return None
        doc = json_object(frame[1])
        return usage_of(doc.get("usage")) if doc is not None else None

    def stream_complete(self, tail: bytes) -> bool:
        frame = _last_frame(tail)
        return (
            frame is not None
            and frame[0].get(":message-type") == "event"
            and frame[0].get(":event-type") == "metadata"
        )
