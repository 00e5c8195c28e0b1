"""What the app serving the current request holds."""

from __future__ import annotations

from flask import current_app

from discovery.search.services import Services


def services() -> Services:
    """The current app's services."""
    found: Services = current_app.extensions["nearby"]
    return found
