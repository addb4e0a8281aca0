"""Per-activity-type anomaly scoring of players with Isolation Forests.

Source: F. T. Liu, K. M. Ting and Z.-H. Zhou, "Isolation Forest", ICDM 2008. The score of a point
is ``s(x) = 2^(-E[h(x)] / c(psi))`` in (0, 1]: close to 1 = isolated quickly = anomalous, below
0.5 = normal. scikit-learn's ``IsolationForest.score_samples`` returns ``-s(x)``, so the scores
here are exactly the paper's ``s``.

One forest is fitted per activity type (e.g. "trade", "purchase", "match") because feature
distributions differ between activities.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import joblib
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.ensemble import IsolationForest


class ActivityAnomalyDetector:
    """Isolation Forests keyed by activity type.

    Args:
        features: names of the numeric feature columns used for every activity type.
        activity_col: column holding the activity type.
        n_estimators, max_samples, random_state: passed to :class:`sklearn.ensemble.IsolationForest`.
        contamination: expected share of anomalies (0, 0.5], passed to the forest: it sets the forest's
            decision offset, so :meth:`cutoffs` gives per activity the score above which that share of the
            training players lies.
    """

    def __init__(
        self,
        features: Sequence[str],
        *,
        activity_col: str = "activity",
        n_estimators: int = 200,
        max_samples: int | str = "auto",
        random_state: int = 0,
        contamination: float | str = "auto",
    ) -> None:
        if not features:
            raise ValueError("need at least one feature column")
        self.features = list(features)
        self.activity_col = activity_col
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.contamination = contamination
        self.models: dict[str, IsolationForest] = {}

    def fit(self, frame: pd.DataFrame) -> ActivityAnomalyDetector:
        """Fit one forest per activity type present in ``frame`` (rows = players). Returns self.

        Raises:
            KeyError: if a feature or the activity column is missing; ValueError on NaN features.
        """
        x_all = frame[self.features]
        if x_all.isna().any().any():
            raise ValueError("features must not contain NaN")
        self.models = {}
        for activity, rows in frame.groupby(self.activity_col, sort=True):
            forest = IsolationForest(
                n_estimators=self.n_estimators, max_samples=self.max_samples, random_state=self.random_state,
                contamination=self.contamination,
            )
            self.models[str(activity)] = forest.fit(rows[self.features].to_numpy(dtype=np.float64))
        return self

    def cutoffs(self) -> dict[str, float]:
        """Per activity type, the score (paper's ``s``) above which the forest calls a point an outlier:
        ``-offset_``, the ``1 - contamination`` quantile of the training scores (0.5 with ``"auto"``)."""
        return {activity: float(-forest.offset_) for activity, forest in self.models.items()}

    def score(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """Anomaly score in [0, 1] per row of ``frame`` (higher = more anomalous), shape (n,).

        Raises:
            KeyError: for an activity type that was not seen in :meth:`fit`.
            ValueError: if the index of ``frame`` is not unique.
        """
        if not frame.index.is_unique:
            raise ValueError("frame index must be unique")
        out = np.empty(len(frame))
        for activity, rows in frame.groupby(self.activity_col, sort=False):
            key = str(activity)
            if key not in self.models:
                raise KeyError(f"no model for activity type {key!r}")
            out[frame.index.get_indexer(rows.index)] = -self.models[key].score_samples(
                rows[self.features].to_numpy(dtype=np.float64)
            )
        return out

    def to_bytes(self) -> bytes:
        """Serialise the fitted detector (joblib format; load only from trusted storage)."""
        buf = io.BytesIO()
        joblib.dump(self, buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ActivityAnomalyDetector:
        """Inverse of :meth:`to_bytes`. Raises TypeError if the payload is not a detector."""
        obj = joblib.load(io.BytesIO(data))
        if not isinstance(obj, cls):
            raise TypeError(f"payload is a {type(obj).__name__}, not {cls.__name__}")
        return obj
