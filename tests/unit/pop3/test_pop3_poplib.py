"""POP3 sessions driven by the stdlib ``poplib`` client against a real Maildir store."""

from __future__ import annotations

import asyncio
import poplib
import ssl

import pytest
from pop3_testkit import ANN, Listener, message, running_pop3

from mailward.store import INBOX, MaildirStore


def _login(port: int, user: str = ANN, password: str = "ann-secret") -> poplib.POP3:
    client = poplib.POP3("127.0.0.1", port, timeout=10)
    client.user(user)
    client.pass_(password)
    return client


async def _deliver(store: MaildirStore, *subjects: str) -> None:
    for subject in subjects:
        await store.deliver(ANN, message(subject, f"Body of {subject}.\r\nLine 2.\r\n"))


async def test_full_session_then_relogin_shows_deletion(store: MaildirStore, pop: Listener) -> None:
    await _deliver(store, "one", "two", "three")
    infos = await store.messages(ANN, INBOX)
    status = await store.folder_status(ANN, INBOX)

    def first() -> dict:
        client = _login(pop.port)
        seen = {
            "stat": client.stat(),
            "list": client.list(),
            "list2": client.list(2),
            "uidl": client.uidl(),
            "retr": client.retr(2),
            "top": client.top(3, 1),
        }
        seen["dele"] = client.dele(1)
        seen["stat_after_dele"] = client.stat()
        seen["quit"] = client.quit()
        return seen

    seen = await asyncio.to_thread(first)
    total = sum(i.size for i in infos)
    assert seen["stat"] == (3, total)
    assert seen["list"][1] == [f"{n} {i.size}".encode() for n, i in enumerate(infos, 1)]
    assert seen["list2"] == f"+OK 2 {infos[1].size}".encode()
    assert seen["uidl"][1] == [
        f"{n} {status.uidvalidity}.{i.uid}".encode() for n, i in enumerate(infos, 1)
    ]
    assert b"Subject: two" in seen["retr"][1]
    assert seen["retr"][1][-2:] == [b"Body of two.", b"Line 2."]
    assert seen["top"][1][-2:] == [b"", b"Body of three."]
    assert seen["stat_after_dele"] == (2, total - infos[0].size)
    assert seen["quit"].startswith(b"+OK")

    assert [i.uid for i in await store.messages(ANN, INBOX)] == [infos[1].uid, infos[2].uid]

    def second() -> tuple:
        client = _login(pop.port)
        try:
            return client.stat(), client.retr(1)[1]
        finally:
            client.quit()

    stat, lines = await asyncio.to_thread(second)
    assert stat == (2, infos[1].size + infos[2].size)
    assert b"Subject: two" in lines


async def test_rset_undoes_deletions(store: MaildirStore, pop: Listener) -> None:
    await _deliver(store, "one", "two")

    def run() -> tuple:
        client = _login(pop.port)
        client.dele(1)
        client.dele(2)
        with pytest.raises(poplib.error_proto, match="No such message"):
            client.retr(1)
        rset = client.rset()
        stat = client.stat()
        client.quit()
        return rset, stat

    rset, stat = await asyncio.to_thread(run)
    assert rset.startswith(b"+OK")
    assert stat[0] == 2
    assert len(await store.messages(ANN, INBOX)) == 2


async def test_session_dropped_without_quit_deletes_nothing(
    store: MaildirStore, pop: Listener
) -> None:
    await _deliver(store, "one")

    def run() -> None:
        client = _login(pop.port)
        client.dele(1)
        client.close()

    await asyncio.to_thread(run)
    assert len(await store.messages(ANN, INBOX)) == 1


async def test_dot_stuffing_round_trip(store: MaildirStore, pop: Listener) -> None:
    data = b"Subject: dots\r\n\r\n.foo\r\n.\r\n..bar\r\nend\r\n"
    await store.deliver(ANN, data)

    def run() -> tuple:
        client = _login(pop.port)
        try:
            return client.retr(1), client.top(1, 2)
        finally:
            client.quit()

    (resp, lines, _), (_, top_lines, _) = await asyncio.to_thread(run)
    assert resp == f"+OK {len(data)} octets".encode()
    assert b"\r\n".join(lines) + b"\r\n" == data
    assert top_lines == [b"Subject: dots", b"", b".foo", b"."]


async def test_lf_only_message_is_sent_with_crlf(store: MaildirStore, pop: Listener) -> None:
    await store.deliver(ANN, b"Subject: lf\n\nline\n.x")

    def run() -> list[bytes]:
        client = _login(pop.port)
        try:
            return client.retr(1)[1]
        finally:
            client.quit()

    assert await asyncio.to_thread(run) == [b"Subject: lf", b"", b"line", b".x"]


async def test_uidls_stable_across_sessions(store: MaildirStore, pop: Listener) -> None:
    await _deliver(store, "one", "two", "three")

    def uidls() -> list[bytes]:
        client = _login(pop.port)
        try:
            return [line.split()[1] for line in client.uidl()[1]]
        finally:
            client.quit()

    first = await asyncio.to_thread(uidls)
    second = await asyncio.to_thread(uidls)
    assert first == second
    assert len(set(first)) == 3

    def delete_first() -> None:
        client = _login(pop.port)
        client.dele(1)
        client.quit()

    await asyncio.to_thread(delete_first)
    assert await asyncio.to_thread(uidls) == first[1:]


async def test_second_concurrent_login_is_in_use(store: MaildirStore, pop: Listener) -> None:
    def run() -> tuple[str, bytes]:
        holder = _login(pop.port)
        other = poplib.POP3("127.0.0.1", pop.port, timeout=10)
        other.user(ANN)
        with pytest.raises(poplib.error_proto) as refused:
            other.pass_("ann-secret")
        holder.quit()
        other.user(ANN)  # the session lives on; the lock is free again
        ok = other.pass_("ann-secret")
        other.quit()
        return str(refused.value), ok

    refused, ok = await asyncio.to_thread(run)
    assert "-ERR [IN-USE]" in refused
    assert ok.startswith(b"+OK")
    assert not pop.locks.held(ANN)


async def test_lock_is_shared_between_listeners(store: MaildirStore) -> None:
    async with running_pop3(store) as a, running_pop3(store, locks=a.locks) as b:

        def run() -> str:
            holder = _login(a.port)
            other = poplib.POP3("127.0.0.1", b.port, timeout=10)
            try:
                other.user(ANN)
                other.pass_("ann-secret")
            except poplib.error_proto as exc:
                return str(exc)
            finally:
                other.close()
                holder.quit()
            return "no error"

        assert "[IN-USE]" in await asyncio.to_thread(run)


async def test_wrong_password_is_auth_error(pop: Listener) -> None:
    def run() -> tuple[str, bytes]:
        client = poplib.POP3("127.0.0.1", pop.port, timeout=10)
        client.user(ANN)
        with pytest.raises(poplib.error_proto) as refused:
            client.pass_("wrong")
        client.user(ANN)
        ok = client.pass_("ann-secret")
        client.quit()
        return str(refused.value), ok

    refused, ok = await asyncio.to_thread(run)
    assert "-ERR [AUTH]" in refused
    assert ok.startswith(b"+OK")
    assert pop.auth.attempts[0] == (ANN, "wrong", "127.0.0.1")


async def test_password_with_spaces(store: MaildirStore, pop: Listener) -> None:
    def run() -> bytes:
        client = _login(pop.port, "bob", "bob pw")
        try:
            return client.stat()
        finally:
            client.quit()

    assert await asyncio.to_thread(run) == (0, 0)


async def test_capa_plaintext(pop: Listener) -> None:
    def run() -> dict:
        client = poplib.POP3("127.0.0.1", pop.port, timeout=10)
        try:
            return client.capa()
        finally:
            client.quit()

    caps = await asyncio.to_thread(run)
    assert set(caps) == {
        "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL"
    }  # fmt: skip
    assert caps["SASL"] == ["PLAIN"]


async def test_stls_then_user_pass(
    store: MaildirStore,
    pop3_server_tls: ssl.SSLContext,
    pop3_client_tls: ssl.SSLContext,
) -> None:
    await _deliver(store, "secret")
    async with running_pop3(
        store, tls_context=pop3_server_tls, allow_plaintext_auth=False
    ) as listener:

        def run() -> tuple:
            client = poplib.POP3("127.0.0.1", listener.port, timeout=10)
            before = client.capa()
            with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
                client.user(ANN)
            client.stls(context=pop3_client_tls)
            after = client.capa()
            client.user(ANN)
            client.pass_("ann-secret")
            stat = client.stat()
            client.quit()
            return before, after, stat

        before, after, stat = await asyncio.to_thread(run)
    assert "STLS" in before and "USER" not in before and "SASL" not in before
    assert "STLS" not in after and "USER" in after
    assert stat[0] == 1


async def test_implicit_tls(
    store: MaildirStore,
    pop3_server_tls: ssl.SSLContext,
    pop3_client_tls: ssl.SSLContext,
) -> None:
    await _deliver(store, "tls")
    async with running_pop3(
        store, tls_context=pop3_server_tls, implicit_tls=True, allow_plaintext_auth=False
    ) as listener:

        def run() -> tuple:
            client = poplib.POP3_SSL("127.0.0.1", listener.port, context=pop3_client_tls)
            caps = client.capa()
            client.user(ANN)
            client.pass_("ann-secret")
            lines = client.retr(1)[1]
            client.quit()
            return caps, lines

        caps, lines = await asyncio.to_thread(run)
    assert "STLS" not in caps and "USER" in caps
    assert b"Subject: tls" in lines


async def test_implicit_tls_requires_context(store: MaildirStore) -> None:
    with pytest.raises(ValueError, match="tls_context"):
        async with running_pop3(store, implicit_tls=True):
            pass
