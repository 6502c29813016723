"""AWS-shaped errors: raised anywhere in the SageMaker app, rendered as JSON protocol errors."""

from __future__ import annotations


class AWSError(Exception):
    """An error the client sees as ``botocore.exceptions.ClientError`` with this code."""

    code = "InternalFailure"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status


class ValidationException(AWSError):
    code = "ValidationException"


class ResourceNotFound(AWSError):
    code = "ResourceNotFound"


class ResourceInUse(AWSError):
    code = "ResourceInUse"


class ResourceLimitExceeded(AWSError):
    code = "ResourceLimitExceeded"


class ConflictException(AWSError):
    code = "ConflictException"


class ThrottlingException(AWSError):
    code = "ThrottlingException"


class ModelError(AWSError):
    """InvokeEndpoint: the model container answered with an error (SageMaker Runtime)."""

    code = "ModelError"
    status = 424
