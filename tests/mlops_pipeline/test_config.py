"""Settings: profiles, overrides from the environment, clear errors."""

from __future__ import annotations

import pytest

from mlops_pipeline.config import (
    QUALITY_IMAGE,
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    SettingsError,
    load_settings,
)


def test_local_profile_is_the_default():
    settings = load_settings({})
    assert settings.profile == "local"
    assert settings.bucket == "mlops-local"
    assert settings.check_interval_seconds == 0.5
    assert settings.vpc_config is None
    assert settings.s3_uri("raw", "transactions/", "dt=2026-01-01") == (
        "s3://mlops-local/raw/transactions/dt=2026-01-01"
    )


def test_overrides_are_typed():
    settings = load_settings(
        {
            "MLOPS_BUCKET": "b1",
            "MLOPS_NETWORK_ISOLATION": "true",
            "MLOPS_SUBNETS": "subnet-1, subnet-2",
            "MLOPS_SECURITY_GROUP_IDS": "sg-1",
            "MLOPS_JOB_TIMEOUT_SECONDS": "60",
            "MLOPS_KMS_KEY_ID": "",
            "MLOPS_CHECK_INTERVAL_SECONDS": "0.25",
        }
    )
    assert settings.check_interval_seconds == 0.25
    assert settings.bucket == "b1" and settings.network_isolation is True
    assert settings.vpc_config == {
        "Subnets": ["subnet-1", "subnet-2"],
        "SecurityGroupIds": ["sg-1"],
    }
    assert settings.job_timeout_seconds == 60 and settings.kms_key_id is None


def test_aws_profile_requires_bucket_and_role():
    with pytest.raises(SettingsError, match="MLOPS_BUCKET, MLOPS_ROLE_ARN"):
        load_settings({"MLOPS_PROFILE": "aws"})
    settings = load_settings(
        {"MLOPS_PROFILE": "aws", "MLOPS_BUCKET": "prod", "MLOPS_ROLE_ARN": "arn:aws:iam::1:role/r"}
    )
    assert settings.check_interval_seconds == 30


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_PROFILE": "prod"}, "MLOPS_PROFILE='prod' is not a profile"),
        ({"MLOPS_NETWORK_ISOLATION": "maybe"}, "MLOPS_NETWORK_ISOLATION='maybe' is not a boolean"),
        (
            {"MLOPS_JOB_TIMEOUT_SECONDS": "1h"},
            "MLOPS_JOB_TIMEOUT_SECONDS='1h' is not a whole number",
        ),
        ({"MLOPS_EXTRA": "[1]"}, "MLOPS_EXTRA must be a JSON object"),
        (
            {"MLOPS_CHECK_INTERVAL_SECONDS": "often"},
            "MLOPS_CHECK_INTERVAL_SECONDS='often' is not a number",
        ),
        (
            {"MLOPS_SUBNETS": "subnet-0a1b"},
            "MLOPS_SUBNETS is set but MLOPS_SECURITY_GROUP_IDS is not",
        ),
        (
            {"MLOPS_SECURITY_GROUP_IDS": "sg-0123"},
            "MLOPS_SECURITY_GROUP_IDS is set but MLOPS_SUBNETS is not",
        ),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(env)


def test_default_images_are_what_the_sagemaker_sdk_resolves():
    from sagemaker.core import image_uris

    assert SKLEARN_IMAGE == image_uris.retrieve("sklearn", "us-east-1", "1.2-1")
    assert XGBOOST_IMAGE == image_uris.retrieve("xgboost", "us-east-1", "1.7-1")
    assert QUALITY_IMAGE == image_uris.retrieve("sklearn", "us-east-1", "1.4-2-py312")
