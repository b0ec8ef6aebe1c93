"""What a model costs per token: the curated catalog, and a policy's custom pricing.

The catalog (``models.json`` beside this module) is the admin's models catalog; its
prices are USD per million tokens, as strings. Entries may also carry
``cached_input_price`` (cache reads) and ``cache_write_price`` (cache writes) where the
provider publishes them; ``priced_snapshots`` lists dated snapshots priced differently
from their base model (used for pricing only, never listed by the admin).

Lookup is exact, never fuzzy: an unknown model has no price rather than a wrong one.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, Final

_CATALOG_FILE: Final = "models.json"
# keys of a catalog entry that only pricing reads (not part of the admin's Model)
_PRICING_ONLY: Final = ("cached_input_price", "cache_write_price")
# a snapshot date closing a model name: ``-2024-08-06`` or ``-20241022``
_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_MILLION: Final = Decimal(1_000_000)
_CUSTOM_MEMO_MAX: Final = 1024


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per token."""

    input: float
    output: float
    cached_input: float | None = None  # cache reads, when the provider prices them apart
    cache_write: float | None = None  # cache writes, when the provider prices them apart


def _per_token(per_million: Any) -> float | None:
    if per_million is None:
        return None
    return float(Decimal(str(per_million)) / _MILLION)


def _catalog_price(entry: Mapping[str, Any]) -> ModelPrice | None:
    source, target = entry.get("input_price"), entry.get("output_price")
    if source is None or target is None:
        return None
    return ModelPrice(
        input=_per_token(source) or 0.0,
        output=_per_token(target) or 0.0,
        cached_input=_per_token(entry.get("cached_input_price")),
        cache_write=_per_token(entry.get("cache_write_price")),
    )


def _compile_glob(pattern: str) -> re.Pattern[str]:
    """``*`` as the only wildcard, as `trustgate_core.plugins.glob_match`."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class CustomPricing:
    """A ``token_rate_limiter``'s ``custom_pricing`` (``{slug|glob: {input, output}}``, USD
    per token), compiled once: the exact slug wins, then the glob with the most literal
    characters (the first listed on a tie)."""

    __slots__ = ("_exact", "_globs", "_memo")

    def __init__(self, mapping: Mapping[str, Mapping[str, float]]) -> None:
        self._exact: dict[str, ModelPrice] = {}
        globs: list[tuple[int, int, re.Pattern[str], ModelPrice]] = []
        for n, (pattern, price) in enumerate(mapping.items()):
            model_price = ModelPrice(input=float(price["input"]), output=float(price["output"]))
            if "*" in pattern:
                literal = len(pattern) - pattern.count("*")
                globs.append((-literal, n, _compile_glob(pattern), model_price))
            else:
                self._exact[pattern] = model_price
        globs.sort(key=lambda g: (g[0], g[1]))
        self._globs = [(regex, price) for _, _, regex, price in globs]
        self._memo: dict[str, ModelPrice | None] = {}

    def price(self, model: str) -> ModelPrice | None:
        found = self._exact.get(model)
        if found is not None or not self._globs:
            return found
        if model in self._memo:
            return self._memo[model]
        found = next((p for regex, p in self._globs if regex.fullmatch(model)), None)
        if len(self._memo) >= _CUSTOM_MEMO_MAX:  # model names come from clients: bounded
            self._memo.clear()
        self._memo[model] = found
        return found


class PriceBook:
    """Catalog prices by provider and model (slug or external id)."""

    __slots__ = ("_any", "_memo", "_scoped")

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self._scoped: dict[tuple[str, str], ModelPrice] = {}
        self._any: dict[str, ModelPrice] = {}
        # (model, provider) -> what the catalog says: every request event asks
        self._memo: dict[tuple[str, str | None], ModelPrice | None] = {}
        for entry in entries:
            price = _catalog_price(entry)
            if price is None:
                continue
            provider = str(entry.get("provider") or "")
            for name in {entry.get("slug"), entry.get("external_id")}:
                if isinstance(name, str) and name:
                    self._scoped.setdefault((provider, name), price)
                    self._any.setdefault(name, price)

    @classmethod
    def default(cls) -> PriceBook:
        """The curated catalog's prices (loaded once per process, on first use)."""
        return _default_book()

    def price(
        self,
        model: str | None,
        provider: str | None = None,
        custom: CustomPricing | None = None,
    ) -> ModelPrice | None:
        """``custom`` first; then the catalog: this provider's model, then any provider's;
        then the same without a snapshot date (``gpt-4o-2024-08-06`` is ``gpt-4o``)."""
        if not model:
            return None
        if custom is not None:
            found = custom.price(model)
            if found is not None:
                return found
        key = (model, provider)
        if key in self._memo:
            return self._memo[key]
        found = self._find(model, provider)
        if found is None:
            base = _DATED.sub("", model)
            if base != model:
                found = self._find(base, provider)
        if len(self._memo) >= _CUSTOM_MEMO_MAX:  # model names come from clients: bounded
            self._memo.clear()
        self._memo[key] = found
        return found

    def _find(self, model: str, provider: str | None) -> ModelPrice | None:
        if provider is not None:
            found = self._scoped.get((provider, model))
            if found is not None:
                return found
        return self._any.get(model)


@cache
def _catalog() -> dict[str, Any]:
    source = resources.files(__package__).joinpath(_CATALOG_FILE)
    document: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    if not isinstance(document.get("models"), list):
        raise ValueError(f"{_CATALOG_FILE}: 'models' must be a list")
    return document


@cache
def _default_book() -> PriceBook:
    document = _catalog()
    return PriceBook([*document.get("priced_snapshots", []), *document["models"]])


def catalog_models() -> list[dict[str, Any]]:
    """The curated models as the admin's catalog publishes them (without the fields only
    pricing reads). A fresh list of fresh dicts: callers may mutate it."""
    return [
        {k: copy.deepcopy(v) for k, v in entry.items() if k not in _PRICING_ONLY}
        for entry in _catalog()["models"]
    ]
