"""What every kind's package shares: render helpers (:mod:`.render`, :mod:`.cronjob`), conditions
(:mod:`.conditions`) and the planning contract (:mod:`.plan`: ``Plan``, ``Action``, ``parse``)."""
