"""The Price List API's product documents → the price table (pure; the API itself is only on
real AWS)."""

from __future__ import annotations

import datetime as dt

from mlops_pipeline.cost import prices, refresh


def product(component: str, instance: str, usd: str, *, region="us-east-1", unit="Hrs", **attrs):
    return {
        "product": {
            "productFamily": "ML Instance",
            "attributes": {
                "servicecode": "AmazonSageMaker",
                "regionCode": region,
                "component": component,
                "instanceName": instance,
                "usagetype": f"USE1-{component}:{instance}",
                **attrs,
            },
        },
        "terms": {
            "OnDemand": {
                "SKU.TERM": {
                    "priceDimensions": {
                        "SKU.TERM.DIM": {"unit": unit, "pricePerUnit": {"USD": usd}}
                    }
                }
            }
        },
    }


def test_on_demand_instance_hours_per_kind_become_the_table():
    products = [
        product("Training", "ml.m5.large", "0.1150000000"),
        product("Hosting", "ml.m5.large", "0.1150000000"),
        product("Processing", "ml.c5.xlarge", "0.2040000000"),
        product("Batch Transform", "ml.m5.xlarge", "0.2300000000"),
        product("Training", "ml.m5.large-Training", "0.1150000000", region="eu-west-1"),
        product("Notebook", "ml.t3.medium", "0.0500000000"),  # not a kind we cost
        product("Training", "ml.m5.large", "0.14", unit="GB-Mo"),  # storage, not hours
        product("Hosting", "ml.g4dn.xlarge", "0.0000000000"),  # free-tier SKU
    ]
    current = prices.load()
    table = refresh.build_table(products, current, dt.date(2026, 12, 1))
    parsed = prices.parse(table)
    assert parsed.as_of == "2026-12-01" and "Price List API" in parsed.source
    assert parsed.hourly == {
        "us-east-1": {
            "training": {"ml.m5.large": 0.115},
            "hosting": {"ml.m5.large": 0.115},
            "processing": {"ml.c5.xlarge": 0.204},
            "transform": {"ml.m5.xlarge": 0.23},
        },
        "eu-west-1": {"training": {"ml.m5.large": 0.115}},
    }
    assert parsed.storage_gb_month == current.storage_gb_month


def test_spot_and_non_ml_products_are_left_out():
    assert (
        refresh.product_rate(
            product("Training", "ml.m5.large", "0.03", usagetype="USE1-Train-Spot:ml.m5.large")
        )
        is None
    )
    assert refresh.product_rate(product("Training", "m5.large", "0.1")) is None
