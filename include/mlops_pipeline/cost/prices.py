"""The bundled, dated price table: on-demand hourly rates per region, job kind and instance
type, and the storage rate. A missing rate is ``None`` (unknown), never zero."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

Kind = Literal["training", "processing", "transform", "hosting"]
KINDS: tuple[Kind, ...] = ("training", "processing", "transform", "hosting")
HOURS_PER_MONTH = 730  # AWS's convention for GB-month storage rates


class PriceTableError(ValueError):
    """The price table is malformed; the message names the field and the fix."""


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    source: str
    currency: str
    hourly: Mapping[str, Mapping[str, Mapping[str, float]]]  # region -> kind -> type -> rate
    storage_gb_month: Mapping[str, float]  # region -> rate

    def rate(self, region: str, kind: str, instance_type: str) -> float | None:
        """The on-demand hourly rate, or None when the table does not know it."""
        return self.hourly.get(region, {}).get(kind, {}).get(instance_type)

    def storage_rate(self, region: str) -> float | None:
        """USD per GB-hour of ML storage volume, or None when unknown."""
        monthly = self.storage_gb_month.get(region)
        return None if monthly is None else monthly / HOURS_PER_MONTH

    @property
    def label(self) -> str:
        """What every report shows: where the rates come from and how old they are."""
        return f"prices as of {self.as_of} ({self.currency}); source: {self.source}"


def parse(raw: Mapping[str, Any], *, origin: str = "price table") -> PriceTable:
    for key in ("as_of", "source", "hourly"):
        if not raw.get(key):
            raise PriceTableError(
                f"{origin}: '{key}' is required (the table's date, source, rates)"
            )
    hourly: dict[str, dict[str, dict[str, float]]] = {}
    for region, kinds in raw["hourly"].items():
        for kind, rates in kinds.items():
            if kind not in KINDS:
                raise PriceTableError(
                    f"{origin}: hourly.{region}.{kind} is not a job kind: use {', '.join(KINDS)}"
                )
            for instance_type, rate in rates.items():
                if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
                    raise PriceTableError(
                        f"{origin}: hourly.{region}.{kind}.{instance_type} must be a number >= 0"
                    )
                hourly.setdefault(region, {}).setdefault(kind, {})[instance_type] = float(rate)
    return PriceTable(
        as_of=str(raw["as_of"]),
        source=str(raw["source"]),
        currency=str(raw.get("currency", "USD")),
        hourly=hourly,
        storage_gb_month={k: float(v) for k, v in (raw.get("storage_gb_month") or {}).items()},
    )


def load(path: str = "") -> PriceTable:
    """The table at ``path`` (MLOPS_PRICE_TABLE), else the one bundled with the package."""
    if path:
        try:
            with open(path) as fh:
                raw = json.load(fh)
        except OSError as exc:
            raise PriceTableError(
                f"MLOPS_PRICE_TABLE={path!r} cannot be read ({exc.strerror}): give a JSON price "
                "table or leave it empty for the bundled one"
            ) from None
        except ValueError as exc:
            raise PriceTableError(f"MLOPS_PRICE_TABLE={path!r} is not JSON: {exc}") from None
        return parse(raw, origin=path)
    text = resources.files(__package__).joinpath("prices.json").read_text()
    return parse(json.loads(text), origin="bundled prices.json")
