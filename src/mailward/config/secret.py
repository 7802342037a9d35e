"""The web secret: signs sessions, CSRF tokens and quarantine release links.

It lives with the configuration so that anything that signs (the web app, the quarantine
digests of a delivery-only node) reads the same value without importing the web app.
"""

from __future__ import annotations

import os
import secrets

from mailward.config import Settings

SECRET_FILE = "web-secret"


def web_secret(settings: Settings) -> str:
    """``web_secret`` from the settings, else one generated once into the data dir (0600).

    Several web nodes must share it: set ``MAILWARD_WEB_SECRET`` on each.
    """
    if settings.web_secret is not None:
        return settings.web_secret.get_secret_value()
    path = settings.data_dir / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret
