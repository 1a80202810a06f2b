"""Slack chat-ops bot that aborts Northflank template runs."""

__version__ = "0.1.0"
