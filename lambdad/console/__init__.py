"""The web console at ``/console/``: session sign-in, a small JSON API and static assets (no build step)."""
