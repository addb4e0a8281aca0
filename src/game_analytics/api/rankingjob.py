"""RankingJob: rate players from match results, keep leaderboards and leagues, reset seasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from .common import (
    TIME_ZONE_PATTERN,
    BaseStatus,
    CronSchedule,
    Duration,
    GameName,
    LocalObjectReference,
    Model,
    cel,
    opt,
)


class Algorithm(StrEnum):
    GLICKO2 = "glicko2"
    ELO = "elo"
    OPENSKILL = "openskill"
    TRUESKILL = "trueskill"


class MatchSource(Model):
    """Where the match results come from: events of ``eventType`` for ``game`` in the data source's store."""

    game: GameName = Field(description="Game whose matches are rated.")
    event_type: str = Field(default="match_result", max_length=63, description="Event type holding match results.")


class Glicko2Params(Model):
    """Glicko-2 system constants (Glickman 2013)."""

    tau: float = Field(default=0.5, ge=0.2, le=1.2, description="System constant constraining volatility change.")
    initial_rating: float = Field(default=1500.0, ge=0, le=5000, description="Rating of a new player.")
    initial_rd: float = Field(default=350.0, gt=0, le=1000, alias="initialRD", description="Rating deviation of a new player.")
    initial_volatility: float = Field(default=0.06, gt=0, le=1, description="Volatility of a new player.")
    rating_period: Duration = Field(default="7d", description="Length of a rating period.")


class EloParams(Model):
    k_factor: float = Field(default=20.0, gt=0, le=400, description="Maximum rating change per match.")
    home_advantage: float = Field(default=0.0, ge=0, le=400, description="Rating points added to the home side.")
    initial_rating: float = Field(default=1500.0, ge=0, le=5000, description="Rating of a new player.")


class OpenSkillModel(StrEnum):
    PLACKETT_LUCE = "PlackettLuce"
    BRADLEY_TERRY_FULL = "BradleyTerryFull"
    BRADLEY_TERRY_PART = "BradleyTerryPart"
    THURSTONE_MOSTELLER_FULL = "ThurstoneMostellerFull"
    THURSTONE_MOSTELLER_PART = "ThurstoneMostellerPart"


class OpenSkillParams(Model):
    model: OpenSkillModel = Field(default=OpenSkillModel.PLACKETT_LUCE, description="OpenSkill model.")
    mu: float = Field(default=25.0, gt=0, le=1000, description="Initial mean skill.")
    sigma: float = Field(default=25.0 / 3, gt=0, le=1000, description="Initial skill uncertainty.")


class TrueSkillParams(Model):
    """TrueSkill environment (Herbrich, Minka, Graepel 2006); the defaults are the library's and Microsoft's."""

    mu: float = Field(default=25.0, gt=0, le=1000, description="Initial mean skill.")
    sigma: float = Field(default=25.0 / 3, gt=0, le=1000, description="Initial skill uncertainty.")
    beta: float = Field(
        default=25.0 / 6, gt=0, le=1000,
        description="Skill difference that gives the stronger side about a 76% chance to win (performance noise).",
    )  # fmt: skip
    tau: float = Field(
        default=25.0 / 300, ge=0, le=100, description="Dynamics: sigma grows by this before every match."
    )
    draw_probability: float = Field(
        default=0.10, gt=0, lt=1, description="Chance of a draw between equally skilled sides (0 < p < 1)."
    )


@dataclass(frozen=True)
class AlgorithmInfo:
    """One row of :data:`ALGORITHMS`: what the rest of the project needs to know about a rating algorithm.

    Attributes:
        params: the parameter model (``spec.<algorithm>``).
        deviation: the leaderboard's deviation column ("" when the algorithm has none).
        ordinal: the leaderboard rating is the conservative ``mu - 3 sigma`` (Bayesian ``mu``/``sigma`` systems,
            whose inactivity decay is scaled by ``sigma0 / 350``).
        teams: rates team and free-for-all matches (match events with ``teams``); the others rate 1v1 only.
    """

    params: type[Model]
    deviation: str
    ordinal: bool = False
    teams: bool = False


#: The one table of rating algorithms; spec fields, CEL rules, defaults and CLI labels are derived from it.
ALGORITHMS: dict[Algorithm, AlgorithmInfo] = {
    Algorithm.GLICKO2: AlgorithmInfo(Glicko2Params, "RD"),
    Algorithm.ELO: AlgorithmInfo(EloParams, ""),
    Algorithm.OPENSKILL: AlgorithmInfo(OpenSkillParams, "sigma", ordinal=True),
    Algorithm.TRUESKILL: AlgorithmInfo(TrueSkillParams, "sigma", ordinal=True, teams=True),
}


class InactivityDecay(Model):
    """Rating deviation grows while a player is inactive: RD' = min(sqrt(RD^2 + c^2 t), maxRD) (Glickman)."""

    enabled: bool = Field(default=True, description="Grow uncertainty of inactive players.")
    c: float = Field(default=34.6, ge=0, le=350, description="RD growth per inactive rating period.")
    max_rd: float = Field(default=350.0, gt=0, le=1000, alias="maxRD", description="Upper bound of the rating deviation.")


class League(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][-A-Za-z0-9_ ]*$", max_length=32, description="League name, e.g. Gold.")
    min_percentile: float = Field(ge=0, lt=100, description="Lowest percentile (0..100) that belongs to this league.")


class Leaderboard(Model):
    size: int = Field(default=100, ge=1, le=10_000, description="Entries kept in the fast top-N leaderboard.")


class SeasonReset(Model):
    schedule: CronSchedule = Field(description="Cron schedule of season resets.")
    time_zone: str = Field(default="UTC", pattern=TIME_ZONE_PATTERN, max_length=64, description="IANA time zone.")
    soft_reset_factor: float = Field(
        default=0.5, ge=0, le=1, description="Ratings move this fraction of the way back to the initial rating."
    )


_ALGORITHM = opt("algorithm", "glicko2")  # the CEL reading of spec.algorithm, its default when left out
DEFAULT_LEAGUES = [("Bronze", 0.0), ("Silver", 50.0), ("Gold", 80.0), ("Platinum", 95.0), ("Diamond", 99.0)]


class RankingJobSpec(Model):
    """Desired state of a RankingJob."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                *(cel(f"!has(self.{a}) || {_ALGORITHM} == '{a}'", f"{a} parameters need algorithm {a}", f".{a}")
                  for a in ALGORITHMS),
                cel(
                    "!has(self.leagues) || self.leagues.exists(l, l.minPercentile == 0.0)",
                    "one league must start at minPercentile 0",
                    ".leagues",
                ),
                cel(
                    "!has(self.leagues) || self.leagues.all(l, self.leagues.exists_one(m, m.minPercentile == l.minPercentile))",
                    "league minPercentile values must be distinct",
                    ".leagues",
                ),
            ]
        }
    }

    source: MatchSource = Field(description="Where match results come from.")
    algorithm: Algorithm = Field(default=Algorithm.GLICKO2, description="glicko2, elo, openskill or trueskill (the only one that rates team and free-for-all matches).")
    glicko2: Glicko2Params | None = Field(default=None, description="Glicko-2 parameters.")
    elo: EloParams | None = Field(default=None, description="Elo parameters.")
    openskill: OpenSkillParams | None = Field(default=None, description="OpenSkill parameters.")
    trueskill: TrueSkillParams | None = Field(default=None, description="TrueSkill parameters.")
    inactivity_decay: InactivityDecay = Field(default_factory=InactivityDecay, description="Uncertainty growth of inactive players.")
    schedule: CronSchedule = Field(default="*/15 * * * *", description="Cron schedule of rating runs.")
    time_zone: str = Field(default="UTC", pattern=TIME_ZONE_PATTERN, max_length=64, description="IANA time zone.")
    leaderboard: Leaderboard = Field(default_factory=Leaderboard, description="Leaderboard settings.")
    leagues: list[League] = Field(
        default_factory=lambda: [League(name=n, min_percentile=p) for n, p in DEFAULT_LEAGUES],
        min_length=1,
        max_length=20,
        description="Leagues as percentile tiers; a player belongs to the league with the highest minPercentile <= theirs.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    season_reset: SeasonReset | None = Field(default=None, description="Periodic season reset.")
    data_source_ref: LocalObjectReference = Field(
        default_factory=lambda: LocalObjectReference(name="default"), description="The GameDataSource to read and write."
    )
    suspend: bool = Field(default=False, description="Pause rating runs without deleting the job.")

    def algorithm_params(self) -> Glicko2Params | EloParams | OpenSkillParams | TrueSkillParams:
        """The chosen algorithm's parameters, defaults filled in when the spec leaves them out."""
        return getattr(self, self.algorithm.value) or ALGORITHMS[self.algorithm].params()  # type: ignore[return-value]


class RankingJobStatus(BaseStatus):
    last_run_time: datetime | None = Field(default=None, description="When ratings were last computed.")
    players_rated: int | None = Field(default=None, ge=0, description="Players in the last computed leaderboard.")
    season: int | None = Field(default=None, ge=0, description="Current season number.")
