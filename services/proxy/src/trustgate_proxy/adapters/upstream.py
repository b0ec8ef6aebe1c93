"""The upstream HTTP client: one aiohttp session with a pooled, keep-alive connector.

aiohttp, not httpx, on the hot path: under concurrency httpx's pool costs several times
the CPU per request (issue 3's measurements).
"""

from __future__ import annotations

import aiohttp


def make_session(
    *,
    pool_size: int = 1024,
    keepalive: float = 60.0,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=pool_size,
        limit_per_host=0,
        ttl_dns_cache=300,
        keepalive_timeout=keepalive,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=("User-Agent",),
        raise_for_status=False,
        auto_decompress=True,
    )
