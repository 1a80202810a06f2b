"""Local stand-ins for Northflank and Slack, used by the demo and the tests."""
