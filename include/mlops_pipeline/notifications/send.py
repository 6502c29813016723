"""Delivery: Slack through the provider's SlackWebhookNotifier when the connection exists,
else (and when Slack fails) the log and a local alerts file. Never raises."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_pipeline.notifications.alert import Alert, failure_alert

if TYPE_CHECKING:
    from mlops_pipeline.config import Settings

log = logging.getLogger(__name__)


def alerts_path(settings: Settings) -> Path:
    path = Path(os.path.expanduser(settings.alerts_file))
    if not path.is_absolute():
        home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
        path = Path(home) / path
    return path


def _redactor() -> Callable[[str], str]:
    try:
        from airflow.sdk.log import redact  # masks every connection secret seen so far
    except ImportError:  # pragma: no cover - outside an Airflow installation
        return str

    return lambda text: str(redact(text))


def _slack_connection(conn_id: str) -> bool:
    from airflow.sdk import BaseHook

    try:
        BaseHook.get_connection(conn_id)
    except Exception:  # AirflowNotFoundException, or no way to read connections here
        return False
    return True


def _retry_handlers(retries: int) -> list[Any]:
    from slack_sdk.http_retry.builtin_handlers import (
        ConnectionErrorRetryHandler,
        RateLimitErrorRetryHandler,
        ServerErrorRetryHandler,
    )

    return [
        ConnectionErrorRetryHandler(max_retry_count=retries),
        ServerErrorRetryHandler(max_retry_count=retries),
        RateLimitErrorRetryHandler(max_retry_count=retries),
    ]


def _to_file(settings: Settings, alert: Alert, **extra: Any) -> Path | None:
    path = alerts_path(settings)
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(), **alert.to_json(), **extra}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
    except OSError as exc:
        log.warning("alert not written to %s: %s", path, exc.strerror)
        return None
    return path


def send(
    alert: Alert,
    settings: Settings | None = None,
    context: Mapping[str, Any] | None = None,
    *,
    logger: Any = None,
) -> str:
    """Deliver ``alert``; returns where it went: ``slack``, ``file`` or ``file (slack
    failed)``. Never raises: an alerting outage must not change a task's outcome."""
    out = logger or log
    try:
        if settings is None:
            from mlops_pipeline.config import load_settings

            settings = load_settings()
        out.warning("ALERT %s", alert.text())
        conn_id = settings.slack_webhook_conn_id
        if not conn_id or not _slack_connection(conn_id):
            path = _to_file(settings, alert, delivered="file")
            out.warning(
                "no Slack connection %r: alert written to %s (create the connection to send "
                "alerts to Slack)",
                conn_id,
                path,
            )
            return "file"
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        notifier = SlackWebhookNotifier(
            slack_webhook_conn_id=conn_id,
            text=alert.text(),
            blocks=alert.blocks(),
            timeout=settings.alert_timeout_seconds,
            retry_handlers=_retry_handlers(settings.alert_retries),
            unfurl_links=False,
        )
        try:
            # notify(), not __call__: an error message with "{{" is text, not a template
            notifier.notify(dict(context or {}))
        except Exception as exc:
            reason = _redactor()(f"{type(exc).__name__}: {first_line_of(exc)}")
            path = _to_file(settings, alert, delivered="file", slack_error=reason)
            out.warning(
                "Slack alert failed after %d retries (%s); alert written to %s",
                settings.alert_retries,
                reason,
                path,
            )
            return "file (slack failed)"
        out.info("alert sent to Slack (connection %s)", conn_id)
        return "slack"
    except Exception:
        out.exception("alert could not be delivered")
        return "none"


def first_line_of(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


# set on an exception whose task already sent its own, more specific alert (a rollback)
ALERTED = "mlops_alerted"


def notify_failure(context: Mapping[str, Any]) -> None:
    """An ``on_failure_callback``: the failed task's alert, to Slack or the alerts file."""
    if getattr(context.get("exception"), ALERTED, False):
        return
    try:
        alert = failure_alert(context, redact=_redactor())
    except Exception:
        log.exception("failure alert could not be built")
        return
    ti = context.get("ti")
    send(alert, context=context, logger=getattr(ti, "log", None) or log)


def on_failure() -> Callable[[Mapping[str, Any]], None]:
    return notify_failure


def alerting_args() -> dict[str, Any]:
    """``default_args`` entries that alert on every task failure: ``{**alerting_args(), ...}``."""
    return {"on_failure_callback": [notify_failure]}
