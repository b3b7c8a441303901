"""The web dashboard, served by the daemon at ``/ui/``.

- ``pages``: the layout, sign-in, models and rollout pages as HTML text from plain
  data (pure, escaped); ``record_pages``: a model, the audit trail, alerts and guard;
- ``charts``: line charts with bands and markers as inline SVG (pure);
- ``session``: the sign-in cookie and the forms' tokens;
- ``routes``: the FastAPI routes that read the data and answer the pages;
- ``static/``: the one stylesheet and the one script, ours (Apache-2.0 like the
  rest): nothing is fetched from elsewhere at run time.

The pages are drawn on the server and read fine without JavaScript; the script only
refreshes the live part of a rollout's page every few seconds.
"""
