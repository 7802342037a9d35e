"""The relay's connection cache follows the ``relay_connection_*`` settings."""

from __future__ import annotations

from mailward.config import Settings
from mailward.queue import connections
from mailward.queue.connections import ConnectionCache, connection_cache


def test_defaults_match_the_settings_defaults() -> None:
    fields = Settings.model_fields
    built, default = connection_cache(Settings()), ConnectionCache()
    for name, attribute, constant in (
        ("relay_connection_cache_seconds", "idle_seconds", connections.IDLE_SECONDS),
        ("relay_connection_cache_per_destination", "per_destination",
         connections.PER_DESTINATION),
        ("relay_connection_cache_total", "total", connections.TOTAL),
        ("relay_connection_max_uses", "max_uses", connections.MAX_USES),
        ("relay_connection_max_age_seconds", "max_age_seconds", connections.MAX_AGE_SECONDS),
    ):
        assert fields[name].default == constant == getattr(default, attribute)
        assert getattr(built, attribute) == constant


def test_settings_shape_the_cache() -> None:
    settings = Settings().model_copy(update={
        "relay_connection_cache_seconds": 0, "relay_connection_max_uses": 7})
    cache = connection_cache(settings)
    assert cache.max_uses == 7
    assert not cache.enabled  # an idle time of 0 turns reuse off
    assert connection_cache(Settings()).enabled
