"""Search strategies for hyperparameter tuning jobs: validation, Random, Grid and Bayesian.

Pure logic, no I/O: the tuning runner hands in the ``HyperParameterTuningJobConfig`` of a
CreateHyperParameterTuningJob request and the results so far, and gets back hyperparameter
assignments to launch. Values go in and out as strings, as in the SageMaker API.

A *history* is a list of ``(params, objective)`` pairs, one per finished training job, where
``objective`` is ``None`` for a job that failed or reported no objective metric.

Scaling (``ScalingType``), as SageMaker documents it:

* ``Linear``: uniform over ``[MinValue, MaxValue]``.
* ``Logarithmic``: uniform in ``log(x)``; needs ``MinValue > 0``.
* ``ReverseLogarithmic``: uniform in ``log(1 - x)``, i.e. dense close to 1; continuous ranges
  only, and the range must lie within ``0 <= x < 1``.
* ``Auto``: SageMaker does not publish its rule. Here integer ranges use ``Linear`` and a
  continuous range uses ``Logarithmic`` when ``MinValue > 0`` and ``MaxValue / MinValue >= 100``
  (it spans at least two orders of magnitude, where the SageMaker guide recommends log
  scaling), otherwise ``Linear``.

Integer ranges are sampled over ``[MinValue - 0.5, MaxValue + 0.5]`` in the scaled space and
rounded, so with ``Linear`` scaling every integer, endpoints included, is equally likely.
"""

from __future__ import annotations

import itertools
import math
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

Params = dict[str, str]
History = Sequence[tuple[Mapping[str, str], float | None]]
Kind = Literal["Integer", "Continuous", "Categorical"]
Scaling = Literal["Linear", "Logarithmic", "ReverseLogarithmic"]

_RANGE_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("CategoricalParameterRanges", "Categorical"),
    ("IntegerParameterRanges", "Integer"),
    ("ContinuousParameterRanges", "Continuous"),
)
_STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
_SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
_OBJECTIVE_TYPES = ("Maximize", "Minimize")
# ParameterRanges: "the sum of the number of hyperparameters for all the ranges can't exceed"
# the per-list maximum of 30 (SageMaker API reference).
_MAX_TOTAL_RANGES = 30
# Ratio above which Auto picks log scaling for a continuous range (two orders of magnitude).
_AUTO_LOG_RATIO = 100.0


# --------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One tunable hyperparameter, parsed from a ``*ParameterRange``."""

    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    scaling: Scaling = "Linear"
    values: tuple[str, ...] = ()

    @property
    def is_numeric(self) -> bool:
        return self.kind != "Categorical"

    def _bounds(self) -> tuple[float, float]:
        # Integers get half a step either side so rounding gives endpoints a full bucket.
        if self.kind == "Integer":
            return self.low - 0.5, self.high + 0.5
        return self.low, self.high

    def _warp(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.scaling == "Logarithmic":
            return np.log(x)
        if self.scaling == "ReverseLogarithmic":
            return -np.log1p(-x)
        return x

    def _unwarp(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.scaling == "Logarithmic":
            return np.exp(t)
        if self.scaling == "ReverseLogarithmic":
            return -np.expm1(-t)
        return t

    def from_unit(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map points of [0, 1] to values of this range (rounded for integers, clipped)."""
        lo, hi = self._bounds()
        t_lo, t_hi = self._warp(np.array([lo, hi]))
        x = self._unwarp(t_lo + np.clip(u, 0.0, 1.0) * (t_hi - t_lo))
        if self.kind == "Integer":
            x = np.floor(x + 0.5)
        # exp/log round trips can land one ulp outside the range.
        return np.clip(x, self.low, self.high)

    def to_unit(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Inverse of :meth:`from_unit` (integers map to the centre of their bucket)."""
        lo, hi = self._bounds()
        if hi <= lo:
            return np.full_like(x, 0.5)
        t_lo, t_hi = self._warp(np.array([lo, hi]))
        xc = np.clip(x, self.low, self.high)
        return np.clip((self._warp(xc) - t_lo) / (t_hi - t_lo), 0.0, 1.0)

    def format(self, x: float) -> str:
        if self.kind == "Integer":
            return str(int(x))
        return repr(float(x))

    def canonical(self, text: str) -> str:
        """``text`` as :meth:`format` would write it, so "5.0" and "5" count as one value."""
        if not self.is_numeric:
            return text
        x = _parse_number(text)
        if x is None or (self.kind == "Integer" and not x.is_integer()):
            return text
        return self.format(x)


def _parse_number(text: str) -> float | None:
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class SearchSpace:
    """The tunable parameters of a config plus the encodings the strategies share.

    Points are handled in an *internal* form, one column per parameter: a position in [0, 1]
    for numeric parameters (after scaling), the index into ``Values`` for categoricals.
    """

    def __init__(self, parameters: Sequence[Parameter]) -> None:
        self.parameters = tuple(parameters)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SearchSpace:
        return cls(_parse_parameters(config))

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        cols = [
            rng.random(n) if p.is_numeric else rng.integers(0, len(p.values), n).astype(float)
            for p in self.parameters
        ]
        return np.column_stack(cols) if cols else np.empty((n, 0))

    def snap(self, internal: NDArray[np.float64]) -> NDArray[np.float64]:
        """Round integer columns to the bucket centres so equal values encode equally."""
        out = internal.copy()
        for j, p in enumerate(self.parameters):
            if p.kind == "Integer":
                out[:, j] = p.to_unit(p.from_unit(out[:, j]))
        return out

    def decode(self, row: NDArray[np.float64]) -> Params:
        params: Params = {}
        for j, p in enumerate(self.parameters):
            if p.is_numeric:
                params[p.name] = p.format(float(p.from_unit(row[j : j + 1])[0]))
            else:
                params[p.name] = p.values[int(row[j])]
        return params

    def encode_params(self, params: Mapping[str, str]) -> NDArray[np.float64] | None:
        """Internal form of an assignment, or None if it does not fit this space."""
        row = np.empty(len(self.parameters))
        for j, p in enumerate(self.parameters):
            text = params.get(p.name)
            if text is None:
                return None
            if p.is_numeric:
                x = _parse_number(text)
                if x is None:
                    return None
                row[j] = p.to_unit(np.array([x]))[0]
            else:
                if text not in p.values:
                    return None
                row[j] = p.values.index(text)
        return row

    def features(self, internal: NDArray[np.float64]) -> NDArray[np.float64]:
        """Model inputs: numeric columns as they are, categoricals one-hot."""
        cols: list[NDArray[np.float64]] = []
        for j, p in enumerate(self.parameters):
            if p.is_numeric:
                cols.append(internal[:, j : j + 1])
            else:
                cols.append(np.eye(len(p.values))[internal[:, j].astype(int)])
        return np.hstack(cols) if cols else np.empty((internal.shape[0], 0))

    def key(self, params: Mapping[str, str]) -> tuple[str | None, ...]:
        """Identity of an assignment within this space (other keys, e.g. static ones, ignored)."""
        return tuple(
            None if (text := params.get(p.name)) is None else p.canonical(text)
            for p in self.parameters
        )

    def finite_size(self) -> int | None:
        """Number of distinct points when there is no continuous range, else None."""
        size = 1
        for p in self.parameters:
            if p.kind == "Continuous":
                return None
            size *= len(p.values) if p.kind == "Categorical" else int(p.high - p.low) + 1
        return size

    def enumerate(self) -> NDArray[np.float64]:
        """Every point of a finite space, internal form, in grid order."""
        axes: list[NDArray[np.float64]] = []
        for p in self.parameters:
            if p.kind == "Categorical":
                axes.append(np.arange(len(p.values), dtype=float))
            else:
                ints = np.arange(int(p.low), int(p.high) + 1, dtype=float)
                axes.append(p.to_unit(ints))
        if not axes:
            return np.empty((1, 0))
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.column_stack([m.ravel() for m in mesh])


def _parse_parameters(config: Mapping[str, Any]) -> list[Parameter]:
    ranges = config.get("ParameterRanges") or {}
    params: list[Parameter] = []
    for field, kind in _RANGE_FIELDS:
        for r in ranges.get(field) or []:
            name = str(r["Name"])
            if kind == "Categorical":
                params.append(Parameter(name, kind, values=tuple(str(v) for v in r["Values"])))
                continue
            low, high = float(r["MinValue"]), float(r["MaxValue"])
            params.append(Parameter(name, kind, low, high, _effective_scaling(kind, r, low, high)))
    return params


def _effective_scaling(kind: Kind, r: Mapping[str, Any], low: float, high: float) -> Scaling:
    scaling = r.get("ScalingType") or "Auto"
    if scaling == "Linear":
        return "Linear"
    if scaling == "Logarithmic":
        return "Logarithmic"
    if scaling == "ReverseLogarithmic":
        return "ReverseLogarithmic"
    if kind == "Continuous" and low > 0 and high / low >= _AUTO_LOG_RATIO:
        return "Logarithmic"
    return "Linear"


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def validate_config(config: Mapping[str, Any]) -> None:
    """Reject what SageMaker's CreateHyperParameterTuningJob rejects in the tuning config.

    Checks the semantic rules the botocore model cannot express (shapes, enums and list lengths
    are botocore's job): bounds must be numbers (integers for integer ranges) with
    ``MinValue <= MaxValue``; ``Logarithmic`` needs ``MinValue > 0``; ``ReverseLogarithmic``
    is for continuous ranges within ``0 <= x < 1``; at least one range; at most 30 ranges in
    total; unique names; ``Grid`` takes categorical ranges only, and its
    ``MaxNumberOfTrainingJobs``, if given, must equal the number of combinations; ``Hyperband``
    needs ``TrainingJobEarlyStoppingType`` ``OFF`` and ``StrategyConfig`` is for Hyperband only.

    Raises ``ValueError`` listing every problem found, each naming the field and the fix.
    """
    problems: list[str] = []
    strategy = config.get("Strategy")
    if strategy not in _STRATEGIES:
        problems.append(
            f"HyperParameterTuningJobConfig.Strategy is {strategy!r}; "
            f"use one of {', '.join(_STRATEGIES)}."
        )
    objective = config.get("HyperParameterTuningJobObjective")
    if objective is not None and objective.get("Type") not in _OBJECTIVE_TYPES:
        problems.append(
            f"HyperParameterTuningJobObjective.Type is {objective.get('Type')!r}; "
            "use Maximize or Minimize."
        )

    ranges = config.get("ParameterRanges") or {}
    if ranges.get("AutoParameters"):
        problems.append(
            "ParameterRanges.AutoParameters (Autotune) is not supported by local_aws; "
            "give explicit Integer/Continuous/CategoricalParameterRanges instead."
        )
    seen: dict[str, str] = {}
    total = 0
    for field, kind in _RANGE_FIELDS:
        for i, r in enumerate(ranges.get(field) or []):
            total += 1
            where = f"ParameterRanges.{field}[{i}]"
            name = r.get("Name")
            where_named = f"{where} ({name!r})"
            if name in seen:
                problems.append(
                    f"{where}.Name {name!r} is already used by {seen[name]}; "
                    "each hyperparameter may appear in only one range."
                )
            else:
                seen[str(name)] = where
            if kind == "Categorical":
                if not r.get("Values"):
                    problems.append(f"{where_named}.Values is empty; list at least one value.")
                continue
            problems.extend(_numeric_range_problems(where_named, kind, r))
    if total == 0:
        problems.append(
            "HyperParameterTuningJobConfig.ParameterRanges has no ranges; add at least one "
            "IntegerParameterRanges, ContinuousParameterRanges or CategoricalParameterRanges "
            "entry (fixed values belong in StaticHyperParameters)."
        )
    elif total > _MAX_TOTAL_RANGES:
        problems.append(
            f"ParameterRanges has {total} ranges in total; the sum over Integer, Continuous "
            f"and Categorical ranges may not exceed {_MAX_TOTAL_RANGES}."
        )

    if strategy == "Grid":
        problems.extend(_grid_problems(config, ranges))
    if strategy == "Hyperband":
        stopping = config.get("TrainingJobEarlyStoppingType", "Off")
        if str(stopping).upper() != "OFF":
            problems.append(
                f"TrainingJobEarlyStoppingType is {stopping!r}; the Hyperband strategy has "
                "its own early stopping, so set it to Off."
            )
    elif config.get("StrategyConfig"):
        problems.append(
            "HyperParameterTuningJobConfig.StrategyConfig is only for the Hyperband strategy; "
            f"remove it or set Strategy to Hyperband (Strategy is {strategy!r})."
        )
    if problems:
        raise ValueError(" ".join(problems))


def _numeric_range_problems(where: str, kind: Kind, r: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    bounds: dict[str, float] = {}
    for field in ("MinValue", "MaxValue"):
        text = r.get(field)
        value = _parse_number(text) if isinstance(text, str) else None
        if value is None:
            problems.append(f"{where}.{field} is {text!r}; give a finite number as a string.")
        elif kind == "Integer" and not value.is_integer():
            problems.append(
                f"{where}.{field} is {text!r}; integer ranges need whole numbers "
                "(use ContinuousParameterRanges for fractional values)."
            )
        else:
            bounds[field] = value
    scaling = r.get("ScalingType") or "Auto"
    if scaling not in _SCALINGS:
        problems.append(f"{where}.ScalingType is {scaling!r}; use one of {', '.join(_SCALINGS)}.")
    if len(bounds) < 2:
        return problems
    low, high = bounds["MinValue"], bounds["MaxValue"]
    if low > high:
        problems.append(
            f"{where}.MinValue ({r['MinValue']}) is greater than MaxValue ({r['MaxValue']}); "
            "swap them."
        )
    if scaling == "Logarithmic" and low <= 0:
        problems.append(
            f"{where}.ScalingType Logarithmic needs MinValue > 0 (got {r['MinValue']}); raise "
            "MinValue above 0 or use Linear scaling."
        )
    if scaling == "ReverseLogarithmic":
        if kind == "Integer":
            problems.append(
                f"{where}.ScalingType ReverseLogarithmic is supported for continuous ranges "
                "only; use Linear or Logarithmic for integer ranges."
            )
        elif low < 0 or high >= 1:
            problems.append(
                f"{where}.ScalingType ReverseLogarithmic needs 0 <= MinValue and MaxValue < 1 "
                f"(got {r['MinValue']}..{r['MaxValue']}); keep the range within [0, 1) or use "
                "Linear scaling."
            )
    return problems


def _grid_problems(config: Mapping[str, Any], ranges: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for field in ("ContinuousParameterRanges", "IntegerParameterRanges"):
        if ranges.get(field):
            names = ", ".join(repr(r.get("Name")) for r in ranges[field])
            problems.append(
                f"ParameterRanges.{field} ({names}) cannot be used with the Grid strategy, "
                "which supports categorical parameters only; list the values to try as "
                "CategoricalParameterRanges, or use Strategy Random or Bayesian."
            )
    limit = (config.get("ResourceLimits") or {}).get("MaxNumberOfTrainingJobs")
    if limit is not None and not problems:
        size = _categorical_product(ranges)
        if limit != size:
            problems.append(
                f"ResourceLimits.MaxNumberOfTrainingJobs is {limit} but the Grid has {size} "
                "combinations; omit MaxNumberOfTrainingJobs (Grid runs every combination) "
                f"or set it to {size}."
            )
    return problems


def _categorical_product(ranges: Mapping[str, Any]) -> int:
    return math.prod(
        len(r.get("Values") or []) for r in ranges.get("CategoricalParameterRanges") or []
    )


def grid_size(config: Mapping[str, Any]) -> int:
    """Number of combinations the Grid strategy runs: the tuning job's training-job count.

    The product of the number of values of each categorical range (and, should an unvalidated
    config carry integer ranges, of the number of integers in each).
    """
    size = SearchSpace.from_config(config).finite_size()
    if size is None:
        raise ValueError(
            "grid_size: the config has ContinuousParameterRanges, which have no finite grid."
        )
    return size


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------


class SearchStrategy(ABC):
    """Proposes hyperparameter assignments for a tuning job.

    Strategies are stateful: they remember what they proposed, so keep one instance per
    tuning job and call :meth:`suggest` whenever training slots free up.
    """

    def __init__(self, space: SearchSpace, seed: int | None = None) -> None:
        self.space = space
        self.rng = np.random.default_rng(seed)
        self._issued: list[Params] = []

    @abstractmethod
    def suggest(self, history: History, n: int) -> list[Params]:
        """Return up to ``n`` new assignments, given the finished jobs in ``history``.

        Values are strings: integers without decimals, floats with ``repr`` precision,
        categoricals exactly as listed. Fewer than ``n`` (possibly none) means the strategy has
        nothing new to try.
        """

    def _pending(self, history: History) -> list[Params]:
        # Proposed earlier but not in the history yet: those jobs are presumably still running.
        done = {self.space.key(p) for p, _ in history}
        return [p for p in self._issued if self.space.key(p) not in done]


class RandomSearch(SearchStrategy):
    """Independent draws from each range's scaled distribution.

    Draws do not look at the history; in small discrete spaces they can repeat, as SageMaker's
    random search can. Also used for ``Hyperband``: local_aws runs every training job to
    completion (no successive halving), so Hyperband's search reduces to random sampling.
    """

    def suggest(self, history: History, n: int) -> list[Params]:
        out = [self.space.decode(row) for row in self.space.sample(self.rng, max(n, 0))]
        self._issued.extend(out)
        return out


class GridSearch(SearchStrategy):
    """Every combination once, in a fixed order.

    Order: parameters as listed (categorical ranges, then integer ranges), each in its listed
    or ascending order, the first parameter varying slowest (``itertools.product``).
    Combinations already in the history or proposed before are skipped.
    """

    def __init__(self, space: SearchSpace, seed: int | None = None) -> None:
        super().__init__(space, seed)
        if space.finite_size() is None:
            raise ValueError("Grid search needs categorical (or integer) ranges only.")

    def combinations(self) -> list[Params]:
        axes: list[list[str]] = []
        for p in self.space.parameters:
            if p.kind == "Categorical":
                axes.append(list(p.values))
            else:
                axes.append([str(i) for i in range(int(p.low), int(p.high) + 1)])
        names = [p.name for p in self.space.parameters]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes)]

    def suggest(self, history: History, n: int) -> list[Params]:
        taken = {self.space.key(p) for p, _ in history}
        taken.update(self.space.key(p) for p in self._issued)
        out: list[Params] = []
        for combo in self.combinations():
            if len(out) >= n:
                break
            if self.space.key(combo) not in taken:
                out.append(combo)
        self._issued.extend(out)
        return out


class BayesianSearch(SearchStrategy):
    """Gaussian-process Bayesian optimisation with expected improvement.

    The model is a GP (Matern 5/2 with one length scale per input, plus a noise term; targets
    normalised) fitted on the successful jobs, inputs mapped to the unit cube after scaling,
    categoricals one-hot. Each proposal maximises expected improvement over random candidates
    plus perturbations of the best points so far (or over every point of a small discrete
    space). Failed jobs carry no objective, so the model ignores them; they are not proposed
    again. Until ``n_initial`` jobs have succeeded, proposals are random.

    For a batch (``n > 1``) and for jobs still running, the model treats each pending point as
    if it returned the GP's predicted mean ("kriging believer"), so a batch spreads out instead
    of piling onto one maximum.
    """

    n_random_candidates = 1024
    n_local_candidates = 64
    max_enumerated = 4096

    def __init__(
        self,
        space: SearchSpace,
        objective_type: str,
        seed: int | None = None,
        n_initial: int = 3,
    ) -> None:
        super().__init__(space, seed)
        if objective_type not in _OBJECTIVE_TYPES:
            raise ValueError(
                f"HyperParameterTuningJobObjective.Type is {objective_type!r}; "
                "use Maximize or Minimize."
            )
        # The model minimises; a Maximize objective is negated on the way in.
        self.sign = -1.0 if objective_type == "Maximize" else 1.0
        self.n_initial = max(1, n_initial)

    def suggest(self, history: History, n: int) -> list[Params]:
        if n <= 0:
            return []
        rows: list[NDArray[np.float64]] = []
        ys: list[float] = []
        seen = {self.space.key(p) for p, _ in history}
        seen.update(self.space.key(p) for p in self._issued)
        for params, value in history:
            if value is None or not math.isfinite(value):
                continue
            row = self.space.encode_params(params)
            if row is not None:
                rows.append(row)
                ys.append(self.sign * float(value))
        if len(ys) < self.n_initial:
            out = self._random_unseen(seen, n)
        else:
            pending = [
                r for r in map(self.space.encode_params, self._pending(history)) if r is not None
            ]
            with warnings.catch_warnings(), _single_threaded_blas():
                # sklearn warns when length scales reach their bounds or a predicted variance
                # is clipped at 0: expected with few or duplicate points, and not actionable.
                warnings.simplefilter("ignore")
                out = self._model_based(np.array(rows), np.array(ys), pending, seen, n)
        self._issued.extend(out)
        return out

    def _random_unseen(self, seen: set[tuple[str | None, ...]], n: int) -> list[Params]:
        out: list[Params] = []
        finite = self.space.finite_size()
        # In a small discrete space, draw without replacement from what is left.
        if finite is not None and finite <= self.max_enumerated:
            left = [r for r in self.space.enumerate() if self._key(r) not in seen]
            for i in self.rng.permutation(len(left))[:n]:
                out.append(self.space.decode(left[i]))
            return out
        for row in self.space.sample(self.rng, n):
            out.append(self.space.decode(row))
        return out

    def _key(self, row: NDArray[np.float64]) -> tuple[str | None, ...]:
        return self.space.key(self.space.decode(row))

    def _candidates(self, x_best: NDArray[np.float64]) -> NDArray[np.float64]:
        finite = self.space.finite_size()
        if finite is not None and finite <= self.max_enumerated:
            return self.space.enumerate()
        cands = [self.space.sample(self.rng, self.n_random_candidates)]
        for centre in x_best:
            for scale in (0.02, 0.1):
                local = np.repeat(centre[None, :], self.n_local_candidates, axis=0)
                for j, p in enumerate(self.space.parameters):
                    if p.is_numeric:
                        local[:, j] = np.clip(
                            local[:, j] + self.rng.normal(0.0, scale, len(local)), 0.0, 1.0
                        )
                    else:
                        # Occasionally switch category so local search can cross categories.
                        flip = self.rng.random(len(local)) < 0.2
                        local[flip, j] = self.rng.integers(0, len(p.values), int(flip.sum()))
                cands.append(local)
        return self.space.snap(np.vstack(cands))

    def _model_based(
        self,
        x_internal: NDArray[np.float64],
        y: NDArray[np.float64],
        pending: list[NDArray[np.float64]],
        seen: set[tuple[str | None, ...]],
        n: int,
    ) -> list[Params]:
        # Imported here: sklearn takes ~0.3 s to import and only Bayesian jobs need it.
        from sklearn.gaussian_process import GaussianProcessRegressor

        x = self.space.features(x_internal)
        # One optimiser start from a neutral kernel: in benchmarks, random restarts doubled the
        # cost without finding better optima, and warm-starting from the previous fit got stuck.
        gp = GaussianProcessRegressor(
            kernel=_kernel(x.shape[1]), normalize_y=True, n_restarts_optimizer=0
        )
        gp.fit(x, y)
        best_y = float(np.min(y))
        top = x_internal[np.argsort(y)[:3]]
        cands_internal = self._candidates(top)
        cands = self.space.features(cands_internal)
        fitted = gp.kernel_

        fantasy_x = [self.space.features(p[None, :])[0] for p in pending]
        out: list[Params] = []
        taken = set(seen)
        xi = 0.01 * float(np.std(y) or 1.0)
        while len(out) < n:
            model, incumbent = gp, best_y
            if fantasy_x:
                # Kernel fixed at the fit on real results: fantasies must not shape it, and a
                # fixed-kernel refit is just a Cholesky factorisation.
                fx = np.vstack(fantasy_x)
                fy = gp.predict(fx)
                model = GaussianProcessRegressor(kernel=fitted, normalize_y=True, optimizer=None)
                model.fit(np.vstack([x, fx]), np.concatenate([y, fy]))
                # A believed result counts as the incumbent too, or the next pick lands beside it.
                incumbent = min(best_y, float(np.min(fy)))
            mu, sigma = model.predict(cands, return_std=True)
            score = _expected_improvement(mu, sigma, incumbent, xi)
            if not np.any(score > 0):
                # EI underflowed everywhere: fall back to an optimistic lower confidence bound.
                score = -(mu - 2.0 * sigma)
            pick: Params | None = None
            for i in np.argsort(-score, kind="stable"):
                params = self.space.decode(cands_internal[i])
                if self.space.key(params) not in taken:
                    pick = params
                    fantasy_x.append(cands[i])
                    break
            if pick is None:
                pick = self._fallback(taken)
                if pick is None:
                    break
                row = self.space.encode_params(pick)
                assert row is not None
                fantasy_x.append(self.space.features(row[None, :])[0])
            taken.add(self.space.key(pick))
            out.append(pick)
        return out

    def _fallback(self, taken: set[tuple[str | None, ...]]) -> Params | None:
        finite = self.space.finite_size()
        if finite is not None and finite <= self.max_enumerated:
            return None  # every point was enumerated as a candidate: the space is exhausted
        for row in self.space.sample(self.rng, 64):
            params = self.space.decode(row)
            if self.space.key(params) not in taken:
                return params
        return None


_blas_lock = threading.Lock()
_blas_users = 0
_blas_controller: Any = None
_blas_limiter: Any = None


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Hold BLAS to one thread while a GP runs.

    The matrices are tiny (one row per training job), so BLAS threads only add overhead, and
    with other processes competing for the CPU, OpenBLAS's spinning threads made a suggestion
    about 10x slower in measurements (250 ms against 25 ms on a loaded 2-CPU machine).

    The limit is process-wide, so it is reference-counted: with tuning jobs suggesting in
    parallel threads, nested limit/restore pairs would otherwise leave BLAS at one thread.
    """
    global _blas_users, _blas_controller, _blas_limiter
    with _blas_lock:
        if _blas_controller is None:
            # threadpoolctl only sees BLAS libraries already loaded, and scipy (used by the GP)
            # ships its own OpenBLAS next to numpy's: import it first or it keeps its threads.
            # Scanning the libraries takes ~10 ms, so it is done once.
            import sklearn.gaussian_process  # noqa: F401
            from threadpoolctl import ThreadpoolController

            _blas_controller = ThreadpoolController()
        if _blas_users == 0:
            _blas_limiter = _blas_controller.limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limiter.restore_original_limits()
                _blas_limiter = None


def _kernel(n_features: int) -> Any:
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    # The white-noise term also absorbs duplicate points, which would make K singular.
    return ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
        length_scale=np.full(n_features, 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5
    ) + WhiteKernel(1e-4, (1e-8, 1e-1))


def _expected_improvement(
    mu: NDArray[np.float64], sigma: NDArray[np.float64], best: float, xi: float
) -> NDArray[np.float64]:
    from scipy.stats import norm

    sigma = np.maximum(sigma, 1e-12)
    improvement = best - mu - xi
    z = improvement / sigma
    ei: NDArray[np.float64] = improvement * norm.cdf(z) + sigma * norm.pdf(z)
    return np.maximum(ei, 0.0)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def make_strategy(config: Mapping[str, Any]) -> SearchStrategy:
    """Validate ``config`` and build the strategy its ``Strategy`` names.

    ``Random`` and ``Hyperband`` give :class:`RandomSearch` (local_aws has no successive
    halving, so Hyperband is plain random sampling here), ``Grid`` gives :class:`GridSearch`,
    ``Bayesian`` gives :class:`BayesianSearch`. ``RandomSeed`` seeds every strategy.
    """
    validate_config(config)
    space = SearchSpace.from_config(config)
    seed = config.get("RandomSeed")
    strategy = config["Strategy"]
    if strategy == "Grid":
        return GridSearch(space, seed)
    if strategy == "Bayesian":
        objective = config.get("HyperParameterTuningJobObjective") or {}
        if "Type" not in objective:
            raise ValueError(
                "HyperParameterTuningJobObjective.Type is required for the Bayesian strategy; "
                "set it to Maximize or Minimize."
            )
        return BayesianSearch(space, objective["Type"], seed)
    return RandomSearch(space, seed)


def best(history: History, objective_type: str) -> int | None:
    """Index of the best job in ``history`` (the first one on ties), or None if none succeeded."""
    if objective_type not in _OBJECTIVE_TYPES:
        raise ValueError(f"objective_type is {objective_type!r}; use Maximize or Minimize.")
    sign = -1.0 if objective_type == "Maximize" else 1.0
    best_index: int | None = None
    best_value = math.inf
    for i, (_, value) in enumerate(history):
        if value is None or not math.isfinite(value):
            continue
        if sign * value < best_value:
            best_index, best_value = i, sign * value
    return best_index
