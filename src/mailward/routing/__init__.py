"""Routing: where a domain's filtered mail goes (its mail server settings)."""

from mailward.routing.servers import MailServerView, ServerService, parse_server

__all__ = ["MailServerView", "ServerService", "parse_server"]
