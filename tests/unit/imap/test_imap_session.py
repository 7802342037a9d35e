"""IMAP session over real sockets with stdlib imaplib and a raw line client."""

from __future__ import annotations

import base64
import imaplib
import re
import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from imap_testkit import (
    ANN,
    BOB,
    HOSTNAME,
    PASSWORDS,
    ImapTestServer,
    RawClient,
    imap_server,
    message,
)

from mailward.store import SEEN, MaildirStore


def _ok(result: tuple[str, list]) -> list:
    status, data = result
    assert status == "OK", data
    return data


# -- greeting, capabilities, login -------------------------------------------------------


def test_greeting_and_capabilities_change_after_login(imap: ImapTestServer) -> None:
    raw = RawClient(imap.port)
    assert raw.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    assert b"AUTH=PLAIN" in raw.greeting and b"IDLE" in raw.greeting
    lines = raw.command(b"a1", b'LOGIN ann@example.com "ann-secret"')
    assert lines[-1].startswith(b"a1 OK [CAPABILITY IMAP4rev1 ")
    for cap in (b"UIDPLUS", b"MOVE", b"NAMESPACE", b"UNSELECT", b"SPECIAL-USE", b"QUOTA",
                b"CHILDREN", b"LITERAL+", b"ENABLE", b"ID"):
        assert cap in lines[-1]
    raw.close()


def test_login_is_disabled_before_tls(tmp_path: Path) -> None:
    with imap_server(lambda: MaildirStore(tmp_path), allow_plaintext_auth=False) as srv:
        raw = RawClient(srv.port)
        assert b"LOGINDISABLED" in raw.greeting and b"AUTH=PLAIN" not in raw.greeting
        lines = raw.command(b"a", b'LOGIN ann@example.com "ann-secret"')
        assert lines[-1].startswith(b"a NO [PRIVACYREQUIRED]")
        lines = raw.command(b"b", b"AUTHENTICATE PLAIN " + base64.b64encode(
            b"\0ann@example.com\0ann-secret"))
        assert lines[-1].startswith(b"b NO [PRIVACYREQUIRED]")
        assert srv.auth.attempts == []
        raw.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_pair(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(HOSTNAME, "127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_starttls_and_implicit_tls(tmp_path: Path, ca: trustme.CA) -> None:
    server_ctx, client_ctx = _tls_pair(ca)
    with imap_server(lambda: MaildirStore(tmp_path), tls=server_ctx,
                     allow_plaintext_auth=False) as srv:
        client = imaplib.IMAP4("127.0.0.1", srv.port, timeout=30)
        assert "STARTTLS" in client.capabilities and "LOGINDISABLED" in client.capabilities
        _ok(client.starttls(ssl_context=client_ctx))  # imaplib re-reads CAPABILITY
        assert "AUTH=PLAIN" in client.capabilities and "STARTTLS" not in client.capabilities
        _ok(client.login(ANN, PASSWORDS[ANN]))
        client.logout()
        secure = imaplib.IMAP4_SSL("127.0.0.1", srv.tls_port, ssl_context=client_ctx,
                                   timeout=30)
        assert "STARTTLS" not in secure.capabilities
        _ok(secure.login(BOB, PASSWORDS[BOB]))
        secure.logout()


def test_login_failures_and_lockout_answers(imap: ImapTestServer) -> None:
    client = imaplib.IMAP4("127.0.0.1", imap.port, timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(ANN, "wrong")
    imap.auth.locked.add(ANN)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\] Too many failed logins"):
        client.login(ANN, PASSWORDS[ANN])
    imap.auth.locked.clear()
    _ok(client.login(ANN, PASSWORDS[ANN]))  # the session survived both refusals
    client.logout()


def test_authenticate_plain_with_and_without_initial_response(imap: ImapTestServer) -> None:
    token = base64.b64encode(b"\0ann@example.com\0ann-secret")
    raw = RawClient(imap.port)
    assert raw.command(b"a", b"AUTHENTICATE PLAIN " + token)[-1].startswith(b"a OK")
    raw.close()
    raw = RawClient(imap.port)
    raw.send(b"b AUTHENTICATE PLAIN\r\n")
    assert raw.line() == b"+ \r\n"
    raw.send(b"*\r\n")
    assert raw.line().startswith(b"b BAD")  # cancelled
    raw.send(b"c AUTHENTICATE PLAIN\r\n")
    assert raw.line() == b"+ \r\n"
    raw.send(token + b"\r\n")
    assert raw.line().startswith(b"c OK")
    raw.close()
    client = imaplib.IMAP4("127.0.0.1", imap.port, timeout=30)
    _ok(client.authenticate("PLAIN", lambda _: b"\0bob@example.com\0bob pw"))
    client.logout()


# -- folders ------------------------------------------------------------------------------


def _names(listing: list) -> dict[str, str]:
    out = {}
    for item in listing:
        m = re.match(rb'\((.*?)\) "/" (.*)', item)
        assert m, item
        out[m.group(2).decode().strip('"')] = m.group(1).decode()
    return out


def test_special_use_folders_exist_and_hierarchy_is_listed(imap: ImapTestServer) -> None:
    client = imap.login()
    folders = _names(_ok(client.list()))
    assert folders["INBOX"] == "\\HasNoChildren"
    for name in ("Drafts", "Sent", "Trash", "Junk"):
        assert f"\\{name}" in folders[name]
    _ok(client.create("Archive/2026"))
    _ok(client.create("Entw&APw-rfe"))  # "Entwürfe" in modified UTF-7
    folders = _names(_ok(client.list()))
    assert folders["Archive"] == "\\HasChildren"
    assert folders["Archive/2026"] == "\\HasNoChildren"
    assert "Entw&APw-rfe" in folders
    assert imap.call(imap.store.folder_status(ANN, "Entwürfe")).exists == 0
    assert list(_names(_ok(client.list('""', "%")))) == [
        "INBOX", "Archive", "Drafts", "Entw&APw-rfe", "Junk", "Sent", "Trash"]
    assert list(_names(_ok(client.list("Archive/", "%")))) == ["Archive/2026"]
    typ, data = client.create("Archive")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    typ, data = client.delete("Archive")
    assert typ == "NO" and data[0].startswith(b"[INUSE] ")  # has children
    typ, data = client.rename("Archive", "Drafts")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    typ, data = client.status("Missing", "(MESSAGES)")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0]
    typ, data = client.create("a//b")
    assert typ == "NO" and b"[CANNOT]" in data[0]
    _ok(client.rename("Archive/2026", "Archive/old"))
    typ, data = client.select("Archive/2026")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    _ok(client.delete("Archive/old"))
    _ok(client.delete("Archive"))
    typ, _ = client.delete("INBOX")
    assert typ == "NO"
    client.logout()


def test_subscriptions_and_lsub(imap: ImapTestServer) -> None:
    client = imap.login()
    _ok(client.create("Lists/python"))
    _ok(client.subscribe("Lists/python"))
    subscribed = _names(_ok(client.lsub()))
    assert {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Lists/python"} <= set(subscribed)
    assert subscribed.get("Lists") is None
    assert _names(_ok(client.lsub('""', "Lists/%"))) == {"Lists/python": ""}
    _ok(client.unsubscribe("Lists/python"))
    assert "Lists/python" not in _names(_ok(client.lsub()))
    client.logout()


def test_rename_inbox_moves_its_messages(imap: ImapTestServer) -> None:
    imap.deliver(ANN, message("one"))
    client = imap.login()
    _ok(client.rename("INBOX", "Old"))
    assert _ok(client.status("INBOX", "(MESSAGES)"))[0].endswith(b"(MESSAGES 0)")
    assert _ok(client.status("Old", "(MESSAGES)"))[0].endswith(b"(MESSAGES 1)")
    client.logout()


def test_status_namespace_id_enable_quota(tmp_path: Path) -> None:
    with imap_server(lambda: MaildirStore(tmp_path), quota=10 * 1024 * 1024) as srv:
        srv.deliver(ANN, message("one", "x" * 3000))
        srv.deliver(ANN, message("two"), flags=frozenset({SEEN}))
        client = srv.login()
        status = _ok(client.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)"))
        assert re.fullmatch(rb'"INBOX" \(MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY \d+ UNSEEN 1\)',
                            status[0])
        assert _ok(client.namespace()) == [b'(("" "/")) NIL NIL']
        typ, _ = client.xatom("ID", '("name" "pytest")')
        assert typ == "OK" and client.untagged_responses.pop("ID") == [b'("name" "mailward")']
        typ, _data = client._simple_command("ENABLE", "CONDSTORE")
        assert typ == "OK"
        quota = _ok(client.getquotaroot("INBOX"))
        assert quota[0] == [b'"INBOX" ""']
        used = srv.call(srv.store.usage(ANN))
        assert quota[1] == [b'"" (STORAGE %d 10240)' % ((used + 1023) // 1024)]
        client.logout()


# -- SELECT, FETCH, STORE -------------------------------------------------------------------


def test_select_reports_counts_and_examine_is_read_only(imap_any: ImapTestServer) -> None:
    imap = imap_any
    imap.deliver(ANN, message("one"), flags=frozenset({SEEN}))
    imap.deliver(ANN, message("two"), flags=frozenset({"$Work"}))
    raw = RawClient(imap.port)
    raw.command(b"a", b'LOGIN ann@example.com "ann-secret"')
    lines = b"".join(raw.command(b"b", b"SELECT INBOX"))
    assert b"* 2 EXISTS\r\n" in lines and b"* 2 RECENT\r\n" in lines
    assert b"* OK [UNSEEN 2]" in lines and b"* OK [UIDNEXT 3]" in lines
    assert b"$Work" in lines.split(b"\r\n")[0]  # FLAGS lists keywords in use
    assert b"[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]" in lines
    assert lines.endswith(b"b OK [READ-WRITE] SELECT completed\r\n")
    lines = b"".join(raw.command(b"c", b"EXAMINE INBOX"))
    assert b"* 0 RECENT" in lines  # the SELECT above claimed \Recent
    assert lines.endswith(b"c OK [READ-ONLY] EXAMINE completed\r\n")
    lines = raw.command(b"d", b"FETCH 2 (BODY[TEXT])")
    assert b"FLAGS" not in b"".join(lines)  # read-only: no \Seen set
    assert raw.command(b"e", b"STORE 1 +FLAGS (\\Deleted)")[-1].startswith(b"e NO [READ-ONLY]")
    assert raw.command(b"f", b"EXPUNGE")[-1].startswith(b"f NO")
    raw.close()


def test_fetch_items_peek_and_partial(imap_any: ImapTestServer) -> None:
    imap = imap_any
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    data = message("Hello", "Body line.\r\n")
    imap.deliver(ANN, data, date=when)
    client = imap.login()
    client.select("INBOX")
    items = _ok(client.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE)"))
    assert items == [b'1 (UID 1 FLAGS (\\Recent) INTERNALDATE "04-Mar-2026 05:06:07 +0000" '
                     b"RFC822.SIZE %d)" % len(data)]
    peek = _ok(client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (Subject)])"))
    assert peek[0] == (b"1 (BODY[HEADER.FIELDS (SUBJECT)] {18}", b"Subject: Hello\r\n\r\n")
    assert _ok(client.fetch("1", "(FLAGS)")) == [b"1 (FLAGS (\\Recent))"]
    part = _ok(client.fetch("1", "(BODY.PEEK[]<6.14>)"))
    assert part[0] == (b"1 (BODY[]<6> {14}", data[6:20])
    text = _ok(client.fetch("1", "(BODY[TEXT])"))
    assert text[0][1] == b"Body line.\r\n" and b"FLAGS (\\Seen \\Recent)" in text[1]
    header = _ok(client.fetch("1", "(RFC822.HEADER)"))
    assert header[0][1] == data.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    uid = _ok(client.uid("FETCH", "1", "(RFC822.SIZE)"))
    assert uid == [b"1 (UID 1 RFC822.SIZE %d)" % len(data)]
    with pytest.raises(imaplib.IMAP4.error, match="Invalid message sequence number"):
        client.fetch("5", "(FLAGS)")
    client.logout()


def test_store_flags_and_keywords(imap: ImapTestServer) -> None:
    for i in range(3):
        imap.deliver(ANN, message(f"m{i}"))
    client = imap.login()
    client.select("INBOX")
    assert _ok(client.store("1:2", "+FLAGS", "(\\Flagged $Work)")) == [
        b"1 (FLAGS (\\Flagged \\Recent $Work))", b"2 (FLAGS (\\Flagged \\Recent $Work))"]
    assert _ok(client.store("2", "-FLAGS", "(\\flagged)")) == [b"2 (FLAGS (\\Recent $Work))"]
    assert _ok(client.store("3", "FLAGS", "(\\Seen)")) == [b"3 (FLAGS (\\Seen \\Recent))"]
    assert _ok(client.store("1", "+FLAGS.SILENT", "(\\Answered)")) == [None]
    assert _ok(client.uid("STORE", "3", "-FLAGS", "(\\Seen)")) == [
        b"3 (UID 3 FLAGS (\\Recent))"]
    infos = imap.call(imap.store.messages(ANN, "INBOX"))
    assert [sorted(i.flags) for i in infos] == [
        ["$Work", "\\Answered", "\\Flagged"], ["$Work"], []]
    client.logout()


# -- APPEND, literals ------------------------------------------------------------------------


def test_append_with_flags_date_and_appenduid(imap_any: ImapTestServer) -> None:
    imap = imap_any
    client = imap.login()
    msg = message("appended")
    when = imaplib.Time2Internaldate(datetime(2025, 12, 24, 18, 30, 0, tzinfo=UTC))
    typ, data = client.append("Sent", "(\\Seen $Sent)", when, msg)
    assert typ == "OK"
    uidvalidity = imap.call(imap.store.folder_status(ANN, "Sent")).uidvalidity
    assert data[0].startswith(b"[APPENDUID %d 1]" % uidvalidity)
    [info] = imap.call(imap.store.messages(ANN, "Sent"))
    assert info.flags == {"\\Seen", "$Sent"} and info.size == len(msg)
    assert info.internal_date == datetime(2025, 12, 24, 18, 30, tzinfo=UTC)
    typ, data = client.append("Nope", None, None, msg)
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    client.logout()


def test_append_over_quota_is_refused(tmp_path: Path) -> None:
    with imap_server(lambda: MaildirStore(tmp_path), quota=100) as srv:
        client = srv.login()
        typ, data = client.append("INBOX", None, None, message("big", "x" * 200))
        assert typ == "NO" and b"[OVERQUOTA]" in data[0]
        assert srv.call(srv.store.messages(ANN, "INBOX")) == []
        client.logout()


def test_literals_sync_nonsync_and_too_big(tmp_path: Path) -> None:
    with imap_server(lambda: MaildirStore(tmp_path), max_literal=4096) as srv:
        raw = RawClient(srv.port)
        raw.command(b"a", b'LOGIN ann@example.com "ann-secret"')
        body = message("lit")
        raw.send(b"b APPEND INBOX {%d}\r\n" % len(body))
        assert raw.line() == b"+ Ready for literal data\r\n"
        raw.send(body + b"\r\n")
        assert raw.until_tagged(b"b")[-1].startswith(b"b OK [APPENDUID ")
        # LITERAL+: no continuation, the command goes straight through
        lines = raw.command(b"c", b"APPEND INBOX {%d+}\r\n" % len(body) + body)
        assert lines[-1].startswith(b"c OK [APPENDUID ")
        # a synchronising literal over the limit is refused before it is sent
        raw.send(b"d APPEND INBOX {999999}\r\n")
        assert raw.line().startswith(b"d NO [TOOBIG]")
        assert raw.command(b"e", b"NOOP")[-1] == b"e OK NOOP completed\r\n"
        # a non-synchronising one cannot be skipped safely: BAD and BYE
        raw.send(b"f APPEND INBOX {999999+}\r\n")
        assert raw.line().startswith(b"f BAD [TOOBIG]")
        assert raw.line().startswith(b"* BYE")
        raw.close()
        assert len(srv.call(srv.store.messages(ANN, "INBOX"))) == 2


# -- COPY, MOVE, EXPUNGE -----------------------------------------------------------------------


def test_copy_move_and_uid_expunge(imap_any: ImapTestServer) -> None:
    imap = imap_any
    for i in range(4):
        imap.deliver(ANN, message(f"m{i}"))
    raw = RawClient(imap.port)
    raw.command(b"a", b'LOGIN ann@example.com "ann-secret"')
    raw.command(b"b", b"SELECT INBOX")
    archive = imap.call(imap.store.folder_status(ANN, "Trash")).uidvalidity
    lines = raw.command(b"c", b"COPY 1:2 Trash")
    assert lines[-1] == b"c OK [COPYUID %d 1:2 1:2] Copy completed\r\n" % archive
    lines = raw.command(b"d", b"UID MOVE 3 Trash")
    assert lines == [b"* OK [COPYUID %d 3 3] Moved\r\n" % archive, b"* 3 EXPUNGE\r\n",
                     b"d OK Move completed\r\n"]
    raw.command(b"e", b"STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    lines = raw.command(b"f", b"UID EXPUNGE 4")  # only UID 4 (now seq 3) goes
    assert lines == [b"* 3 EXPUNGE\r\n", b"f OK Expunge completed\r\n"]
    lines = raw.command(b"g", b"EXPUNGE")
    assert lines == [b"* 2 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n", b"g OK Expunge completed\r\n"]
    assert raw.command(b"h", b"COPY 1 Nowhere")[-1].startswith(b"h BAD")  # empty mailbox
    raw.close()
    assert [m.uid for m in imap.call(imap.store.messages(ANN, "Trash"))] == [1, 2, 3]


def test_close_expunges_and_unselect_does_not(imap: ImapTestServer) -> None:
    for i in range(2):
        imap.deliver(ANN, message(f"m{i}"))
    client = imap.login()
    client.select("INBOX")
    client.store("1", "+FLAGS", "(\\Deleted)")
    _ok(client._simple_command("UNSELECT"))
    assert len(imap.call(imap.store.messages(ANN, "INBOX"))) == 2
    client.select("INBOX")
    _ok(client.close())
    assert [m.uid for m in imap.call(imap.store.messages(ANN, "INBOX"))] == [2]
    client.state = "SELECTED"  # make imaplib send it anyway
    with pytest.raises(imaplib.IMAP4.error, match="FETCH not allowed now"):
        client.fetch("1", "(FLAGS)")  # no folder selected any more
    client.logout()


def test_uids_are_never_reused(imap_any: ImapTestServer) -> None:
    imap = imap_any
    for i in range(3):
        imap.deliver(ANN, message(f"m{i}"))
    client = imap.login()
    client.select("INBOX")
    client.store("3", "+FLAGS", "(\\Deleted)")
    client.expunge()
    imap.deliver(ANN, message("later"))
    client.noop()
    assert _ok(client.uid("SEARCH", None, "ALL")) == [b"1 2 4"]
    client.logout()


# -- SEARCH --------------------------------------------------------------------------------------


def test_search_through_the_session(imap: ImapTestServer) -> None:
    imap.deliver(ANN, message("Quarterly report", "Numbers inside.\r\n"))
    imap.deliver(ANN, message("Grüße", "Viele Grüße aus Köln\r\n"),
                 flags=frozenset({SEEN}))
    imap.deliver(ANN, message("lunch", "See you\r\n", sender="bob@example.com"))
    client = imap.login()
    client.select("INBOX")
    assert _ok(client.search(None, "UNSEEN")) == [b"1 3"]
    assert _ok(client.search(None, "FROM", "bob")) == [b"3"]
    assert _ok(client.search(None, "OR", "SUBJECT", "report", "BODY", "inside")) == [b"1"]
    assert _ok(client.uid("SEARCH", None, "NOT", "SEEN", "LARGER", "10")) == [b"1 3"]
    client.literal = "Köln".encode()
    assert _ok(client.search("UTF-8", "BODY")) == [b"2"]
    client.literal = "Grüße".encode()
    assert _ok(client.search("UTF-8", "SUBJECT")) == [b"2"]
    typ, data = client.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]
    client.logout()


# -- robustness -------------------------------------------------------------------------------


def test_malformed_commands_get_bad_and_the_session_goes_on(imap: ImapTestServer) -> None:
    raw = RawClient(imap.port)
    assert raw.command(b"a", b"FROBNICATE")[-1].startswith(b"a BAD")
    raw.send(b"\r\n")
    assert raw.line().startswith(b"* BAD")
    assert raw.command(b"b", b"FETCH 1 (FLAGS)")[-1].startswith(b"b BAD")  # not selected
    assert raw.command(b"c", b'LOGIN "unterminated')[-1].startswith(b"c BAD")
    raw.send(b"d NOOP " + b"x" * 70000 + b"\r\n")
    assert raw.line().startswith(b"* BAD Command line too long")
    assert raw.command(b"e", b'LOGIN ann@example.com "ann-secret"')[-1].startswith(b"e OK")
    raw.command(b"f", b"SELECT INBOX")
    assert raw.command(b"g", b"FETCH 1:* (BODY[1.2.3.X])")[-1].startswith(b"g BAD")
    assert raw.command(b"h", b"STORE 1 +FLAGS (\\Bogus)")[-1].startswith(b"h BAD")
    assert raw.command(b"i", b"NOOP")[-1] == b"i OK NOOP completed\r\n"
    raw.close()


def test_idle_timeout_logs_out(tmp_path: Path) -> None:
    with imap_server(lambda: MaildirStore(tmp_path), idle_timeout=1.0) as srv:
        raw = RawClient(srv.port)
        assert raw.command(b"a", b'LOGIN ann@example.com "ann-secret"')[-1].startswith(b"a OK")
        assert raw.line() == b"* BYE Autologout; idle for too long\r\n"
        with pytest.raises(EOFError):
            raw.line()
        raw.close()


def test_preauth_timeout_logs_out_before_login(tmp_path: Path) -> None:
    with imap_server(lambda: MaildirStore(tmp_path), preauth_timeout=1.0) as srv:
        raw = RawClient(srv.port)  # idle_timeout stays 30 minutes
        assert raw.line() == b"* BYE Autologout; idle for too long\r\n"
        with pytest.raises(EOFError):
            raw.line()
        raw.close()
