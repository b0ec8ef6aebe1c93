"""Prices and costs of LLM calls: the curated models catalog (shipped with this package,
also served by the admin), a policy's ``custom_pricing``, and the cost of a call's usage.

Request events carry the cost of every priced call; the ``token_rate_limiter`` counts
dollar budgets with the same prices.
"""

from trustgate_core.pricing.cost import Cost, cost_of
from trustgate_core.pricing.prices import CustomPricing, ModelPrice, PriceBook, catalog_models

__all__ = ["Cost", "CustomPricing", "ModelPrice", "PriceBook", "catalog_models", "cost_of"]
