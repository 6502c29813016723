"""The Slack stand-in and the alerts file, for the alert tests."""

from tests.notifications.receiver import alerts_file, receiver  # noqa: F401
