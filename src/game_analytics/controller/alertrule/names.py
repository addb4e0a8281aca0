"""Names and labels of an AlertRule's children (``<name>`` is the AlertRule's name)."""

from __future__ import annotations

#: Label marking the detector ConfigMaps the detection worker watches.
LABEL_DETECTOR_CONFIG = "gameanalytics.io/detector-config"
#: Label naming the GameDataSource whose detection worker runs the rule.
LABEL_DATA_SOURCE = "gameanalytics.io/data-source"
DETECTOR_CONFIG_KEY = "rule.json"


def alert_name(rule_name: str) -> str:
    """``whale-wealth-jump`` -> ``WhaleWealthJump`` (Prometheus alert names are CamelCase by convention)."""
    return "".join(part.capitalize() for part in rule_name.replace("_", "-").split("-") if part)


def rule_object_name(name: str) -> str:
    """Name of the PrometheusRule and of the AlertmanagerConfig: the AlertRule's own name."""
    return name


def detector_config_name(name: str) -> str:
    """Name of the detector ConfigMap: ``<name>-detector``."""
    return f"{name}-detector"
