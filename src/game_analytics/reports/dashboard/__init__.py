"""The ``dashboard`` report type: a product dashboard's panels run against Prometheus (and PostgreSQL for SQL
panels) and drawn with matplotlib, laid out as in Grafana (see docs/reports.md)."""

from .build import DashboardTarget, build_dashboard_report, load_dashboard

__all__ = ["DashboardTarget", "build_dashboard_report", "load_dashboard"]
