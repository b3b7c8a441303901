"""The daemon's HTTP API: ``app`` (FastAPI routes), ``access`` (the one role check,
before a body is read), ``auth`` (bearer tokens with roles) and ``limits`` (body sizes)."""
