"""Alerting tools outside the operator: Alertmanager routing defaults and the AlertRule backtest."""
