"""The price table every cost figure is computed from: S3's public us-east-1 prices by default, replaced
in part or whole by a JSON file the operator names in STORAGE_PRICES_FILE (same keys; prices in USD).

The defaults were copied from the public S3 pricing page (aws.amazon.com/s3/pricing, us-east-1, first
50 TB tier) on the date in `taken`; the page changes, so the dashboard always shows that date.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import ConfigError

GB = 1024**3
KB = 1024

# What the defaults say, so the dashboard can name where its figures come from.
DEFAULT_SOURCE = "Amazon S3 public prices, us-east-1 (first 50 TB per month)"
DEFAULT_TAKEN = "2025-01-15"


@dataclass(frozen=True)
class ClassPrice:
    """One storage class: storage per GB-month, what a transition into it costs (per 1,000 objects), the
    shortest time S3 bills it for, the smallest size it bills an object at, the metadata it adds per
    object (billed at `overhead_class`'s price), and retrieval per GB by tier."""

    gb_month: float
    transition_per_1000: float = 0.0
    minimum_days: int = 0
    minimum_object_bytes: int = 0
    overhead_bytes: int = 0  # of this class's price
    standard_overhead_bytes: int = 0  # billed at STANDARD's price
    retrieval_per_gb: dict[str, float] = field(default_factory=dict)
    retrieval_requests_per_1000: dict[str, float] = field(default_factory=dict)
    # How long a restore takes, by tier, as S3 documents it (for the user: "ready in about …").
    retrieval_hours: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PriceTable:
    classes: dict[str, ClassPrice]
    # Intelligent-Tiering's monitoring and automation fee, per 1,000 objects of 128 KB or more a month.
    monitoring_per_1000: float
    put_per_1000: float  # PUT, COPY, POST, LIST
    get_per_1000: float  # GET, SELECT and all others
    source: str = DEFAULT_SOURCE
    taken: str = DEFAULT_TAKEN
    currency: str = "USD"

    def price(self, storage_class: str) -> ClassPrice:
        return self.classes.get(storage_class) or self.classes["STANDARD"]


DEFAULT_PRICES = PriceTable(
    classes={
        "STANDARD": ClassPrice(gb_month=0.023),
        # Frequent-access tier's price; objects under 128 KB are never moved down nor charged monitoring.
        "INTELLIGENT_TIERING": ClassPrice(gb_month=0.023, transition_per_1000=0.01),
        "STANDARD_IA": ClassPrice(
            gb_month=0.0125, transition_per_1000=0.01, minimum_days=30, minimum_object_bytes=128 * KB,
            retrieval_per_gb={"Standard": 0.01},
        ),
        "ONEZONE_IA": ClassPrice(
            gb_month=0.01, transition_per_1000=0.01, minimum_days=30, minimum_object_bytes=128 * KB,
            retrieval_per_gb={"Standard": 0.01},
        ),
        "GLACIER_IR": ClassPrice(
            gb_month=0.004, transition_per_1000=0.02, minimum_days=90, minimum_object_bytes=128 * KB,
            retrieval_per_gb={"Standard": 0.03},
        ),
        "GLACIER": ClassPrice(
            gb_month=0.0036, transition_per_1000=0.03, minimum_days=90,
            overhead_bytes=32 * KB, standard_overhead_bytes=8 * KB,
            retrieval_per_gb={"Expedited": 0.03, "Standard": 0.01, "Bulk": 0.0},
            retrieval_requests_per_1000={"Expedited": 10.0, "Standard": 0.05, "Bulk": 0.0},
            retrieval_hours={"Expedited": 0.08, "Standard": 5, "Bulk": 12},
        ),
        "DEEP_ARCHIVE": ClassPrice(
            gb_month=0.00099, transition_per_1000=0.05, minimum_days=180,
            overhead_bytes=32 * KB, standard_overhead_bytes=8 * KB,
            retrieval_per_gb={"Standard": 0.02, "Bulk": 0.0025},
            retrieval_requests_per_1000={"Standard": 0.10, "Bulk": 0.025},
            retrieval_hours={"Standard": 12, "Bulk": 48},
        ),
    },
    monitoring_per_1000=0.0025,
    put_per_1000=0.005,
    get_per_1000=0.0004,
)  # fmt: skip


def load_prices(config: dict[str, Any]) -> PriceTable:
    """The defaults, with what STORAGE_PRICES_FILE (if set) replaces. A bad file is a ConfigError naming
    what is wrong, never a silent fallback to other prices."""
    path = config.get("STORAGE_PRICES_FILE")
    if not path:
        return DEFAULT_PRICES
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"STORAGE_PRICES_FILE {path}: {error}") from None
    return merge_prices(DEFAULT_PRICES, document, where=str(path))


def merge_prices(base: PriceTable, document: Any, *, where: str = "prices") -> PriceTable:
    if not isinstance(document, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    classes = dict(base.classes)
    for name, fields in (document.get("classes") or {}).items():
        if name not in classes or not isinstance(fields, dict):
            raise ConfigError(f"{where}: unknown storage class {name!r}")
        try:
            classes[name] = replace(classes[name], **fields)
        except TypeError as error:
            raise ConfigError(f"{where}: {name}: {error}") from None
    top = {k: v for k, v in document.items() if k != "classes"}
    for key, value in top.items():
        if key not in {"monitoring_per_1000", "put_per_1000", "get_per_1000", "source", "taken", "currency"}:
            raise ConfigError(f"{where}: unknown key {key!r}")
        if key.endswith("_1000") and not (isinstance(value, int | float) and value >= 0):
            raise ConfigError(f"{where}: {key} must be a price of 0 or more")
    if "source" not in top and top:
        top["source"] = f"{base.source}, changed by {where}"
    return replace(base, classes=classes, **top)
