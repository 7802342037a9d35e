"""Pure IMAP4rev1 command parser (RFC 3501 §9), no I/O.

How the session uses it::

    data = await read_line()                      # up to and including CRLF
    while (lit := literal_needed(data)) is not None:
        size, non_sync = lit                      # {N} or {N+} (LITERAL+, RFC 7888)
        if not non_sync:
            send(b"+ Ready\\r\\n")
        data += await read_exactly(size) + await read_line()
    try:
        command = parse_command(data)
    except ParseError as exc:
        send(f"{exc.tag or '*'} BAD {exc.message}\\r\\n")

:func:`parse_command` raises nothing but :class:`ParseError` for any input. Strings
are returned as ``bytes`` where the charset is not known (passwords are ``str``
decoded as UTF-8; SEARCH strings are ``bytes`` in the command's charset); mailbox
names are ``str`` with modified UTF-7 left encoded and ``INBOX`` normalised.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass

from .grammar.core import MAX_ITEMS, ParseError, Reader, SequenceSet
from .grammar.fetch import FetchAtt, Section, parse_fetch_atts
from .grammar.search import SearchKey, parse_search_keys

__all__ = [
    "Append",
    "Authenticate",
    "Command",
    "CopyMove",
    "Enable",
    "Expunge",
    "Fetch",
    "FetchAtt",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "ListCommand",
    "Login",
    "MailboxCommand",
    "ParseError",
    "Qresync",
    "Rename",
    "Search",
    "SearchKey",
    "Section",
    "SequenceSet",
    "Status",
    "Store",
    "literal_needed",
    "parse_command",
]


# --------------------------------------------------------------------------- commands
@dataclass(frozen=True, kw_only=True)
class Command:
    """A parsed command. Commands without arguments (CAPABILITY, NOOP, LOGOUT,
    STARTTLS, IDLE, NAMESPACE, CHECK, CLOSE, UNSELECT) are plain ``Command``."""

    tag: str
    name: str
    uid: bool = False


@dataclass(frozen=True, kw_only=True)
class Login(Command):
    user: str
    password: str


@dataclass(frozen=True, kw_only=True)
class Authenticate(Command):
    mechanism: str  # upper-cased
    initial_response: bytes | None = None  # SASL-IR (RFC 4959): base64 text or b"="


@dataclass(frozen=True, kw_only=True)
class Qresync:
    """``SELECT box (QRESYNC (uidvalidity modseq [known-uids [seq-match]]))`` (RFC 7162
    §3.2.5); the sequence match data is checked for syntax and not used."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None


@dataclass(frozen=True, kw_only=True)
class MailboxCommand(Command):
    """SELECT, EXAMINE, CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE.

    ``condstore`` is set by ``SELECT box (CONDSTORE)``, ``qresync`` by
    ``SELECT box (QRESYNC (...))`` (RFC 7162).
    """

    mailbox: str
    condstore: bool = False
    qresync: Qresync | None = None


@dataclass(frozen=True, kw_only=True)
class Rename(Command):
    old: str
    new: str


@dataclass(frozen=True, kw_only=True)
class ListCommand(Command):
    """LIST and LSUB.

    LIST-EXTENDED (RFC 5258) options are upper-cased: ``select_options`` from
    ``LIST (SUBSCRIBED) ...``, ``return_options`` from ``RETURN (SPECIAL-USE ...)``;
    ``return_status`` holds the items of ``RETURN (STATUS (...))`` (RFC 5819).
    """

    reference: str
    pattern: str
    select_options: tuple[str, ...] = ()
    return_options: tuple[str, ...] = ()
    return_status: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Status(Command):
    mailbox: str
    items: tuple[str, ...]  # upper-cased status-att names


@dataclass(frozen=True, kw_only=True)
class Append(Command):
    mailbox: str
    flags: tuple[str, ...]
    date_time: _dt.datetime | None
    message: bytes


@dataclass(frozen=True, kw_only=True)
class Id(Command):
    """ID (RFC 2971): ``params`` is ``None`` for ``ID NIL``."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, kw_only=True)
class Enable(Command):
    capabilities: tuple[str, ...]  # upper-cased


@dataclass(frozen=True, kw_only=True)
class GetQuota(Command):
    root: str


@dataclass(frozen=True, kw_only=True)
class GetQuotaRoot(Command):
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Search(Command):
    charset: str | None  # upper-cased, None when not given
    criteria: SearchKey  # always an "AND" node


@dataclass(frozen=True, kw_only=True)
class Fetch(Command):
    sequence_set: SequenceSet
    items: tuple[FetchAtt, ...]  # macros expanded
    changed_since: int | None = None  # FETCH ... (CHANGEDSINCE n), RFC 7162
    vanished: bool = False  # UID FETCH ... (CHANGEDSINCE n VANISHED), RFC 7162 §3.2.6


@dataclass(frozen=True, kw_only=True)
class Store(Command):
    sequence_set: SequenceSet
    mode: str  # "+" add, "-" remove, "" replace
    silent: bool
    flags: tuple[str, ...]
    unchanged_since: int | None = None  # STORE set (UNCHANGEDSINCE n) ..., RFC 7162


@dataclass(frozen=True, kw_only=True)
class CopyMove(Command):
    """COPY and MOVE (RFC 6851)."""

    sequence_set: SequenceSet
    mailbox: str


@dataclass(frozen=True, kw_only=True)
class Expunge(Command):
    """EXPUNGE; ``UID EXPUNGE`` (UIDPLUS) carries ``sequence_set``."""

    sequence_set: SequenceSet | None = None


# --------------------------------------------------------------------------- literals
_LITERAL_ANNOUNCE = re.compile(rb"\{([0-9]{1,10})(\+?)\}(\r?\n)?")


def literal_needed(line: bytes) -> tuple[int, bool] | None:
    """If ``line`` ends with a literal announcement, ``(size, non_synchronizing)``.

    ``line`` is either the line just read or everything collected so far for this
    command (CRLF optional). ``{N}`` needs a ``+`` continuation from the server before
    the client sends the N octets; ``{N+}`` (LITERAL+) does not. The session enforces
    its own size limits. Announcements inside quoted strings, and the content of
    literals already collected, do not count. Never raises.
    """
    if not isinstance(line, bytes | bytearray):
        return None
    data = bytes(line)
    in_quote = False
    i = 0
    n = len(data)
    while i < n:
        c = data[i]
        if in_quote:
            if c == 0x5C:
                i += 2
                continue
            if c == 0x22:
                in_quote = False
        elif c == 0x22:
            in_quote = True
        elif c == 0x7B:
            m = _LITERAL_ANNOUNCE.match(data, i)
            if m is not None:
                if m.end() == n:
                    return int(m.group(1)), m.group(2) == b"+"
                if m.group(3):  # a complete announcement: skip the literal's octets
                    i = m.end() + int(m.group(1))
                    continue
        i += 1
    return None


# --------------------------------------------------------------------------- commands
_NO_ARGS = frozenset(
    {"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "IDLE", "NAMESPACE", "CHECK", "CLOSE", "UNSELECT"}
)
_MAILBOX_ONLY = frozenset({"SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"})
_STATUS_ITEMS = frozenset(
    {
        "MESSAGES",
        "RECENT",
        "UIDNEXT",
        "UIDVALIDITY",
        "UNSEEN",
        "SIZE",
        "DELETED",
        "HIGHESTMODSEQ",
        "APPENDLIMIT",
    }
)
_UID_COMMANDS = frozenset({"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "EXPUNGE"})
_BASE64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def parse_command(data: bytes) -> Command:
    """Parse one complete command (literals included, final CRLF optional).

    Raises :class:`ParseError` (and nothing else) when the command is malformed.
    """
    if not isinstance(data, bytes | bytearray):
        raise ParseError(None, "command must be bytes")
    r = Reader(bytes(data))
    try:
        return _parse(r)
    except ParseError:
        raise
    except Exception:  # pragma: no cover - defensive: the contract is "only ParseError"
        raise ParseError(r.tag, "malformed command") from None


def _parse(r: Reader) -> Command:
    tag = r.read_tag()
    r.sp()
    name = r.keyword("command name")
    uid = False
    if name == "UID":
        r.sp()
        name = r.keyword("command name")
        if name not in _UID_COMMANDS:
            raise r.error(f"UID {name[:40]} is not a UID command")
        uid = True
    command = _COMMANDS.get(name)
    if command is None:
        raise r.error(f"unknown command {name[:40]}")
    result = command(r, tag, name, uid)
    r.end()
    return result


def _no_args(r: Reader, tag: str, name: str, uid: bool) -> Command:
    return Command(tag=tag, name=name)


def _login(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    user = r.text(r.astring("user name"), "user name")
    r.sp()
    password = r.text(r.astring("password"), "password")
    return Login(tag=tag, name=name, user=user, password=password)


def _authenticate(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    mechanism = r.keyword("SASL mechanism")
    initial = None
    if r.peek() == 0x20:
        r.sp()
        initial = r.take(_BASE64)
        if not initial:
            raise r.error("invalid initial response")
    return Authenticate(tag=tag, name=name, mechanism=mechanism, initial_response=initial)


def _mailbox_only(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.mailbox()
    condstore = False
    qresync = None
    if name in ("SELECT", "EXAMINE") and r.peek() == 0x20:
        r.sp()
        r.expect(b"(", "select parameter list")
        first = True
        while not r.maybe(b")"):
            if not first:
                r.sp()
            first = False
            param = r.keyword("select parameter")
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC" and qresync is None:
                r.sp()
                qresync = _qresync(r)
            else:
                raise r.error(f"unknown select parameter {param[:40]}")
    return MailboxCommand(tag=tag, name=name, mailbox=mailbox, condstore=condstore,
                          qresync=qresync)


def _qresync(r: Reader) -> Qresync:
    r.expect(b"(", "QRESYNC parameters")
    uidvalidity = r.number(nonzero=True)
    r.sp()
    modseq = r.mod_sequence(nonzero=True)
    known = None
    if r.maybe(b" "):
        if r.peek() != 0x28:
            known = r.sequence_set()
            if any(n is None for span in known.ranges for n in span):
                raise r.error("known UIDs must not use *")
            if r.peek() == 0x20:
                r.sp()
        if r.peek() == 0x28:  # (known-sequence-set SP known-uid-set)
            r.expect(b"(")
            r.sequence_set()
            r.sp()
            r.sequence_set()
            r.expect(b")", "')' closing the sequence match data")
    r.expect(b")", "')' closing QRESYNC parameters")
    return Qresync(uidvalidity=uidvalidity, modseq=modseq, known_uids=known)


def _rename(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    old = r.mailbox()
    r.sp()
    return Rename(tag=tag, name=name, old=old, new=r.mailbox())


def _list(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    select: tuple[str, ...] = ()
    if name == "LIST" and r.peek() == 0x28:
        select = r.keyword_list("list selection option")
        r.sp()
    reference = r.mailbox()
    r.sp()
    pattern = r.list_mailbox()
    returns: list[str] = []
    status: tuple[str, ...] = ()
    if name == "LIST" and r.data[r.pos : r.pos + 9].upper() == b" RETURN (":
        r.pos += 8
        r.expect(b"(")
        while not r.maybe(b")"):
            if returns:
                r.sp()
            option = r.keyword("list return option")
            returns.append(option)
            if len(returns) > MAX_ITEMS:
                raise r.error("too many return options")
            if option == "STATUS":
                r.sp()
                status = _status_items(r)
    return ListCommand(
        tag=tag,
        name=name,
        reference=reference,
        pattern=pattern,
        select_options=select,
        return_options=tuple(returns),
        return_status=status,
    )


def _status(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    return Status(tag=tag, name=name, mailbox=mailbox, items=_status_items(r))


def _status_items(r: Reader) -> tuple[str, ...]:
    items = r.keyword_list("status item", allow_empty=False)
    for item in items:
        if item not in _STATUS_ITEMS:
            raise r.error(f"unknown status item {item[:40]}")
    return items


def _append(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    flags: tuple[str, ...] = ()
    date_time = None
    if r.peek() == 0x28:
        flags = r.flag_list()
        r.sp()
    if r.peek() == 0x22:
        date_time = r.date_time()
        r.sp()
    if r.peek() != 0x7B:
        raise r.error("expected message literal")
    message = r.literal()
    return Append(
        tag=tag, name=name, mailbox=mailbox, flags=flags, date_time=date_time, message=message
    )


def _id(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    if r.startswith(b"NIL"):
        r.pos += 3
        return Id(tag=tag, name=name, params=None)
    r.expect(b"(", "ID parameter list or NIL")
    params: list[tuple[str, str | None]] = []
    while True:
        key = r.text(r.string(), "ID field")
        r.sp()
        raw = r.nstring()
        params.append((key, None if raw is None else r.text(raw, "ID value")))
        if len(params) > 30:  # RFC 2971: at most 30 pairs
            raise r.error("too many ID fields")
        if r.maybe(b")"):
            return Id(tag=tag, name=name, params=tuple(params))
        r.sp()


def _enable(r: Reader, tag: str, name: str, uid: bool) -> Command:
    caps: list[str] = []
    while not r.at_eol():
        r.sp()
        caps.append(r.keyword("capability"))
        if len(caps) > MAX_ITEMS:
            raise r.error("too many capabilities")
    if not caps:
        raise r.error("ENABLE needs at least one capability")
    return Enable(tag=tag, name=name, capabilities=tuple(caps))


def _getquota(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    return GetQuota(tag=tag, name=name, root=r.text(r.astring("quota root"), "quota root"))


def _getquotaroot(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    return GetQuotaRoot(tag=tag, name=name, mailbox=r.mailbox())


def _search(r: Reader, tag: str, name: str, uid: bool) -> Command:
    charset = None
    if r.data[r.pos : r.pos + 9].upper() == b" CHARSET ":
        r.pos += 9
        charset = r.text(r.astring("charset"), "charset").upper()
    criteria = parse_search_keys(r)
    return Search(tag=tag, name=name, uid=uid, charset=charset, criteria=criteria)


def _fetch(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    seqs = r.sequence_set()
    r.sp()
    items = parse_fetch_atts(r)
    changed_since = None
    vanished = False
    if r.data[r.pos : r.pos + 15].upper() == b" (CHANGEDSINCE ":
        r.pos += 15
        changed_since = r.mod_sequence(nonzero=False)
        if r.data[r.pos : r.pos + 9].upper() == b" VANISHED":
            r.pos += 9
            vanished = True
        r.expect(b")", "')' closing fetch modifiers")
    elif r.data[r.pos : r.pos + 11].upper() == b" (VANISHED ":
        r.pos += 11
        vanished = True
        if r.data[r.pos : r.pos + 13].upper() != b"CHANGEDSINCE ":
            raise r.error("VANISHED needs CHANGEDSINCE")
        r.pos += 13
        changed_since = r.mod_sequence(nonzero=False)
        r.expect(b")", "')' closing fetch modifiers")
    if vanished and not uid:
        raise r.error("VANISHED is only allowed in UID FETCH")
    return Fetch(
        tag=tag,
        name=name,
        uid=uid,
        sequence_set=seqs,
        items=items,
        changed_since=changed_since,
        vanished=vanished,
    )


def _store(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    seqs = r.sequence_set()
    r.sp()
    unchanged_since = None
    if r.startswith(b"(UNCHANGEDSINCE "):
        r.pos += 16
        unchanged_since = r.mod_sequence(nonzero=False)
        r.expect(b")", "')' closing store modifiers")
        r.sp()
    mode = ""
    if r.peek() in (0x2B, 0x2D):
        mode = chr(r.data[r.pos])
        r.pos += 1
    item = r.keyword("FLAGS, FLAGS.SILENT")
    if item not in ("FLAGS", "FLAGS.SILENT"):
        raise r.error("expected FLAGS or FLAGS.SILENT")
    r.sp()
    if r.peek() == 0x28:
        flags = r.flag_list()
    else:
        items = [r.flag()]
        while not r.at_eol():
            r.sp()
            items.append(r.flag())
            if len(items) > MAX_ITEMS:
                raise r.error("too many flags")
        flags = tuple(items)
    return Store(
        tag=tag,
        name=name,
        uid=uid,
        sequence_set=seqs,
        mode=mode,
        silent=item == "FLAGS.SILENT",
        flags=flags,
        unchanged_since=unchanged_since,
    )


def _copy_move(r: Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    seqs = r.sequence_set()
    r.sp()
    return CopyMove(tag=tag, name=name, uid=uid, sequence_set=seqs, mailbox=r.mailbox())


def _expunge(r: Reader, tag: str, name: str, uid: bool) -> Command:
    if not uid:
        return Expunge(tag=tag, name=name)
    r.sp()
    return Expunge(tag=tag, name=name, uid=True, sequence_set=r.sequence_set())


_COMMANDS = {
    **dict.fromkeys(_NO_ARGS, _no_args),
    **dict.fromkeys(_MAILBOX_ONLY, _mailbox_only),
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
    "RENAME": _rename,
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    "ID": _id,
    "ENABLE": _enable,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquotaroot,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy_move,
    "MOVE": _copy_move,
    "EXPUNGE": _expunge,
}
