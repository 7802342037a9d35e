"""Two sessions on one mailbox see each other's changes; IDLE wakes on delivery."""

from __future__ import annotations

from imap_testkit import ANN, ImapTestServer, RawClient, message
from imapclient import IMAPClient

from mailward.store import SEEN


def _session(imap: ImapTestServer) -> RawClient:
    raw = RawClient(imap.port)
    raw.command(b"l", b'LOGIN ann@example.com "ann-secret"')
    raw.command(b"s", b"SELECT INBOX")
    return raw


def test_sessions_see_deliveries_flags_and_expunges(imap_any: ImapTestServer) -> None:
    imap = imap_any
    for i in range(3):
        imap.deliver(ANN, message(f"m{i}"))
    a, b = _session(imap), _session(imap)
    imap.deliver(ANN, message("new"))
    assert a.command(b"1", b"NOOP") == [b"* 4 EXISTS\r\n", b"* 4 RECENT\r\n",
                                        b"1 OK NOOP completed\r\n"]
    assert b.command(b"1", b"NOOP") == [b"* 4 EXISTS\r\n", b"* 0 RECENT\r\n",
                                        b"1 OK NOOP completed\r\n"]
    a.command(b"2", b"STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert b.command(b"2", b"NOOP") == [b"* 2 FETCH (FLAGS (\\Flagged))\r\n",
                                        b"2 OK NOOP completed\r\n"]
    a.command(b"3", b"STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    assert a.command(b"4", b"EXPUNGE")[:2] == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
    # b must not learn of expunges during a non-UID FETCH (RFC 3501 §7.4.1) ...
    fetch = b.command(b"3", b"FETCH 1:4 (UID)")
    assert not any(line.endswith(b" EXPUNGE\r\n") for line in fetch)
    assert fetch[-1].startswith(b"3 NO [EXPUNGEISSUED]")
    assert b"* 2 FETCH (UID 2)\r\n" in fetch and b"* 4 FETCH (UID 4)\r\n" in fetch
    # ... but is told at the next command that allows it, sequence numbers intact
    assert b.command(b"4", b"NOOP") == [b"* 3 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n",
                                        b"4 OK NOOP completed\r\n"]
    assert b.command(b"5", b"FETCH 1:* (UID)")[:2] == [b"* 1 FETCH (UID 2)\r\n",
                                                       b"* 2 FETCH (UID 4)\r\n"]
    a.close()
    b.close()


def test_idle_wakes_on_delivery_and_on_another_sessions_change(imap: ImapTestServer) -> None:
    imap.deliver(ANN, message("first"))
    watcher, other = _session(imap), _session(imap)
    watcher.send(b"i IDLE\r\n")
    assert watcher.line() == b"+ idling\r\n"
    watcher.sock.settimeout(10)  # generous: a missing wake-up fails instead of hanging
    imap.deliver(ANN, message("second"))
    assert watcher.line() == b"* 2 EXISTS\r\n"
    assert watcher.line() == b"* 2 RECENT\r\n"
    other.command(b"f", b"STORE 1 +FLAGS.SILENT (\\Seen)")
    assert watcher.line() == b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"
    watcher.send(b"DONE\r\n")
    assert watcher.line() == b"i OK Idle completed\r\n"
    assert watcher.command(b"n", b"NOOP") == [b"n OK NOOP completed\r\n"]
    watcher.close()
    other.close()


def test_imapclient_folder_workflow(imap: ImapTestServer) -> None:
    imap.deliver(ANN, message("hello", "Hi there\r\n"))
    imap.deliver(ANN, message("spam offer", "Buy now\r\n"), flags=frozenset({SEEN}))
    client = IMAPClient("127.0.0.1", port=imap.port, ssl=False, timeout=30)
    client.login(ANN, "ann-secret")
    assert client.find_special_folder(b"\\Junk") == "Junk"
    assert client.find_special_folder(b"\\Sent") == "Sent"
    assert client.namespace().personal == (("", "/"),)
    info = client.select_folder("INBOX")
    assert info[b"EXISTS"] == 2 and info[b"UIDNEXT"] == 3
    messages = client.search(["SUBJECT", "spam"])
    assert messages == [2]
    fetched = client.fetch(messages, ["ENVELOPE", "FLAGS", "RFC822.SIZE"])
    assert fetched[2][b"ENVELOPE"].subject == b"spam offer"
    client.move(messages, "Junk")
    assert client.folder_status("Junk", ["MESSAGES"])[b"MESSAGES"] == 1
    client.add_flags([1], [b"$Important"])
    assert b"$Important" in client.get_flags([1])[1]
    client.idle()
    imap.deliver(ANN, message("while idle"))
    responses = client.idle_check(timeout=10)
    client.idle_done()
    assert (2, b"EXISTS") in responses
    assert client.get_quota_root("INBOX")[0].quota_roots == [""]
    client.logout()


def test_pipelined_commands_are_answered_in_order(imap: ImapTestServer) -> None:
    imap.deliver(ANN, message("one"))
    raw = RawClient(imap.port)
    raw.send(b'a LOGIN ann@example.com "ann-secret"\r\nb SELECT INBOX\r\n'
             b"c FETCH 1 (UID)\r\nd LOGOUT\r\n")
    lines = raw.until_tagged(b"d")
    tags = [line.split(b" ")[0] for line in lines if not line.startswith(b"*")]
    assert tags == [b"a", b"b", b"c", b"d"]
    raw.sock.settimeout(10)
    assert raw.sock.recv(1) == b""  # closed after LOGOUT
    raw.close()


def test_shutdown_says_bye_to_waiting_and_idling_sessions(imap: ImapTestServer) -> None:
    waiting, idling = _session(imap), _session(imap)
    idling.send(b"i IDLE\r\n")
    assert idling.line() == b"+ idling\r\n"
    imap.loop.call_soon_threadsafe(imap.services.shut_down)
    for client in (waiting, idling):
        client.sock.settimeout(10)
        assert client.line() == b"* BYE Server shutting down\r\n"
        assert client.file.read(1) == b""
        client.close()
