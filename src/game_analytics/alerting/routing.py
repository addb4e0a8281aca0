"""The Alertmanager route timing every AlertRule gets (THE values: the operator's AlertmanagerConfig renders them
and the backtest replays them).  The AlertRule spec has no routing fields yet, so these apply to every rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from game_analytics.api.common import parse_duration


@dataclass(frozen=True)
class RouteTiming:
    """Alertmanager's grouping and timing of one route, as Prometheus-style durations (``10s``, ``4h``)."""

    group_by: tuple[str, ...]
    group_wait: str
    group_interval: str
    repeat_interval: str

    def durations(self) -> tuple[timedelta, timedelta, timedelta]:
        """``(group_wait, group_interval, repeat_interval)`` as timedeltas.

        Raises:
            ValueError: a value is not a duration (group_interval and repeat_interval must be positive).
        """
        return (parse_duration(self.group_wait, allow_zero=True), parse_duration(self.group_interval),
                parse_duration(self.repeat_interval))  # fmt: skip


#: the route of every AlertRule's AlertmanagerConfig (controller/alertrule/render.py)
DEFAULT_ROUTE = RouteTiming(group_by=("alertname", "rule", "game"), group_wait="10s", group_interval="1m",
                            repeat_interval="4h")  # fmt: skip
