"""Alerts: task failures (and data-quality failures, cost over budget, ...) to Slack through
the Slack provider's ``SlackWebhookNotifier``, else to the log and a local alerts file.

- ``alert``: the message, pure (Slack blocks and a plain-text fallback);
- ``send``: delivery with bounded retries; never raises, so a task's outcome never depends
  on Slack;
- ``on_failure`` / ``alerting_args``: the piece a DAG wires in (``default_args``).
"""

from mlops_pipeline.notifications.alert import Alert, drift_alert, failure_alert, rollback_alert
from mlops_pipeline.notifications.send import (
    ALERTED,
    alerting_args,
    notify_failure,
    on_failure,
    send,
)

__all__ = [
    "ALERTED",
    "Alert",
    "alerting_args",
    "drift_alert",
    "failure_alert",
    "notify_failure",
    "on_failure",
    "rollback_alert",
    "send",
]
