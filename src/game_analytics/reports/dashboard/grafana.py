"""Grafana's rules for running a dashboard's queries, outside Grafana (pure, no I/O).

* **Intervals.** ``$__interval`` is the time range divided by the panel's data points (its ``maxDataPoints``, by
  default its width in pixels), rounded to a "nice" interval (:func:`round_interval`) and never below the minimum
  interval (the panel's ``interval``, else the data source's scrape interval). Range queries use it as their step.
  ``$__rate_interval`` is ``max($__interval + scrape interval, 4 * scrape interval)``. ``$__range`` is the range.
* **Variables.** ``$name``, ``${name}``, ``${name:fmt}`` and ``[[name]]``. A multi-value or include-all variable is
  formatted per data source: for Prometheus as the regular expression ``(a|b)`` of its regex-escaped values (All:
  the variable's ``allValue``, e.g. ``.*``), for SQL as the quoted list ``'a','b'`` (All: ``allValue`` as written).
  ``${name:regex}`` is Grafana's ``regex`` format in either: ``(a|b)`` of the values, regex-escaped once (inside
  a SQL string literal, quotes doubled), All: ``allValue``.
* **Legends.** ``{{label}}`` in ``legendFormat`` is replaced by the series' label value (empty when absent); an empty
  format gives the series' selector ``name{a="b"}``.
* **Units** (``fieldConfig.defaults.unit``): :func:`format_value` covers the units the product's dashboards use.
* **Thresholds**: :func:`threshold_color` (Grafana's default: green, red from 80).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "DEFAULT_THRESHOLDS",
    "GRID_COLUMNS",
    "QueryWindow",
    "format_value",
    "legend",
    "round_interval",
    "substitute",
    "threshold_color",
    "variable_values",
]

#: Grafana's dashboard grid has 24 columns.
GRID_COLUMNS = 24
#: Width in pixels of the dashboard a panel's default data points are derived from (a 1920 px screen).
DASHBOARD_WIDTH_PX = 1920
#: Grafana's default thresholds of a new panel: base green, red from 80.
DEFAULT_THRESHOLDS = [{"color": "green", "value": None}, {"color": "red", "value": 80}]

# upper bound (ms) of a raw interval -> the nice interval (ms) Grafana rounds it to
_NICE = [(15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000), (3_500, 2_000),
         (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000), (45_000, 30_000), (90_000, 60_000),
         (210_000, 120_000), (450_000, 300_000), (780_000, 600_000), (1_200_000, 900_000), (1_800_000, 1_200_000),
         (3_600_000, 1_800_000), (7_200_000, 3_600_000), (10_800_000, 7_200_000), (21_600_000, 10_800_000),
         (43_200_000, 21_600_000), (86_400_000, 43_200_000), (604_800_000, 86_400_000),
         (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000)]  # fmt: skip
_YEAR_MS = 31_536_000_000

_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)\]\]")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")

#: Grafana's named colours (the classic palette) as hex.
COLORS = {"green": "#73bf69", "red": "#f2495c", "yellow": "#fade2a", "orange": "#ff9830", "blue": "#5794f2",
          "purple": "#b877d9", "text": "#303030", "transparent": "#ffffff00", "dark-green": "#37872d",
          "dark-red": "#c4162a", "dark-yellow": "#e0b400", "dark-orange": "#fa6400", "dark-blue": "#1f60c4"}


def round_interval(ms: float) -> int:
    """The nice interval (ms) Grafana rounds a raw interval of ``ms`` milliseconds to (10 ms ... 1 y)."""
    for bound, nice in _NICE:
        if ms <= bound:
            return nice
    return _YEAR_MS


def parse_interval(text: str) -> float:
    """Seconds of a Grafana/Prometheus interval such as ``15s``, ``1m``, ``500ms``, ``1h30m``, ``>10s``.

    Raises:
        ValueError: not an interval.
    """
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, "y": 31_536_000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text.strip().lstrip(">"))
    if not parts or "".join(a + b for a, b in parts) != text.strip().lstrip(">"):
        raise ValueError(f"not an interval: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def _promql_duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms" if seconds < 1 or seconds != int(seconds) else f"{int(seconds)}s"


@dataclass(frozen=True)
class QueryWindow:
    """The time range, step and interval variables of one panel's queries.

    Attributes:
        start, end: the dashboard's time range (aware datetimes).
        interval: ``$__interval`` in seconds (also the step of range queries).
        scrape_interval: the data source's scrape interval in seconds.
    """

    start: datetime
    end: datetime
    interval: float
    scrape_interval: float

    @classmethod
    def for_panel(cls, panel: dict[str, Any], start: datetime, end: datetime, scrape_interval: float) -> QueryWindow:
        """The window of ``panel`` (its ``gridPos.w``, ``maxDataPoints`` and ``interval``) over ``[start, end]``."""
        width = int((panel.get("gridPos") or {}).get("w", GRID_COLUMNS))
        points = panel.get("maxDataPoints") or max(1, round(width / GRID_COLUMNS * DASHBOARD_WIDTH_PX) - 16)
        minimum = parse_interval(panel["interval"]) if panel.get("interval") else scrape_interval
        raw_ms = (end - start).total_seconds() * 1000 / points
        interval = max(round_interval(raw_ms) / 1000, minimum)
        return cls(start, end, interval, scrape_interval)

    @property
    def rate_interval(self) -> float:
        """``$__rate_interval`` in seconds."""
        return max(self.interval + self.scrape_interval, 4 * self.scrape_interval)

    @property
    def step(self) -> float:
        """The step of range queries: the interval, at least 1 s."""
        return max(self.interval, 1.0)

    def aligned(self) -> tuple[float, float]:
        """``(start, end)`` as Unix seconds aligned down to multiples of the step, as Grafana sends them."""
        step = self.step
        return math.floor(self.start.timestamp() / step) * step, math.floor(self.end.timestamp() / step) * step

    def builtins(self) -> dict[str, str]:
        """Grafana's built-in variables for this window, as they appear in a query."""
        seconds = (self.end - self.start).total_seconds()
        return {"__interval": _promql_duration(self.interval), "__interval_ms": str(round(self.interval * 1000)),
                "__rate_interval": _promql_duration(self.rate_interval), "__range": f"{round(seconds)}s",
                "__range_s": str(round(seconds)), "__range_ms": str(round(seconds * 1000))}  # fmt: skip


def variable_values(dashboard: dict[str, Any], given: dict[str, list[str]]) -> dict[str, tuple[list[str], dict]]:
    """``{name: (selected values, variable model)}`` of the dashboard's template variables: the ``given`` values,
    else the variable's current value (``["$__all"]`` for All). Data source variables are left out.

    Raises:
        ValueError: a given name the dashboard has no variable of.
    """
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", []) if v.get("type") != "datasource"}
    unknown = sorted(set(given) - set(variables))
    if unknown:
        raise ValueError(f"dashboard {dashboard.get('uid')} has no variable {', '.join(unknown)} "
                         f"(it has: {', '.join(sorted(variables)) or 'none'})")  # fmt: skip
    out = {}
    for name, var in variables.items():
        if name in given:
            values = list(given[name]) or ["$__all"]
        else:
            current = (var.get("current") or {}).get("value", "$__all")
            values = list(current) if isinstance(current, list) else [str(current)]
        out[name] = (values, var)
    return out


def _format(values: list[str], var: dict, sql: bool) -> str:
    all_selected = values == ["$__all"] or "$__all" in values
    if all_selected and var.get("allValue"):
        return str(var["allValue"])
    if all_selected:
        values = [str(o.get("value")) for o in var.get("options", []) if o.get("value") not in (None, "$__all")]
    multi = var.get("multi") or var.get("includeAll")
    if sql:
        quoted = ["'" + v.replace("'", "''") + "'" for v in values]
        return ",".join(quoted) if multi else (values[0] if values else "")
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
    if not multi:
        return values[0] if values else ""
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _regex(values: list[str], var: dict, sql: bool) -> str:
    """Grafana's ``regex`` format (``${name:regex}``): one value or ``(a|b)``, each regex-escaped."""
    if ("$__all" in values) and var.get("allValue"):
        return str(var["allValue"])
    if "$__all" in values:
        values = [str(o.get("value")) for o in var.get("options", []) if o.get("value") not in (None, "$__all")]
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}/])", r"\\\1", v) for v in values]
    if sql:
        escaped = [v.replace("'", "''") for v in escaped]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(text: str, variables: dict[str, tuple[list[str], dict]], window: QueryWindow, *, sql: bool = False) -> str:
    """``text`` with Grafana's built-in and template variables replaced (see the module docstring); unknown names
    are left as written (Grafana does the same)."""
    builtins = window.builtins()

    def replace(match: re.Match[str]) -> str:
        name = next(g for i, g in enumerate(match.groups()) if g and i != 1)
        if name in builtins:
            return builtins[name]
        if name in variables:
            if match[2] == "regex":
                return _regex(*variables[name], sql=sql)
            return _format(*variables[name], sql=sql)
        return match[0]

    return _VARIABLE.sub(replace, text)


def legend(fmt: str | None, metric: dict[str, str]) -> str:
    """The legend of a series with labels ``metric`` (``__name__`` included) for ``legendFormat`` ``fmt``."""
    if fmt and fmt != "__auto":
        return _LEGEND.sub(lambda m: metric.get(m[1], ""), fmt).strip() or "value"
    name = metric.get("__name__", "")
    labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}" if labels else (name or "value")


def _si(value: float, suffixes: tuple[str, ...], base: float = 1000.0) -> tuple[float, str]:
    scaled, i = value, 0
    while abs(scaled) >= base and i < len(suffixes) - 1:
        scaled, i = scaled / base, i + 1
    return scaled, suffixes[i]


def _number(value: float, decimals: int | None = None) -> str:
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    magnitude = abs(value)
    if magnitude == 0 or magnitude >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:,.1f}"
    if magnitude >= 0.01:
        return f"{value:,.2f}"
    return f"{value:.2g}"


def _duration(seconds: float) -> str:
    magnitude = abs(seconds)
    for size, unit in ((31_536_000, "year"), (604_800, "week"), (86_400, "day"), (3600, "hour"), (60, "min")):
        if magnitude >= size:
            return f"{_number(seconds / size)} {unit}"
    if magnitude >= 1 or magnitude == 0:
        return f"{_number(seconds)} s"
    if magnitude >= 0.001:
        return f"{_number(seconds * 1000)} ms"
    return f"{_number(seconds * 1_000_000)} µs"


def format_value(value: float | None, unit: str | None, decimals: int | None = None) -> str:
    """``value`` as Grafana shows it in ``unit`` (``short``, ``none``, ``percent``, ``percentunit``, ``s``, ``ms``,
    ``ops``, ``reqps``, ``bytes``, ``decbytes``, ``currencyUSD``, ``dtdurations``, ``hex``, ``hex0x``); other units print the number
    and the unit name. None and NaN are ``-``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    unit = unit or "short"
    if unit == "none":
        return _number(value, decimals)
    if unit == "short":
        scaled, suffix = _si(value, ("", " K", " Mil", " Bil", " Tri"))
        return _number(scaled, decimals) + suffix
    if unit == "percent":
        return _number(value, decimals) + "%"
    if unit == "percentunit":
        return _number(100 * value, decimals if decimals is not None else (1 if abs(value) < 10 else 0)) + "%"
    if unit in ("s", "dtdurations"):
        return _duration(value)
    if unit == "ms":
        return _duration(value / 1000)
    if unit in ("ops", "reqps", "rps", "wps"):
        scaled, suffix = _si(value, ("", " K", " Mil", " Bil"))
        return _number(scaled, decimals) + suffix + {"ops": " ops/s", "reqps": " req/s"}.get(unit, f" {unit}")
    if unit == "bytes":
        scaled, suffix = _si(value, (" B", " KiB", " MiB", " GiB", " TiB"), 1024.0)
        return _number(scaled, decimals) + suffix
    if unit == "decbytes":
        scaled, suffix = _si(value, (" B", " kB", " MB", " GB", " TB"))
        return _number(scaled, decimals) + suffix
    if unit in ("hex", "hex0x"):  # Grafana: the rounded value in upper-case hexadecimal
        digits = f"{round(value):X}" if value >= 0 else f"-{round(-value):X}"
        return ("0x" if unit == "hex0x" else "") + digits
    if unit == "currencyUSD":
        scaled, suffix = _si(value, ("", "K", "M", "B"))
        return "$" + _number(scaled, decimals if decimals is not None else 2) + suffix
    return f"{_number(value, decimals)} {unit}"


def threshold_color(value: float | None, field_config: dict[str, Any]) -> str:
    """Hex colour of ``value`` under the panel's thresholds (``fieldConfig.defaults.thresholds.steps``; Grafana's
    default when unset): the colour of the highest step at or below the value."""
    thresholds = ((field_config or {}).get("defaults") or {}).get("thresholds") or {}
    steps = thresholds.get("steps") or DEFAULT_THRESHOLDS
    color = steps[0]["color"]
    if value is not None and math.isfinite(value):
        for step in steps[1:]:
            if step.get("value") is not None and value >= float(step["value"]):
                color = step["color"]
    return COLORS.get(color, color)

