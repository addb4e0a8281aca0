"""Monitoring artefacts: metric names, PromQL templates, Alertmanager routing and Grafana dashboards."""
