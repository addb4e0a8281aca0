"""Pure numeric analytics: ratings, prediction, leagues, churn, economy and anomaly detection.

Everything in this package works on in-memory numpy arrays or pandas frames: no database, no network,
no file I/O (apart from the explicit bytes (de)serialisation helpers of :mod:`.anomaly`).
"""
