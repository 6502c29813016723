"""Data quality, Deequ-style, on Great Expectations.

- ``suites``: the GX file project (great_expectations/): suites with severities and schema
- ``anomaly``: anomaly strategies on metric history, turned into GX runtime parameters
- ``history``: the metric history in S3, one JSON object per dataset and partition date
- ``severity``: the gate's verdict (Error fails, Warning alerts) and its readable summary
- ``suggest``: constraint suggestion from a partition's profile
- ``request``: the validation ProcessingJob (containers/validate.py runs inside it)

``python -m mlops_pipeline.quality suggest ...`` drafts a suite; see ``--help``.
"""
