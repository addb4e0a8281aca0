"""AlertRule: child names (:mod:`.names`), pure rendering (:mod:`.render`), planning (:mod:`.plan`)."""
