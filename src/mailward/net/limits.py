"""Connection caps for one listening role: a global cap and a cap per client address.

Each protocol's accept path asks :meth:`ConnectionLimiter.admit` before greeting; a
refusal comes with the reason to put in the protocol's own refusal (``421`` for SMTP,
``* BYE`` for IMAP, ``-ERR`` for POP3), and the connection is then closed. Counts are
per process: with several worker processes each gets its share of the node's total
(``mailward.server.mail_roles.connection_caps``), while the per-address cap holds in
each process. :meth:`ConnectionLimiter.wait_drained` lets a stopping listener wait for
its sessions to end.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ConnectionLimiter", "client_key"]


def client_key(peer: object) -> str:
    """The address a peer is counted under: the IP; IPv6 clients by their /64."""
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer or "")
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(getattr(ip, "ipv4_mapped", None) or ip)


@dataclass
class ConnectionLimiter:
    """``total`` open connections at most, ``per_ip`` of them from one client address."""

    total: int
    per_ip: int
    _open: Counter[str] = field(default_factory=Counter)
    _count: int = 0
    _drained: list[asyncio.Future[None]] = field(default_factory=list)

    def admit(self, peer: object) -> str | None:
        """Count a new connection, or say why it is refused (and count nothing)."""
        key = client_key(peer)
        if self._count >= self.total:
            return "too many connections, try again later"
        if self._open[key] >= self.per_ip:
            return "too many connections from your address"
        self._open[key] += 1
        self._count += 1
        return None

    def release(self, peer: object) -> None:
        """Forget one connection counted by :meth:`admit`."""
        key = client_key(peer)
        if self._open[key] > 0:
            self._open[key] -= 1
            self._count -= 1
            if not self._open[key]:
                del self._open[key]
        if not self._count:
            for waiter in self._drained:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_drained(self) -> None:
        """Return once no counted connection is open."""
        if not self._count:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drained.append(waiter)
        try:
            await waiter
        finally:
            self._drained.remove(waiter)

    @property
    def open_connections(self) -> int:
        return self._count
