"""Each mailbox's Sieve scripts: stored, listed, activated (one at a time), validated.

A script is validated when saved (``put``/``check``): a parse error or an extension the
interpreter does not support is refused there, with its line, never at delivery. Local
delivery runs the one :meth:`SieveScripts.active` script. ManageSieve (RFC 5804), the
panel's simple rules and webmail all edit scripts through this class.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db import Database
from mailward.db.models import SieveScript
from mailward.sieve.grammar import ScriptError, parse

__all__ = ["MAX_SCRIPTS", "MAX_SCRIPT_BYTES", "ScriptInfo", "SieveScripts"]

MAX_SCRIPT_BYTES = 64 * 1024
MAX_SCRIPTS = 20
MAX_NAME_CHARS = 255


@dataclass(frozen=True, slots=True)
class ScriptInfo:
    name: str
    active: bool
    size: int
    updated_at: datetime


def _name(name: str) -> str:
    """A valid script name (RFC 5804 §1.6: no control characters), or ``InvalidInput``."""
    if not name or len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"a script name has 1 to {MAX_NAME_CHARS} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in name):
        raise InvalidInput("a script name has no control characters")
    return name


class SieveScripts:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, mailbox: str) -> list[ScriptInfo]:
        """The mailbox's scripts by name."""
        async with self.db.session() as session:
            rows = (await session.execute(
                select(SieveScript).where(SieveScript.mailbox == mailbox)
                .order_by(SieveScript.name))).scalars().all()
        return [ScriptInfo(r.name, r.active, len(r.content.encode()), r.updated_at)
                for r in rows]

    async def get(self, mailbox: str, name: str) -> str:
        async with self.db.session() as session:
            content = await session.scalar(select(SieveScript.content).where(
                SieveScript.mailbox == mailbox, SieveScript.name == name))
        if content is None:
            raise NotFound(f"no script {name!r}")
        return content

    async def check(self, content: str) -> None:
        """Validate only: ``InvalidInput("line N: ...")`` if the script cannot be saved."""
        if len(content.encode()) > MAX_SCRIPT_BYTES:
            raise InvalidInput(f"a script has at most {MAX_SCRIPT_BYTES} bytes")
        try:
            parse(content)
        except ScriptError as exc:
            raise InvalidInput(str(exc)) from None

    async def put(self, mailbox: str, name: str, content: str) -> None:
        """Create or replace a script (an active one stays active)."""
        name = _name(name)
        await self.check(content)
        async with self.db.session() as session:
            row = await session.scalar(select(SieveScript).where(
                SieveScript.mailbox == mailbox, SieveScript.name == name))
            if row is not None:
                row.content = content
            else:
                count = await session.scalar(select(func.count()).select_from(SieveScript)
                                             .where(SieveScript.mailbox == mailbox)) or 0
                if count >= MAX_SCRIPTS:
                    raise Conflict(f"a mailbox has at most {MAX_SCRIPTS} scripts")
                session.add(SieveScript(mailbox=mailbox, name=name, content=content,
                                        active=False))
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(f"script {name!r} was saved at the same time, or "
                               f"{mailbox} is not a mailbox") from None

    async def set_active(self, mailbox: str, name: str | None) -> None:
        """Make ``name`` the active script (``None``: none is active)."""
        async with self.db.session() as session:
            if name is not None:
                found = await session.scalar(select(SieveScript.id).where(
                    SieveScript.mailbox == mailbox, SieveScript.name == name))
                if found is None:
                    raise NotFound(f"no script {name!r}")
            await session.execute(update(SieveScript).where(
                SieveScript.mailbox == mailbox, SieveScript.active.is_(True))
                .values(active=False))
            if name is not None:
                await session.execute(update(SieveScript).where(
                    SieveScript.mailbox == mailbox, SieveScript.name == name)
                    .values(active=True))
            await session.commit()

    async def delete(self, mailbox: str, name: str) -> None:
        """Delete a script; the active one is refused (``Conflict``, RFC 5804 §2.10)."""
        async with self.db.session() as session:
            row = await session.scalar(select(SieveScript).where(
                SieveScript.mailbox == mailbox, SieveScript.name == name))
            if row is None:
                raise NotFound(f"no script {name!r}")
            if row.active:
                raise Conflict(f"script {name!r} is active: deactivate it first")
            await session.execute(delete(SieveScript).where(SieveScript.id == row.id))
            await session.commit()

    async def rename(self, mailbox: str, old: str, new: str) -> None:
        """Rename a script (it keeps being active if it was)."""
        new = _name(new)
        async with self.db.session() as session:
            row = await session.scalar(select(SieveScript).where(
                SieveScript.mailbox == mailbox, SieveScript.name == old))
            if row is None:
                raise NotFound(f"no script {old!r}")
            if old == new:
                return
            taken = await session.scalar(select(SieveScript.id).where(
                SieveScript.mailbox == mailbox, SieveScript.name == new))
            if taken is not None:
                raise Conflict(f"a script {new!r} exists already")
            row.name = new
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(f"a script {new!r} exists already") from None

    async def active(self, mailbox: str) -> str | None:
        """The active script's text, ``None`` when none is active."""
        async with self.db.session() as session:
            return await session.scalar(select(SieveScript.content).where(
                SieveScript.mailbox == mailbox, SieveScript.active.is_(True)).limit(1))
