"""Faults on request, for tests: throttling, failed jobs, spot interruptions, bad variants.

Set through the admin routes under ``/_local_aws/faults`` or ``local-aws fault ...``.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class VariantFault:
    error_rate: float = 0.0  # share of invocations answered with a 5XX
    latency_ms: float = 0.0  # added before the model is called
    status: int = 500


@dataclass
class Faults:
    throttle_fraction: float = 0.0
    throttle_operations: frozenset[str] | None = None  # None: every operation
    variants: dict[tuple[str, str], VariantFault] = field(default_factory=dict)
    _random: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_throttle(
        self, fraction: float, operations: list[str] | None = None, seed: int | None = None
    ) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        with self._lock:
            self.throttle_fraction = fraction
            self.throttle_operations = frozenset(operations) if operations else None
            if seed is not None:
                self._random.seed(seed)

    def should_throttle(self, operation: str) -> bool:
        with self._lock:
            if self.throttle_fraction <= 0:
                return False
            if self.throttle_operations is not None and operation not in self.throttle_operations:
                return False
            return self._random.random() < self.throttle_fraction

    def set_variant(self, endpoint: str, variant: str, **settings: Any) -> VariantFault:
        fault = VariantFault(**settings)
        if not 0.0 <= fault.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        with self._lock:
            self.variants[(endpoint, variant)] = fault
        return fault

    def variant(self, endpoint: str, variant: str) -> VariantFault | None:
        return self.variants.get((endpoint, variant))

    def roll(self, rate: float) -> bool:
        with self._lock:
            return self._random.random() < rate

    def clear(self) -> None:
        with self._lock:
            self.throttle_fraction = 0.0
            self.throttle_operations = None
            self.variants.clear()
