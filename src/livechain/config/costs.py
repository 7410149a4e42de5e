"""What a provider costs and may spend (`cost`, `tier`, `budget` of a provider) and the chain's service level
(`slo`), for the `cheapest` strategy and spend tracking. No vendor price table is built in: prices are the
operator's, from their plan."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from livechain.config.fields import FrozenDict, Text, fail

NonNegative = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True, revalidate_instances="always")


class CostConfig(_Model):
    """A price per request (`per_request`), or compute units per method (`units`, with `default_units` for the
    methods it does not name) and optionally `unit_price` (money per unit). Money is in the operator's currency;
    without a price, spend and budgets are in units."""

    per_request: NonNegative | None = None
    units: Annotated[dict[Text, NonNegative], AfterValidator(FrozenDict)] = Field(default_factory=FrozenDict)
    default_units: NonNegative = 1.0
    unit_price: NonNegative | None = None

    @model_validator(mode="after")
    def _one_way(self) -> CostConfig:
        if self.per_request is not None and (self.units or self.unit_price is not None):
            raise fail("cost", "give per_request, or units (with unit_price): not both")
        return self

    @property
    def priced(self) -> bool:
        """Is spend in money (else in units)?"""
        return self.per_request is not None or self.unit_price is not None

    def units_of(self, method: str) -> float:
        if self.per_request is not None:
            return 1.0
        return self.units.get(method, self.default_units)

    def price_of(self, method: str) -> float:
        """What one request of `method` costs: money when priced, else units."""
        if self.per_request is not None:
            return self.per_request
        units = self.units.get(method, self.default_units)
        return units * self.unit_price if self.unit_price is not None else units


class BudgetConfig(_Model):
    """Spend allowed per UTC day and/or month, in the provider's cost unit (money when priced, else units)."""

    day: NonNegative | None = None
    month: NonNegative | None = None
    #: exclude: not used once exhausted; last_resort: used only when no other provider is eligible
    on_exhausted: Literal["exclude", "last_resort"] = "exclude"


class SloConfig(_Model):
    """The chain's service level, measured by Livechain over the metrics window: a provider that misses it is
    used by `cheapest` only when nothing else is eligible."""

    latency_p90_ms: NonNegative | None = None  # per method
    head_delay_p90_ms: NonNegative | None = None  # freshness: how far behind the first arrival it delivers heads


Tier = Literal["free", "paid", "reserve"]
