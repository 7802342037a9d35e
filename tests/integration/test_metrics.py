"""``/metrics`` over real sockets: IMAP and POP3 sessions, login failures and lockouts,
the sampled gauges, the access limits, and the sum over ``mailward serve --workers 2``.

Scrapes are parsed with Prometheus' own text parser. Counters of one process are shared
by every test it runs, so the in-process tests compare a scrape after with one before.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from mail_helpers import eventually, mail_roles, mail_settings, port_of
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from worker_helpers import holder, running, stopped

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.db.models import QueuedMessage, QueuedRecipient, QueueStatus
from mailward.directory import Actor
from mailward.obs.loop import watch_lag
from mailward.server.observe import Observer, sample_process

OP = Actor.operator()
PASSWORD = "Mailbox-pass-77"
ANN = "ann@acme.example"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FAMILIES = {
    "mailward_connections", "mailward_messages", "mailward_filter_verdicts",
    "mailward_filter_score", "mailward_delivery_attempts", "mailward_delivery_latency_seconds",
    "mailward_queue_recipients", "mailward_sessions", "mailward_command_seconds",
    "mailward_auth_failures", "mailward_auth_lockouts", "mailward_db_pool_connections",
    "mailward_event_loop_lag_seconds", "mailward_trace_events",
    "mailward_trace_dropped_events",
}


@dataclass
class Scrape:
    families: set[str]
    samples: Samples

    def get(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)


def parse(text: str) -> Scrape:
    families, samples = set(), {}
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(families, samples)


async def scrape(url: str, **headers: str) -> Scrape:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


class Line:
    """A line-based client (IMAP, POP3) on 127.0.0.1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> tuple[Line, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        return client, await client.line()  # the greeting: the session has started

    async def line(self) -> bytes:
        async with asyncio.timeout(30):
            line = await self.reader.readline()
        assert line, "connection closed"
        return line

    async def ask(self, text: str, until: Callable[[bytes], bool] | None = None) -> bytes:
        """Send a command; the first answer line (or the first for which ``until``)."""
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()
        while not (until or (lambda _line: True))(line := await self.line()):
            pass
        return line

    async def imap(self, tag: str, text: str) -> bytes:
        return await self.ask(f"{tag} {text}", lambda line: line.startswith(tag.encode()))

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def node(settings: Settings, directory: Services) -> AsyncIterator[tuple[dict[str, int],
                                                                              Observer]]:
    """IMAP and POP3 of a hosting domain with ann's mailbox, and the metrics listener."""
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [f"{ANN}|{PASSWORD}"], AddressList.NO_FILTER)
    configured = mail_settings(settings, allow_plaintext_auth=True, port_metrics=0,
                               auth_failures_per_window=2)
    async with mail_roles(configured, frozenset({"imap", "pop3"})) as urls:
        with Observer(configured) as observer:
            yield {role: port_of(urls[role].split(", ")[0]) for role in ("imap", "pop3")}, \
                observer


async def test_imap_login_failures_and_a_pop3_session_move_the_metrics(
    node: tuple[dict[str, int], Observer],
) -> None:
    ports, observer = node
    before = await scrape(observer.url)
    assert before.families >= FAMILIES

    imap, greeting = await Line.connect(ports["imap"])
    assert greeting.startswith(b"* OK")
    during = await scrape(observer.url)  # the session is open
    assert during.get("mailward_sessions", protocol="imap") == \
        before.get("mailward_sessions", protocol="imap") + 1
    for tag in ("a", "b"):  # the second failure locks the login (2 per window)
        assert b"NO [AUTHENTICATIONFAILED]" in await imap.imap(
            tag, "LOGIN nobody@acme.example wrong")
    assert b"NO" in await imap.imap("c", "LOGIN nobody@acme.example wrong")  # locked
    assert b"OK" in await imap.imap("d", "CAPABILITY")

    pop3, greeting = await Line.connect(ports["pop3"])
    assert greeting.startswith(b"+OK")
    for command in (f"USER {ANN}", f"PASS {PASSWORD}", "STAT", "NOOP"):
        assert (await pop3.ask(command)).startswith(b"+OK"), command

    after = await scrape(observer.url)
    delta = {key: after.samples[key] - before.samples.get(key, 0.0) for key in after.samples}

    def moved(name: str, **labels: str) -> float:
        return delta.get((name, frozenset(labels.items())), 0.0)

    assert moved("mailward_auth_failures_total", protocol="imap") == 2
    assert moved("mailward_auth_lockouts_total", protocol="imap") == 1
    assert moved("mailward_auth_failures_total", protocol="pop3") == 0
    assert moved("mailward_connections_total", role="imap") == 1
    assert moved("mailward_connections_total", role="pop3") == 1
    assert moved("mailward_command_seconds_count", protocol="imap", command="LOGIN") == 3
    assert moved("mailward_command_seconds_count", protocol="imap", command="CAPABILITY") == 1
    for verb in ("USER", "PASS", "STAT"):
        assert moved("mailward_command_seconds_count", protocol="pop3", command=verb) == 1
    assert moved("mailward_command_seconds_bucket", protocol="pop3", command="STAT",
                 le="+Inf") == 1
    assert after.get("mailward_sessions", protocol="pop3") == \
        before.get("mailward_sessions", protocol="pop3") + 1
    await pop3.ask("QUIT")
    await pop3.close()
    await imap.close()


async def test_sampled_gauges(node: tuple[dict[str, int], Observer], settings: Settings,
                              directory: Services) -> None:
    _, observer = node
    async with directory.db.session() as session:
        message = QueuedMessage(queue_id="Q1", sender="a@outside.example", size=10,
                                origin="mx")
        message.recipients = [
            QueuedRecipient(recipient=f"r{k}@acme.example", domain="acme.example",
                            status=status)
            for k, status in enumerate((QueueStatus.QUEUED, QueueStatus.QUEUED,
                                        QueueStatus.DEFERRED))]
        session.add(message)
        await session.commit()
    lags: list[float] = []
    tasks = [asyncio.create_task(sample_process(directory.db, settings, queue_interval=0.05)),
             asyncio.create_task(watch_lag(0.001, lambda lag: lags.append(lag)))]
    before = await scrape(observer.url)
    try:
        async def sampled() -> Scrape | None:
            found = await scrape(observer.url)
            return found if found.get("mailward_queue_recipients", state="queued") == 2 \
                and lags else None

        found = await eventually(sampled)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert found.get("mailward_queue_recipients", state="deferred") == 1
    assert found.get("mailward_queue_recipients", state="active") == 0
    assert ("mailward_db_pool_connections", frozenset({("state", "idle")})) in found.samples
    assert ("mailward_db_pool_connections", frozenset({("state", "in_use")})) in found.samples
    assert all(lag >= 0 for lag in lags)
    assert before.families == found.families


async def test_access_limits(settings: Settings) -> None:
    refused = settings.model_copy(update={"port_metrics": 0, "bind": "127.0.0.1",
                                          "metrics_allow": ["10.0.0.0/8"]})
    with Observer(refused) as observer:
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.get(observer.url)).status_code == 403
            base = observer.url.removesuffix("/metrics")
            assert (await http.get(f"{base}/healthz")).text == "ok\n"
            assert (await http.get(f"{base}/nothing")).status_code == 404
    tokened = settings.model_copy(update={"port_metrics": 0, "bind": "127.0.0.1",
                                          "metrics_token": SecretStr("s3cret-token")})
    with Observer(tokened) as observer:
        async with httpx.AsyncClient(timeout=30) as http:
            missing = await http.get(observer.url)
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = await http.get(observer.url, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            right = await http.get(observer.url,
                                   headers={"Authorization": "Bearer s3cret-token"})
            assert right.status_code == 200
            assert "mailward_auth_failures_total" in right.text
    with pytest.raises(ValueError, match="metrics_allow"):
        Observer(settings.model_copy(update={"port_metrics": 0,
                                             "metrics_allow": ["not-a-network"]}))


# -- several worker processes ----------------------------------------------------------

METRICS_LINE = re.compile(r"^metrics\s+(http://\S+/metrics)")


@pytest.mark.slow
async def test_workers_metrics_are_summed(mailward_env: dict[str, str],
                                          settings: Settings) -> None:
    env = {**os.environ, **mailward_env, "MAILWARD_BIND": "127.0.0.1",
           "MAILWARD_ALLOW_PLAINTEXT_AUTH": "true", "MAILWARD_PORT_POP3": "0",
           "MAILWARD_PORT_POP3S": "0", "MAILWARD_PORT_METRICS": "0"}
    async with running(env, "pop3") as serving:
        url = (await serving.wait_line(METRICS_LINE)).group(1)
        port = serving.ports["pop3"][0]
        clients = []
        for pid in serving.pids:  # one session in each worker
            others = [other for other in serving.pids if other != pid]
            async with stopped(*others):
                client, greeting = await Line.connect(port)
                assert greeting.startswith(b"+OK")
                sockname = client.writer.get_extra_info("sockname")[1]
                assert holder(port, sockname, set(serving.pids)) == pid
                assert (await client.ask("USER nobody@acme.example")).startswith(b"+OK")
                assert (await client.ask("PASS wrong")).startswith(b"-ERR")
                assert (await client.ask("NOOP")).startswith(b"-ERR")  # not logged in
            clients.append(client)
        summed = await scrape(url)
        assert summed.get("mailward_sessions", protocol="pop3") == 2
        assert summed.get("mailward_auth_failures_total", protocol="pop3") == 2
        assert summed.get("mailward_connections_total", role="pop3") == 2
        assert summed.get("mailward_command_seconds_count", protocol="pop3",
                          command="PASS") == 2
        async with httpx.AsyncClient(timeout=30) as http:  # the supervisor answers
            readyz = await http.get(url.removesuffix("/metrics") + "/readyz")
        assert readyz.status_code == 200, readyz.text
        assert readyz.json()["checks"]["roles"] == "ok"
        for client in clients:
            await client.close()
        assert (settings.data_dir / "metrics").is_dir()
        assert await serving.stop() == 0
