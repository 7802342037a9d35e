"""The app layer: every service built once from settings and a database (:class:`Services`).

The server roles, the web app and the CLI take their services from here; nothing below
builds a service of another package.
"""

from mailward.app.services import Services

__all__ = ["Services"]
