"""Which container images local_aws can stand in for, and how.

SageMaker's framework images (scikit-learn, XGBoost) run user scripts on a Python with
the framework installed; here that Python is local_aws's own interpreter. Any other
image would need Docker, so a job naming one fails with a reason that says so.
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

_IMAGE = re.compile(r"^(?:[^/]+/)?(?P<repo>[^:@]+)(?:[:@].*)?$")


def repository(image: str) -> str:
    match = _IMAGE.match(image)
    return match.group("repo") if match else image


def unsupported_reason(image: str) -> str | None:
    """None when the image runs here; otherwise the FailureReason a job gets."""
    if repository(image) in FRAMEWORK_REPOSITORIES:
        return None
    return (
        f"ClientError: local_aws cannot run image {image!r} (it has no Docker): only the "
        "SageMaker scikit-learn and XGBoost framework images run, on the local Python. "
        "Use sagemaker.image_uris.retrieve('sklearn' or 'xgboost', region, version)."
    )
