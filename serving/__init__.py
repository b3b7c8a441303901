"""Serving-side helpers: what a model server runs next to the daemon, not in it.

- ``route``: the route contract (``Route``, ``Backend``) and the routing file's format.
- ``route_table``: ``RouteTable`` follows the routes and picks a version per request;
  ``OutcomeReporter`` batches prediction events and labels to the daemon's ingest.
- ``workload``: the simulated serving fleet of ``./dev demo`` and the end-to-end tests.

Nothing here imports the daemon (``controller``); an import-linter contract keeps it so.
"""
