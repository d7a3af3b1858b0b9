"""List prices of frontier models and per-request cost.

The packaged catalog (``prices.json``) holds public list prices in USD per million
tokens with the date they were collected (``as_of``); they change, so operators
check them and override them (and set self-hosted prices) from config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

__all__ = [
    "ModelPrice",
    "PriceCatalog",
    "UnknownModelPriceError",
    "cost",
    "load_default_catalog",
]


class UnknownModelPriceError(KeyError):
    """No price is known for the model (names only, no request content)."""

    def __init__(self, model: str) -> None:
        super().__init__(f"no price is known for model {model!r}")
        self.model = model

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million input (prompt) and output (completion) tokens."""

    model: str
    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")


def cost(price: ModelPrice, prompt_tokens: int, completion_tokens: int) -> float:
    """USD cost of one request at ``price``."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts must be >= 0")
    return (
        prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
    ) / 1_000_000


class PriceCatalog:
    """Prices by model name; later sources (config) override earlier ones (catalog)."""

    def __init__(self, prices: Mapping[str, ModelPrice], as_of: str | None = None) -> None:
        self._prices = MappingProxyType(dict(prices))
        self.as_of = as_of

    @property
    def models(self) -> Mapping[str, ModelPrice]:
        return self._prices

    def get(self, model: str) -> ModelPrice:
        try:
            return self._prices[model]
        except KeyError:
            raise UnknownModelPriceError(model) from None

    def __contains__(self, model: object) -> bool:
        return model in self._prices

    def with_prices(self, overrides: Mapping[str, tuple[float, float]]) -> PriceCatalog:
        """A catalog with ``model -> (input_per_mtok, output_per_mtok)`` added or replaced
        (e.g. from each model's ``price`` in the config, including self-hosted ones)."""
        merged = dict(self._prices)
        for model, (inp, out) in overrides.items():
            merged[model] = ModelPrice(model, inp, out)
        return PriceCatalog(merged, self.as_of)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        return cost(self.get(model), prompt_tokens, completion_tokens)


def load_default_catalog() -> PriceCatalog:
    """The packaged list prices (see ``as_of`` for their date)."""
    raw = json.loads(resources.files("airlock.ledger").joinpath("prices.json").read_text("utf-8"))
    prices = {
        name: ModelPrice(name, float(p["input_per_mtok"]), float(p["output_per_mtok"]))
        for name, p in raw["models"].items()
    }
    return PriceCatalog(prices, raw.get("as_of"))
