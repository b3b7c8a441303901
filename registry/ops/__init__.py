"""The work behind ``ModelRegistry``, one module per concern; internal to ``registry``.

``registry.api.ModelRegistry`` is the public face and only delegates here, so each
concern can be read, and changed, on its own:

- ``registration``: new versions, the fast write path; ``preparation`` stores their
  bytes before the transaction; ``bumping``: ``version_model``
- ``stage_moves``: promotion, rollback, and signature and deprecation changes
- ``reads``: records, models, files, history, and the resolve cache
- ``approving``, ``rollback_triggers``, ``provenance`` (the lineage API),
  ``auditing`` and ``environments``
- ``common``: what several of them share
"""
