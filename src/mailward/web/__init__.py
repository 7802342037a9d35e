"""Web role: control panel page, JSON API (``/api/v1``) and its OpenAPI document."""

from mailward.web.app import create_app

__all__ = ["create_app"]
