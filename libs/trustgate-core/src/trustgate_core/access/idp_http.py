"""The few HTTP calls made to identity providers (discovery, JWKS, RFC 7662 introspection):
a small client of the standard library run off the event loop, with a short timeout, so
an IdP that is down or slow costs a new token a quick 401 and never blocks the loop."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

# (url, form or None for a GET, (client_id, client_secret) or None) -> the JSON object
FetchJson = Callable[
    [str, Mapping[str, str] | None, tuple[str, str] | None], Awaitable[dict[str, Any]]
]

_MAX_BYTES = 1 << 20


class IdpError(Exception):
    """The IdP could not be reached or did not answer with a JSON object."""


def _fetch(
    url: str, form: Mapping[str, str] | None, basic: tuple[str, str] | None, timeout: float
) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json"})
    if basic is not None:
        pair = f"{urllib.parse.quote(basic[0])}:{urllib.parse.quote(basic[1])}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read(_MAX_BYTES + 1)
    except Exception as exc:  # refused, timed out, 4xx/5xx: all mean "no answer"
        raise IdpError(type(exc).__name__) from None
    if len(body) > _MAX_BYTES:
        raise IdpError("answer too large")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise IdpError("not JSON") from None
    if not isinstance(doc, dict):
        raise IdpError("not a JSON object")
    return doc


def http_fetcher(timeout: float = 2.0) -> FetchJson:
    """A ``FetchJson`` over HTTP(S) with ``timeout`` seconds for connect and read."""

    async def fetch(
        url: str, form: Mapping[str, str] | None = None, basic: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        try:  # a hard bound too: a trickling answer cannot hold the caller longer
            return await asyncio.wait_for(
                asyncio.to_thread(_fetch, url, form, basic, timeout), 2 * timeout
            )
        except TimeoutError:
            raise IdpError("timed out") from None

    return fetch
