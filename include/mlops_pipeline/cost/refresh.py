"""Refresh the price table from the AWS Price List API (on real AWS; local_aws has none).

``python -m mlops_pipeline.cost refresh-prices [--regions us-east-1,eu-west-1] [--output F]``
reads the AmazonSageMaker products of each region (``pricing.get_products``, served from
us-east-1), keeps the on-demand hourly rate of every ml.* instance per job kind, and writes a
table dated today. Storage rates are kept from the current table (the Price List names
them per volume kind; the table holds one rate per region).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from mlops_pipeline.cost.prices import KINDS, PriceTable

SOURCE = "AWS Price List API (pricing.get_products, ServiceCode AmazonSageMaker), on-demand"
# the product's "component" attribute (or its usagetype) → our job kind
_COMPONENTS = {
    "training": "training",
    "hosting": "hosting",
    "processing": "processing",
    "batch transform": "transform",
    "batch-transform": "transform",
    "transform": "transform",
}
_USAGE_MARKS = {
    "-Train:": "training",
    "-Host:": "hosting",
    "-Processing:": "processing",
    "-Tsform:": "transform",
}
_SUFFIXES = ("-Training", "-training", "-Hosting", "-hosting", "-Processing", "-processing")


def product_rate(product: Mapping[str, Any]) -> tuple[str, str, str, float] | None:
    """(region, kind, instance type, USD per hour) of one Price List product, or None when
    it is not an on-demand ml.* instance-hour of a kind the cost model uses."""
    attrs = product.get("product", {}).get("attributes", {})
    region = attrs.get("regionCode")
    instance = attrs.get("instanceName") or attrs.get("instanceType") or ""
    for suffix in _SUFFIXES:
        instance = instance.removesuffix(suffix)
    kind = _COMPONENTS.get(str(attrs.get("component", "")).strip().lower())
    if kind is None:
        usage = str(attrs.get("usagetype", ""))
        kind = next((k for mark, k in _USAGE_MARKS.items() if mark in usage), None)
    if not region or not instance.startswith("ml.") or kind is None:
        return None
    usage = str(attrs.get("usagetype", ""))
    if "spot" in usage.lower() or "spot" in str(attrs.get("component", "")).lower():
        return None  # spot is SageMaker's BillableTimeInSeconds at the on-demand rate
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            unit = str(dimension.get("unit", "")).lower()
            price = dimension.get("pricePerUnit", {}).get("USD")
            if unit in ("hrs", "hours", "hour", "hr") and price is not None:
                rate = float(price)
                if rate > 0:
                    return region, kind, instance, rate
    return None


def build_table(
    products: Iterable[Mapping[str, Any]], current: PriceTable, today: dt.date
) -> dict[str, Any]:
    hourly: dict[str, dict[str, dict[str, float]]] = {}
    for product in products:
        found = product_rate(product)
        if found is None:
            continue
        region, kind, instance, rate = found
        # several SKUs per instance (e.g. per OS or a discounted plan): the highest is the
        # list price, the others are reductions the table does not assume
        rates = hourly.setdefault(region, {k: {} for k in KINDS}).setdefault(kind, {})
        rates[instance] = max(rate, rates.get(instance, 0.0))
    return {
        "as_of": today.isoformat(),
        "currency": "USD",
        "source": SOURCE,
        "note": (
            "hourly on-demand rates per instance; managed spot is billed at these rates for "
            "BillableTimeInSeconds; storage rates kept from the previous table"
        ),
        "storage_gb_month": dict(current.storage_gb_month),
        "hourly": {
            region: {k: dict(sorted(v.items())) for k, v in kinds.items() if v}
            for region, kinds in sorted(hourly.items())
        },
    }


def fetch(pricing: Any, regions: Iterable[str]) -> Iterable[dict[str, Any]]:
    for region in regions:
        paginator = pricing.get_paginator("get_products")
        for page in paginator.paginate(
            ServiceCode="AmazonSageMaker",
            Filters=[{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}],
        ):
            for item in page["PriceList"]:
                yield json.loads(item) if isinstance(item, str) else item
