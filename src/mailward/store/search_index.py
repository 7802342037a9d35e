"""The mail search index: each message's From/To/Subject/body words, for the webmail's
search (``mailward.webmail.search.MailSearch``).

Rows of ``mail_search_docs`` are keyed as the store keys a message: mailbox, folder,
UIDVALIDITY, UID. Words are made here for both databases (:func:`words`: accents
dropped, case folded, split at anything not a letter or digit), so the text and the
query always agree: PostgreSQL keeps them in a weighted ``tsvector`` (written as a
literal, never through a text-search parser), SQLite in the FTS5 table
``mail_search_fts`` (rowid = the doc's id). Every row and query also carries the
mailbox's own token (:func:`box_token`), so the full-text index narrows to one mailbox.

Mail is indexed at local delivery (:meth:`SearchIndex.add`: concurrent deliveries share
one transaction); mail that reaches a folder any other way (IMAP APPEND/COPY/MOVE,
webmail, files dropped into a Maildir) when a search first looks at the folder
(:meth:`SearchIndex.sync`).
``mail_search_folders`` keeps each folder's counters as of its last catch-up, so an
unchanged folder costs one comparison; a delivery indexed while the folder was in step
moves them along.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import unicodedata
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any, cast

from sqlalchemy import Table, bindparam, column, delete, func, select, table, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from mailward.db.engine import Database
from mailward.db.models import MailSearchDoc, MailSearchFolder
from mailward.store.interface import FolderStatus, MailStore, Stored

log = logging.getLogger(__name__)

MAX_INPUT = 1024 * 1024  # bytes of a message parsed (text parts come first in practice)
MAX_BODY = 64 * 1024  # characters of body text indexed
MAX_HEADER = 4096  # characters of one header field indexed
MAX_WORD = 64  # longer "words" (base64, hashes) are not indexed
MAX_TERMS = 16  # words of one query (more are ignored)
INLINE_BYTES = 64 * 1024  # a bigger message is read for words in a worker thread
BATCH = 200  # messages fetched and indexed per transaction when catching up
CHUNK = 500  # ids per DELETE
PG_MAX_POSITION = 16383

_WORD = re.compile(r"[^\W_]+")
#: query field prefix -> column (SQLite FTS5) and tsvector weight (PostgreSQL)
FIELDS = {"from": "sender", "to": "recipients", "cc": "recipients", "subject": "subject",
          "body": "body"}
_WEIGHTS = {"sender": "A", "recipients": "B", "subject": "C", "body": "D"}
_TEXT_COLUMNS = "{sender recipients subject body}"

_FTS = table("mail_search_fts", column("rowid"), column("box"), column("sender"),
             column("recipients"), column("subject"), column("body"))
_DOCS = cast(Table, MailSearchDoc.__table__)
_STATE = cast(Table, MailSearchFolder.__table__)


# -- words -------------------------------------------------------------------------------


def words(value: str) -> list[str]:
    """The searchable words of ``value``: letters and digits, accents dropped, case
    folded; words longer than ``MAX_WORD`` left out."""
    if not value.isascii():
        value = "".join(c for c in unicodedata.normalize("NFKD", value)
                        if not unicodedata.combining(c))
    return [w for w in _WORD.findall(value.casefold()) if len(w) <= MAX_WORD]


def box_token(mailbox: str) -> str:
    """A word (letters only) standing for ``mailbox`` in the full-text index."""
    digest = hashlib.sha256(mailbox.encode()).hexdigest()[:24]
    return "mbx" + digest.translate(str.maketrans("0123456789", "ghijklmnop"))


@dataclass(frozen=True, slots=True)
class Document:
    """A message's words per field, each a string of words separated by spaces."""

    sender: str
    recipients: str
    subject: str
    body: str


class _HtmlText(HTMLParser):
    """The text of an HTML document (scripts, styles and the head left out)."""

    SKIP = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.size = 0
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping and self.size < MAX_BODY:
            self.parts.append(data)
            self.size += len(data)


def html_text(html: str) -> str:
    parser = _HtmlText()
    try:
        parser.feed(html[: 4 * MAX_BODY])
        parser.close()
    except Exception:  # HTMLParser is tolerant; never fail indexing on it
        pass
    return " ".join(parser.parts)


def _unescape(value: str) -> str:
    """A header value as the parser gave it, its raw 8-bit bytes read as UTF-8."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _header(message: Message, name: str) -> str:
    """A field's values, encoded-words decoded (a malformed one left as written)."""
    out: list[str] = []
    for value in message.get_all(name) or ():
        raw = _unescape(str(value))
        try:
            out.append(str(make_header(decode_header(raw))))
        except Exception:  # a malformed encoded-word or unknown charset: as written
            out.append(raw)
    return " ".join(out)[:MAX_HEADER]


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)  # base64/QP undone leniently
    if not isinstance(payload, bytes):
        return ""
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except LookupError:  # an unknown charset: most likely some UTF-8 anyway
        return payload.decode("utf-8", "replace")


def _body(message: Message) -> str:
    plain: list[str] = []
    html: list[str] = []
    size = 0
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment":
            continue
        text = _part_text(part)
        if part.get_content_subtype() == "html":
            html.append(text)
        else:
            plain.append(text)
            size += len(text)
            if size >= MAX_BODY:
                break
    if plain:
        return "\n".join(plain)[:MAX_BODY]
    return html_text("\n".join(html))[:MAX_BODY]


def extract(data: bytes) -> Document:
    """The words of a message's From, To/Cc/Bcc, Subject and text (text parts; HTML made
    text); never raises on malformed input. The stdlib parser with its ``compat32``
    policy: ten times faster than ``policy.default`` here (which builds a header object
    per field), and headers are decoded the same way (:func:`email.header.decode_header`)."""
    try:
        message = BytesParser(policy=policy.compat32).parsebytes(data[:MAX_INPUT])
        fields = (
            _header(message, "From"),
            " ".join(_header(message, n) for n in ("To", "Cc", "Bcc")),
            _header(message, "Subject"),
            _body(message),
        )
    except Exception:  # the parser is tolerant; should it still fail: the bytes as text
        return Document("", "", "", " ".join(words(data[:MAX_BODY].decode("utf-8", "replace"))))
    return Document(*(" ".join(words(f)) for f in fields))


async def extract_async(data: bytes) -> Document:
    """:func:`extract`, in a worker thread for a big message."""
    if len(data) > INLINE_BYTES:
        return await asyncio.to_thread(extract, data)
    return extract(data)


def tsvector_literal(box: str, doc: Document) -> str:
    """``doc`` as a PostgreSQL ``tsvector`` literal: each word once per field at its
    first position, weighted by field (A from, B to, C subject, D body)."""
    out = [f"'{box}':1"]
    position = 1
    for field, value in (("sender", doc.sender), ("recipients", doc.recipients),
                         ("subject", doc.subject), ("body", doc.body)):
        weight = _WEIGHTS[field]
        for word in dict.fromkeys(value.split()):
            position = min(position + 1, PG_MAX_POSITION)
            out.append(f"'{word}':{position}{weight}")
    return " ".join(out)


# -- queries ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """One query word (matched as a prefix) and the column it must be in (None: any)."""

    word: str
    field: str | None = None


def parse_query(query: str) -> list[Term]:
    """The words of a user's query, ANDed; ``from:``, ``to:``/``cc:``, ``subject:`` and
    ``body:`` restrict the words after them in the same chunk (or the next chunk when
    nothing follows the colon). Everything else is literal text: no operators exist."""
    terms: list[Term] = []
    pending: str | None = None
    for chunk in query.split():
        field, pending = pending, None
        name, colon, rest = chunk.partition(":")
        if colon and name.lower() in FIELDS:
            field, chunk = FIELDS[name.lower()], rest
            if not rest:
                pending = field
                continue
        terms.extend(Term(word, field) for word in words(chunk))
    return list(dict.fromkeys(terms))[:MAX_TERMS]


def fts_match(box: str, terms: Sequence[Term]) -> str:
    """The FTS5 MATCH expression: every word a quoted prefix phrase (letters and digits
    only, so no FTS5 syntax can come from the user)."""
    parts = [f'box : "{box}"']
    parts += [f'{t.field or _TEXT_COLUMNS} : "{t.word}" *' for t in terms]
    return " AND ".join(parts)


def tsquery_literal(box: str, terms: Sequence[Term]) -> str:
    """The PostgreSQL ``tsquery`` literal: prefix lexemes, weight-restricted by field."""
    parts = [f"'{box}'"]
    parts += [f"'{t.word}':*{_WEIGHTS[t.field] if t.field else ''}" for t in terms]
    return " & ".join(parts)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _extract_all(mailbox: str, status: FolderStatus, found: dict[int, bytes],
                 dates: dict[int, datetime]) -> list[Entry]:
    return [Entry(mailbox, status.name, status.uidvalidity, uid, dates[uid], extract(data))
            for uid, data in found.items()]


# -- the index ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One message to index, where the store keeps it."""

    mailbox: str
    folder: str
    uidvalidity: int
    uid: int
    received: datetime
    doc: Document


@dataclass(slots=True)
class _Group:
    entries: list[Entry]
    done: asyncio.Future[None]


BUMP = (update(_STATE)
        .where(_STATE.c.mailbox == bindparam("b_mailbox"), _STATE.c.folder == bindparam("b_folder"),
               _STATE.c.uidvalidity == bindparam("b_uidvalidity"),
               _STATE.c.uidnext == bindparam("b_uid"))
        .values(uidnext=bindparam("b_uid") + 1, messages=_STATE.c.messages + 1))
WRITE_LOCK = text("UPDATE mail_search_folders SET id = id WHERE 0")
MAX_GROUP = 256  # deliveries indexed per transaction, at most


class SearchIndex:
    """The search index in the database of ``db`` (SQLite FTS5 or PostgreSQL full text)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sqlite = db.is_sqlite
        self._reads = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._waiting: deque[_Group] = deque()  # deliveries gathering while a group writes
        self._writer: asyncio.Task[None] | None = None

    # -- writing --

    async def add(self, mailbox: str, stored: Stored, data: bytes,
                  received: datetime | None = None) -> None:
        """Index a message just stored (at delivery); returns once it is committed.

        Concurrent deliveries share a transaction (a group starts at once when none is
        being written, so a lone delivery waits for nobody). If the folder's index was in
        step up to this UID, its counters move along: the next search needs no catch-up.
        On PostgreSQL the commit does not wait for the WAL flush (the index can always be
        made again from the store: a crash loses at most a catch-up's work)."""
        entry = Entry(mailbox, stored.folder, stored.uidvalidity, stored.uid,
                      received or datetime.now(UTC), await extract_async(data))
        if not self._waiting or len(self._waiting[-1].entries) >= MAX_GROUP:
            self._waiting.append(_Group([], asyncio.get_running_loop().create_future()))
        group = self._waiting[-1]
        group.entries.append(entry)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups())
        await asyncio.shield(group.done)

    async def _write_groups(self) -> None:
        try:
            while self._waiting:
                group = self._waiting.popleft()
                try:
                    await self._write(group.entries)
                except Exception as exc:  # every member hears of it (and logs it)
                    group.done.set_exception(exc)
                    group.done.add_done_callback(lambda f: f.exception())
                else:
                    group.done.set_result(None)
        finally:
            self._writer = None

    async def _write(self, entries: list[Entry]) -> None:
        entries = sorted(entries, key=lambda e: (e.mailbox, e.folder, e.uid))  # bumps in order
        async with self.db.engine.begin() as conn:
            if not self.sqlite:
                await conn.execute(text("SET LOCAL synchronous_commit = off"))
            await self._insert(conn, entries)
            await conn.execute(BUMP, [
                {"b_mailbox": e.mailbox, "b_folder": e.folder, "b_uidvalidity": e.uidvalidity,
                 "b_uid": e.uid} for e in entries])

    async def _insert(self, conn: AsyncConnection, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        rows = [{"mailbox": e.mailbox, "folder": e.folder, "uidvalidity": e.uidvalidity,
                 "uid": e.uid, "received": e.received} for e in entries]
        if not self.sqlite:
            statement = (postgresql.insert(_DOCS).values(tsv=func.cast(
                bindparam("tsv_text"), postgresql.TSVECTOR)).on_conflict_do_nothing())
            for row, e in zip(rows, entries, strict=True):
                row["tsv_text"] = tsvector_literal(box_token(e.mailbox), e.doc)
            await conn.execute(statement, rows)
            return
        inserted = await conn.execute(
            sqlite.insert(_DOCS).on_conflict_do_nothing().returning(
                _DOCS.c.id, _DOCS.c.mailbox, _DOCS.c.folder, _DOCS.c.uidvalidity, _DOCS.c.uid),
            rows)
        ids = {tuple(row[1:]): row[0] for row in inserted.all()}
        fts_rows = []
        for e in entries:
            doc_id = ids.get((e.mailbox, e.folder, e.uidvalidity, e.uid))
            if doc_id is not None:
                fts_rows.append({"rowid": doc_id, "box": box_token(e.mailbox),
                                 "sender": e.doc.sender, "recipients": e.doc.recipients,
                                 "subject": e.doc.subject, "body": e.doc.body})
        if fts_rows:
            await conn.execute(_FTS.insert(), fts_rows)

    async def _lock(self, conn: AsyncConnection) -> None:
        """SQLite: take the write lock before reading in a transaction that then writes,
        so it waits its turn (busy timeout) instead of failing to upgrade its snapshot."""
        if self.sqlite:
            await conn.execute(WRITE_LOCK)

    async def _delete_ids(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        for chunk in _chunks(ids, CHUNK):
            if self.sqlite:
                await conn.execute(delete(_FTS).where(_FTS.c.rowid.in_(chunk)))
            await conn.execute(delete(_DOCS).where(_DOCS.c.id.in_(chunk)))

    async def drop_folder(self, conn: AsyncConnection, mailbox: str, folder: str,
                          keep_uidvalidity: int | None = None) -> None:
        """Forget a folder's messages (all, or those of another UIDVALIDITY)."""
        where = [_DOCS.c.mailbox == mailbox, _DOCS.c.folder == folder]
        if keep_uidvalidity is not None:
            where.append(_DOCS.c.uidvalidity != keep_uidvalidity)
        ids = (await conn.execute(select(_DOCS.c.id).where(*where))).scalars().all()
        await self._delete_ids(conn, ids)
        if keep_uidvalidity is None:
            await conn.execute(delete(_STATE).where(_STATE.c.mailbox == mailbox,
                                                    _STATE.c.folder == folder))

    async def drop_mailbox(self, mailbox: str) -> None:
        """Forget everything indexed of ``mailbox`` (for when its storage is deleted)."""
        async with self.db.engine.begin() as conn:
            await self._lock(conn)
            ids = (await conn.execute(select(_DOCS.c.id).where(_DOCS.c.mailbox == mailbox))
                   ).scalars().all()
            await self._delete_ids(conn, ids)
            await conn.execute(delete(_STATE).where(_STATE.c.mailbox == mailbox))

    # -- catching up with the store --

    async def sync(self, store: MailStore, mailbox: str, folder: str | None = None) -> list[str]:
        """Bring the index in step with the store for ``folder`` (every folder if None);
        return the names of the folders it covers. Raises the store's errors
        (``NoSuchFolder``) for a folder that does not exist."""
        if folder is None:
            statuses = await store.folders(mailbox)
        else:
            statuses = [await store.folder_status(mailbox, folder)]
        async with self._reads.connect() as conn:
            rows = (await conn.execute(
                select(_STATE.c.folder, _STATE.c.uidvalidity, _STATE.c.uidnext,
                       _STATE.c.messages).where(_STATE.c.mailbox == mailbox))).all()
        states = {row[0]: tuple(row[1:]) for row in rows}
        if folder is None:
            names = {status.name for status in statuses}
            gone = [name for name in states if name not in names]
            if gone:
                async with self.db.engine.begin() as conn:
                    await self._lock(conn)
                    for name in gone:
                        await self.drop_folder(conn, mailbox, name)
        for status in statuses:
            state = states.get(status.name)
            if state != (status.uidvalidity, status.uidnext, status.exists):
                await self._catch_up(store, mailbox, status, state)
        return [status.name for status in statuses]

    async def _catch_up(self, store: MailStore, mailbox: str, status: FolderStatus,
                        state: tuple[int, ...] | None) -> None:
        """Index what the folder has and the index lacks, drop what it no longer has.

        When only mail was added since the last catch-up (as many more messages as UIDs
        were handed out), the new UIDs are all there is to add: the index is not read."""
        name, uidvalidity = status.name, status.uidvalidity
        infos = await store.messages(mailbox, name)  # after ``status``: never newer counters
        current = {info.uid: info.internal_date for info in infos}
        if (state is not None and state[0] == uidvalidity
                and status.exists - state[2] == status.uidnext - state[1] >= 0):
            missing = sorted((uid for uid in current if uid >= state[1]), reverse=True)
        else:
            async with self.db.engine.begin() as conn:
                await self._lock(conn)
                await self.drop_folder(conn, mailbox, name, keep_uidvalidity=uidvalidity)
                indexed = dict((await conn.execute(
                    select(_DOCS.c.uid, _DOCS.c.id).where(
                        _DOCS.c.mailbox == mailbox, _DOCS.c.folder == name,
                        _DOCS.c.uidvalidity == uidvalidity))).all())
                vanished = [doc_id for uid, doc_id in indexed.items() if uid not in current]
                await self._delete_ids(conn, vanished)
            missing = sorted(set(current) - set(indexed), reverse=True)  # newest first
        batches = list(_chunks(missing, BATCH))
        fetching: asyncio.Task[dict[int, bytes]] | None = None
        try:
            for n, batch in enumerate(batches):  # the next batch is read while one is parsed
                found = await (fetching or store.fetch_many(mailbox, name, batch))
                fetching = (asyncio.create_task(store.fetch_many(mailbox, name, batches[n + 1]))
                            if n + 1 < len(batches) else None)
                entries = await asyncio.to_thread(_extract_all, mailbox, status, found, current)
                async with self.db.engine.begin() as conn:
                    await self._insert(conn, entries)
        finally:
            if fetching is not None:
                fetching.cancel()
        values = {"uidvalidity": uidvalidity, "uidnext": status.uidnext,
                  "messages": status.exists}
        insert = postgresql.insert if not self.sqlite else sqlite.insert
        async with self.db.engine.begin() as conn:
            await conn.execute(
                insert(_STATE).values(mailbox=mailbox, folder=name, **values)
                .on_conflict_do_update(index_elements=["mailbox", "folder"], set_=values))
        if missing:
            log.info("search index: %d message(s) of %s/%s indexed", len(missing),
                     mailbox, name)

    # -- searching --

    async def search(self, mailbox: str, terms: Sequence[Term], folders: Sequence[str],
                     limit: int) -> list[tuple[str, int]]:
        """``(folder, uid)`` of the messages of ``mailbox`` in ``folders`` holding every
        term (as a word prefix), newest first."""
        if not terms or not folders or limit <= 0:
            return []
        box = box_token(mailbox)
        params: dict[str, Any] = {"mailbox": mailbox, "limit": limit,
                                  "folders": list(folders)}
        if self.sqlite:
            params["match"] = fts_match(box, terms)
            # the matching rowids as a set, then the mailbox's docs newest first (by the
            # (mailbox, received) index) until the limit: no sort of every match
            statement = text(
                "SELECT d.folder, d.uid FROM mail_search_docs AS d "
                "WHERE d.mailbox = :mailbox AND d.folder IN :folders AND d.id IN "
                "(SELECT rowid FROM mail_search_fts WHERE mail_search_fts MATCH :match) "
                "ORDER BY d.received DESC, d.id DESC LIMIT :limit")
        else:
            params["query"] = tsquery_literal(box, terms)
            # the planner walks (mailbox, received) backwards when most docs match, and
            # takes the GIN index when few do
            statement = text(
                "SELECT folder, uid FROM mail_search_docs "
                "WHERE mailbox = :mailbox AND tsv @@ CAST(:query AS tsquery) "
                "AND folder IN :folders "
                "ORDER BY received DESC, id DESC LIMIT :limit")
        statement = statement.bindparams(bindparam("folders", expanding=True))
        async with self._reads.connect() as conn:
            rows = (await conn.execute(statement, params)).all()
        return [(str(folder), int(uid)) for folder, uid in rows]


__all__ = ["Document", "SearchIndex", "Term", "box_token", "extract", "parse_query"]
