"""Bayesian search: the time to suggest the next point from 50 finished training jobs.

A tuning job asks for a suggestion each time a child ends, so this is paid once per child;
it must stay small next to the child's own start-up.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.harness import Row

TARGET_SECONDS = 0.1
POINTS = 50


def run(aws: Any = None, repeats: int = 5) -> list[Row]:
    import numpy as np

    from local_aws.sagemaker.tuning_strategies import make_strategy

    config = {
        "Strategy": "Bayesian",
        "RandomSeed": 1,
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 100, "MaxParallelTrainingJobs": 2},
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:loss"},
        "ParameterRanges": {
            "ContinuousParameterRanges": [
                {"Name": n, "MinValue": "-5", "MaxValue": "5", "ScalingType": "Linear"}
                for n in ("x", "y")
            ]
        },
    }
    rng = np.random.default_rng(1)
    history: list[tuple[dict[str, str], float | None]] = [
        ({"x": repr(float(x)), "y": repr(float(y))}, (x - 1.3) ** 2 + (y + 2.1) ** 2)
        for x, y in rng.uniform(-5, 5, (POINTS, 2))
    ]
    strategy = make_strategy(config)
    strategy.suggest(history, 1)  # imports scikit-learn
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        strategy.suggest(history, 1)
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings)
    return [
        Row(
            f"Bayesian suggestion from {POINTS} results (median of {repeats})",
            median * 1000,
            "ms",
            target=f"< {TARGET_SECONDS * 1000:.0f} ms",
            ok=median < TARGET_SECONDS,
        )
    ]
