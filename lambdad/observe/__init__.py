"""Observability: function logs (CloudWatch-Logs-compatible), metrics and metering."""
