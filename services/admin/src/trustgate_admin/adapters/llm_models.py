"""One ``GET`` of a provider's models list, timed and bounded: the LLM connection test."""

from __future__ import annotations

import anyio
import httpx2

from trustgate_admin.domain.llm_probe import ModelsRequest
from trustgate_admin.domain.upstream import ProbeFailed


async def get_models(req: ModelsRequest, within: float) -> int:
    """The HTTP status of the models list (the body is not kept: it proves nothing more)."""
    try:
        with anyio.fail_after(within):  # httpx's timeout bounds each read, not the whole call
            async with httpx2.AsyncClient(timeout=within) as http:
                response = await http.get(req.url, headers=req.headers, params=req.params)
    except (TimeoutError, httpx2.TimeoutException) as exc:
        raise ProbeFailed("connect", f"no answer within {within:g}s", timed_out=True) from exc
    except (httpx2.TransportError, OSError) as exc:
        raise ProbeFailed(
            "connect", f"could not connect to the provider ({type(exc).__name__})"
        ) from exc
    return response.status_code
