"""The on-call workflow over the intervention queue.

- :mod:`.service`: assign, acknowledge, resolve, reopen, comment - each one transaction with its audit entry;
- :mod:`.queue`: filtered lists and the full story of a case (read-only);
- :mod:`.detections`: what the detection worker writes - a new case, or an occurrence linked to the open one;
- :mod:`.cli`: ``game-analytics interventions ...``.

See docs/interventions.md.
"""
