"""Labelled anomalies planted into the real data, one planter per detector type (pure: data in, events out).

The base is the CDNOW purchase log (:func:`game_analytics.data.events.purchase_events`).  It has no logins and no
trades, so :func:`background` derives them from it, keeping its real timing and volume: a login of the customer
from their home region (fixed per customer) before every purchase, and a gift of one CD to another customer for
every purchase of two or more.  The PromQL-evaluated detectors read exporter series; :func:`series` derives those
from the same log (per-day price index, hourly ingest counters and distinct active customers) with synthetic
error events and ingest lag where the data has none (docs/backtest.md says which).

Every planter returns :class:`Planted`: the extra events (or series changes) and the :class:`~.quality.Plant`
labels, at times from :func:`plant_times` (deterministic for a seed; never at midnight, when CDNOW's own
purchases fall).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from game_analytics.alerting.quality import Plant

__all__ = ["EVENT_PLANTERS", "REGIONS", "Planted", "background", "plant_times"]

REGIONS = ("US", "EU", "APAC", "LATAM", "MEA")
Event = dict[str, Any]


@dataclass
class Planted:
    """What a planter adds: ``events`` and the ``plants`` they carry."""

    events: list[Event] = field(default_factory=list)
    plants: list[Plant] = field(default_factory=list)


def home_region(player: str) -> str:
    """The customer's fixed home region (a hash of the id)."""
    return REGIONS[int(hashlib.sha256(player.encode()).hexdigest(), 16) % 3]  # US, EU or APAC


def _event(kind: str, key: str, player: str, at: datetime, payload: dict[str, Any], region: str = "US") -> Event:
    return {"event_id": f"q-{kind}-{key}", "event_type": kind, "occurred_at": at, "player_id": player,
            "game": "cdnow", "region": region, "payload": payload}  # fmt: skip


def background(base: Sequence[Event]) -> list[Event]:
    """Logins and gifts derived from the purchases (see the module docstring)."""
    out = []
    customers = sorted({e["player_id"] for e in base})
    for i, e in enumerate(base):
        at, player = e["occurred_at"], e["player_id"]
        out.append(_event("login", f"bg{i}", player, at - timedelta(minutes=1), {}, home_region(player)))
        if int(e["payload"].get("quantity", 1)) >= 2:
            other = customers[(hash_index(player) + i) % len(customers)]
            unit = float(e["payload"]["amount"]) / int(e["payload"]["quantity"])
            out.append(_event("trade", f"bg{i}", player, at, {"counterparty_id": other, "item_id": "cd", "quantity": 1,
                                                             "value": round(unit, 2)}))  # fmt: skip
    return out


def hash_index(player: str) -> int:
    """A stable integer of a player id."""
    return int(hashlib.sha256(player.encode()).hexdigest()[:8], 16)


def plant_times(start: datetime, end: datetime, count: int, spacing: timedelta, seed: int) -> list[datetime]:
    """Up to ``count`` times in ``[start, end)``, one in the first half of each of ``count`` random slots of
    length ``spacing`` (so at least ``spacing / 2`` apart), at a minute between 02:00 and 22:00 UTC (never near
    CDNOW's midnight purchases); fewer when the span has fewer slots."""
    rng = random.Random(seed)
    slots = int((end - start) / spacing)
    out = []
    for k in sorted(rng.sample(range(slots), min(count, slots))):
        lo = start + k * spacing
        minutes = [m for m in range(int(spacing / timedelta(minutes=2)))
                   if 2 <= (lo + timedelta(minutes=m)).hour < 22]  # fmt: skip
        if minutes:
            out.append(lo + timedelta(minutes=rng.choice(minutes)))
    return out


def _spend(base: Sequence[Event]) -> dict[str, float]:
    spend: Counter[str] = Counter()
    for e in base:
        spend[e["player_id"]] += float(e["payload"]["amount"])
    return spend


def plant_wealth(base: Sequence[Event], times: Sequence[datetime], seed: int) -> Planted:
    """Whale purchases: a customer whose lifetime spend is $20-$300 buys $5,000 of CDs at once."""
    modest = sorted(p for p, s in _spend(base).items() if 20 <= s <= 300)
    chosen = random.Random(seed).sample(modest, len(times))
    out = Planted()
    for k, (t, player) in enumerate(zip(times, chosen, strict=True)):
        out.events.append(_event("purchase", f"w{k}", player, t, {"item_id": "cd", "quantity": 300,
                                                                   "amount": 5000.0, "currency": "USD"}))  # fmt: skip
        out.plants.append(Plant(player, t, "whale purchase"))
    return out


def plant_transfers(base: Sequence[Event], times: Sequence[datetime], seed: int) -> Planted:
    """Rapid transfers between planted accounts: ``plant-tx-k`` sends 12 items to ``plant-rx-k`` in 6 minutes."""
    out = Planted()
    for k, t in enumerate(times):
        for j in range(12):
            out.events.append(_event("trade", f"t{k}-{j}", f"plant-tx-{k}", t + timedelta(seconds=30 * j), {
                "counterparty_id": f"plant-rx-{k}", "item_id": "cd", "quantity": 1, "value": 12.0}))  # fmt: skip
        out.plants.append(Plant(f"plant-tx-{k}", t, "rapid transfers"))
    return out


def plant_logins(base: Sequence[Event], times: Sequence[datetime], seed: int) -> Planted:
    """Logins of a real customer from four regions within 20 minutes (an account shared or stolen)."""
    customers = sorted({e["player_id"] for e in base})
    chosen = random.Random(seed).sample(customers, len(times))
    out = Planted()
    for k, (t, player) in enumerate(zip(times, chosen, strict=True)):
        for j, region in enumerate(REGIONS[:4]):
            out.events.append(_event("login", f"l{k}-{j}", player, t + timedelta(minutes=5 * j), {}, region))
        out.plants.append(Plant(player, t, "logins from 4 regions"))
    return out


def plant_market(base: Sequence[Event], times: Sequence[datetime], seed: int) -> Planted:
    """Price manipulation: item ``plant-item-k`` trades at $10 for two hours, then three trades at $25."""
    out = Planted()
    for k, t in enumerate(times):
        item = f"plant-item-{k}"
        for j in range(6):
            out.events.append(_event("trade", f"m{k}-b{j}", f"plant-mk-{j}", t - timedelta(minutes=115 - 20 * j), {
                "counterparty_id": f"plant-mk-{j + 1}", "item_id": item, "quantity": 1, "value": 10.0}))  # fmt: skip
        for j in range(3):
            out.events.append(_event("trade", f"m{k}-p{j}", f"plant-mk-{j}", t + timedelta(minutes=3 * j), {
                "counterparty_id": f"plant-mk-{j + 1}", "item_id": item, "quantity": 1, "value": 25.0}))  # fmt: skip
        out.plants.append(Plant(f"item:cdnow/{item}", t, "price pumped 2.5x"))
    return out


def plant_monopoly(base: Sequence[Event], times: Sequence[datetime], seed: int) -> Planted:
    """Market-share concentration: ``plant-mono-k`` buys twice the value CDNOW sold on the day of the plant."""
    daily: defaultdict[Any, float] = defaultdict(float)
    for e in base:
        daily[e["occurred_at"].date()] += float(e["payload"]["amount"])
    out = Planted()
    for k, t in enumerate(times):
        amount = round(2 * max(daily.get(t.date(), 0.0), 100.0), 2)
        out.events.append(_event("purchase", f"mo{k}", f"plant-mono-{k}", t, {"item_id": "cd", "quantity": 100,
                                                                          "amount": amount, "currency": "USD"}))  # fmt: skip
        out.plants.append(Plant(f"plant-mono-{k}", t, "2x the day's volume"))
    return out


def plant_anomaly(base: Sequence[Event], times: Sequence[datetime], seed: int) -> Planted:
    """Rows of mixed kinds: a new account makes 30 purchases of $0.99 in half an hour and one of $3,000."""
    out = Planted()
    for k, t in enumerate(times):
        player = f"plant-anom-{k}"
        for j in range(30):
            out.events.append(_event("purchase", f"a{k}-{j}", player, t + timedelta(minutes=j), {
                "item_id": "cd", "quantity": 1, "amount": 0.99, "currency": "USD"}))  # fmt: skip
        out.events.append(_event("purchase", f"a{k}-big", player, t + timedelta(minutes=30), {
            "item_id": "cd", "quantity": 200, "amount": 3000.0, "currency": "USD"}))  # fmt: skip
        out.plants.append(Plant(player, t, "30 x $0.99 and 1 x $3,000"))
    return out


def plant_dau_spike(base: Sequence[Event], times: Sequence[datetime], seed: int) -> Planted:
    """A launch-day rush: on the plant's day, new accounts (ten times that day's distinct customers, at least
    300) make one $9.99 purchase each within the hour after the plant time.  The subject is ``dau:all``, the
    forecastDeviation detector's series over every game (the harness replays without games)."""
    customers: dict[Any, set[str]] = defaultdict(set)
    for e in base:
        customers[e["occurred_at"].date()].add(e["player_id"])
    out = Planted()
    for k, t in enumerate(times):
        extra = max(10 * len(customers.get(t.date(), ())), 300)
        for j in range(extra):
            out.events.append(_event("purchase", f"dau{k}-{j}", f"plant-dau-{k}-{j}", t + timedelta(minutes=j % 60), {
                "item_id": "cd", "quantity": 1, "amount": 9.99, "currency": "USD"}))  # fmt: skip
        out.plants.append(Plant("dau:all", t, f"{extra} new players in a day"))
    return out


#: a planted churner's habit: a purchase every CHURN_GAP days for CHURN_HISTORY days up to the stop
CHURN_GAP, CHURN_HISTORY, CHURN_AMOUNT = timedelta(days=2), timedelta(days=42), 200.0


def plant_churners(base: Sequence[Event], times: Sequence[datetime], seed: int) -> Planted:
    """Churners: a new account ``plant-churn-k`` buys $200 of CDs every 2 days for the 6 weeks up to the plant time
    (22 purchase days, a valuable repeat customer), then never again.  The plant time is when the activity stops;
    the churn models see it only as silence grows (in CDNOW's early 1997 such a customer is in the high-risk tier
    with a CLV still over $50 somewhere between about 12 and 32 days later, depending on the day's fit;
    docs/backtest.md), so the harness draws these plants ``MEASURED["churnRisk"].lead`` before the span."""
    out = Planted()
    for k, t in enumerate(times):
        player = f"plant-churn-{k}"
        day = t - CHURN_HISTORY
        j = 0
        while day <= t:
            out.events.append(_event("purchase", f"c{k}-{j}", player, day, {"item_id": "cd", "quantity": 3,
                                                                          "amount": CHURN_AMOUNT, "currency": "USD"}))  # fmt: skip
            day, j = day + CHURN_GAP, j + 1
        out.plants.append(Plant(player, t, f"{j} purchases every 2 days, then none"))
    return out


#: worker-evaluated detector type -> its planter ``(base, times, seed) -> Planted``
EVENT_PLANTERS: dict[str, Callable[[Sequence[Event], Sequence[datetime], int], Planted]] = {
    "suddenWealthChange": plant_wealth,
    "rapidAssetTransfer": plant_transfers,
    "unusualLoginPattern": plant_logins,
    "marketManipulation": plant_market,
    "monopolyFormation": plant_monopoly,
    "anomalyScore": plant_anomaly,
    "forecastDeviation": plant_dau_spike,
    "churnRisk": plant_churners,
}
