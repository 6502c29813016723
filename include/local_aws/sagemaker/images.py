"""Which container images local_aws can stand in for, and how.

SageMaker's framework images (scikit-learn, XGBoost) run user scripts on a Python with
the framework installed; here that Python is local_aws's own interpreter. The built-in
algorithms' images (k-NN, Linear Learner; XGBoost with no script) train and serve with
:mod:`local_aws.sagemaker.builtins`. Any other image would need Docker, so a job naming
one fails with a reason that says so.
"""

from __future__ import annotations

import re

# Repository names of the framework images `sagemaker.image_uris.retrieve` returns.
FRAMEWORK_REPOSITORIES = frozenset(
    {
        "sagemaker-scikit-learn",
        "sagemaker-xgboost",
        "sagemaker-sklearn-automl",
    }
)

# Repositories of the built-in algorithms' own images (training and hosting, no processing).
ALGORITHM_REPOSITORIES = frozenset({"knn", "linear-learner"})

_IMAGE = re.compile(r"^(?:[^/]+/)?(?P<repo>[^:@]+)(?:[:@].*)?$")


def repository(image: str) -> str:
    match = _IMAGE.match(image)
    return match.group("repo") if match else image


def unsupported_reason(image: str, *, algorithms: bool = False) -> str | None:
    """None when the image runs here; otherwise the FailureReason a job gets.

    ``algorithms``: the built-in algorithms' images run too (training jobs, models)."""
    repo = repository(image)
    if repo in FRAMEWORK_REPOSITORIES or (algorithms and repo in ALGORITHM_REPOSITORIES):
        return None
    also = " and the built-in k-NN and Linear Learner algorithms" if algorithms else ""
    return (
        f"ClientError: local_aws cannot run image {image!r} (it has no Docker): only the "
        f"SageMaker scikit-learn and XGBoost framework images{also} run, on the local "
        "Python. Use sagemaker.image_uris.retrieve('sklearn', 'xgboost'"
        + (", 'knn' or 'linear-learner'" if algorithms else "")
        + ", region, version)."
    )
