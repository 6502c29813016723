"""local_aws: an embedded, loopback-only AWS whose SageMaker really runs jobs.

moto (unmodified, server mode) serves S3, CloudWatch Logs, CloudWatch metrics, IAM,
STS and Application Auto Scaling; :mod:`local_aws.sagemaker` serves ``sagemaker`` and
``sagemaker-runtime``. Everything listens on one port and persists in one data dir.
Start it with ``local-aws serve`` or, in Python, :class:`local_aws.server.LocalAWS`.
"""
