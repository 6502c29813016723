"""Linear quantile regression (Linear Learner's ``quantile_loss``), trained epoch by epoch.

scikit-learn's SGDRegressor has no quantile (pinball) loss, and its QuantileRegressor solves
one linear programme over all the data at once: neither trains mini-batch by mini-batch as
the algorithm does (and as its early stopping needs). This is a small Adam optimiser on the
pinball loss with the algorithm's L2 (``wd``) and L1 (``l1``) penalties, shaped like the
scikit-learn estimators the Linear Learner module drives (``partial_fit``, ``coef_``,
``intercept_``).
"""

from __future__ import annotations

from typing import Any


def pinball_loss(quantile: float, y: Any, prediction: Any) -> float:
    """The mean quantile loss: q * (y - f) above the prediction, (1 - q) * (f - y) below."""
    import numpy as np

    residual = np.asarray(y, dtype=np.float64) - np.asarray(prediction, dtype=np.float64)
    return float(np.mean(np.maximum(quantile * residual, (quantile - 1) * residual)))


class QuantileRegressor:
    """Weights w, b minimising mean pinball loss + wd/2 |w|^2 + l1 |w|_1, one Adam step per
    mini-batch; the step shrinks as 1/sqrt(1 + steps/100) so the subgradient settles."""

    def __init__(
        self,
        quantile: float,
        *,
        wd: float = 0.0,
        l1: float = 0.0,
        learning_rate: float = 0.05,
        fit_intercept: bool = True,
    ):
        self.quantile = quantile
        self.wd, self.l1 = wd, l1
        self.learning_rate = learning_rate
        self.fit_intercept = fit_intercept
        self.coef_: Any = None
        self.intercept_: Any = None
        self._moments: list[Any] = []
        self._steps = 0

    def partial_fit(self, x: Any, y: Any, sample_weight: Any = None) -> QuantileRegressor:
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        if self.coef_ is None:
            self.coef_ = np.zeros(x.shape[1])
            self.intercept_ = np.zeros(1)
            self._moments = [np.zeros(x.shape[1] + 1), np.zeros(x.shape[1] + 1)]
        residual = y - (x @ self.coef_ + self.intercept_[0])
        # d loss / d prediction: -q above, 1 - q below (0 exactly on it)
        slope = np.where(residual > 0, -self.quantile, np.where(residual < 0, 1 - self.quantile, 0))
        slope = slope * weight / max(float(weight.sum()), 1e-12)
        grad = np.empty(x.shape[1] + 1)
        grad[:-1] = x.T @ slope + self.wd * self.coef_ + self.l1 * np.sign(self.coef_)
        grad[-1] = slope.sum() if self.fit_intercept else 0.0
        self._adam(grad)
        return self

    def _adam(self, grad: Any) -> None:
        import numpy as np

        beta1, beta2, eps = 0.9, 0.999, 1e-8
        self._steps += 1
        first, second = self._moments
        first[:] = beta1 * first + (1 - beta1) * grad
        second[:] = beta2 * second + (1 - beta2) * grad**2
        unbiased = first / (1 - beta1**self._steps)
        scale = np.sqrt(second / (1 - beta2**self._steps)) + eps
        rate = self.learning_rate / np.sqrt(1 + self._steps / 100)
        step = rate * unbiased / scale
        self.coef_ = self.coef_ - step[:-1]
        self.intercept_ = self.intercept_ - step[-1]
