"""The message trace in the panel and the webmail, and the dashboard's charts, over a real
socket (both backends): an operator finds every trace and reads a story in plain words; an
account admin sees their domains' traces only (another account's story is 404); a mailbox
user's ``/mail/trace`` shows their own mail; the dashboard draws the recorded numbers."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_server import OPERATOR_PASSWORD, running_server
from panel_client import Panel
from sqlalchemy import insert

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.db.models import TraceGauge
from mailward.directory import Actor
from mailward.filter import Finding
from mailward.quarantine.service import Hold, Quarantine
from mailward.trace.events import EventGroup, Kind, Outcome, TraceEvent
from mailward.trace.ids import new_id

OP = Actor.operator()
ADMIN_PASSWORD = "Boss-pass-4471"
MAILBOX_PASSWORD = "Blue-sky-7788"
ANN, DAN, CY = "ann@acme.example", "dan@acme.example", "cy@bolt.example"
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Seeded:
    url: str
    delivered: str  # Acme: accepted, filtered, delivered to ann, forwarded
    copy: str  # the forwarded copy's queue id (its own trace)
    refused: str  # Bolt: refused at RCPT
    held: str  # Acme: quarantined for dan
    quarantine_id: int


def ours(recipient: str) -> dict[str, str]:
    return {"recipient": recipient, "domain": recipient.rpartition("@")[2],
            "mailbox": recipient}


async def seed(services: Services, settings: Settings) -> tuple[str, str, str, str, int]:
    """Three traces (and a copy's), recorded as the intake and the queue record them."""
    now = datetime.now(UTC)
    at = now - timedelta(minutes=20)
    delivered, copy, refused, held = new_id(), new_id(), new_id(), new_id()
    hold_id = await Quarantine(services.db, settings).hold(
        sender="win@lotto.example", peer="198.51.100.9", score=12.0,
        data=b"From: win@lotto.example\r\nSubject: Lottery win\r\n\r\nbody\r\n",
        findings=(Finding("content", 12.0, "content model: 1.00 spam"),),
        holds=[Hold(DAN, "score 12 >= quarantine threshold 10")], trace_id=held)
    [entry] = (await services.quarantine.list(OP)).items
    del hold_id
    connect = TraceEvent(Kind.CONNECT, peer="192.0.2.7", at=at, detail={
        "helo": "mail.shop.example", "tls": True, "tls_version": "TLSv1.3",
        "cipher": "TLS_AES_256_GCM_SHA384"})
    groups = [
        EventGroup(delivered, [
            connect,
            TraceEvent(Kind.MAIL, sender="deals@shop.example", at=at,
                       detail={"reply": "250 2.1.0 Ok", "size": 2048}),
            TraceEvent(Kind.RCPT, Outcome.ACCEPTED, sender="deals@shop.example", at=at,
                       detail={"reply": "250 2.1.5 Ok"}, **ours(ANN)),
            TraceEvent(Kind.DATA, Outcome.ACCEPTED, subject="Quarterly report",
                       message_id="<q1@shop.example>", at=at, queue_id=delivered,
                       detail={"size": 2048, "reply": f"250 2.0.0 Ok: queued as {delivered}",
                               "queue_ids": [delivered]}),
            TraceEvent(Kind.VERDICT, Outcome.ACCEPTED, at=at, queue_id=delivered, detail={
                "filtered": True, "spam": False, "score": 1.5, "action": "deliver",
                "reason": "score 1.5 below 5",
                "findings": [{"check": "spf", "score": 1.5, "reason": "SPF softfail"}]},
                **ours(ANN)),
            TraceEvent(Kind.ATTEMPT, Outcome.DEFERRED, at=at + timedelta(seconds=1),
                       queue_id=delivered, detail={
                           "server": "local", "reply": "451 4.3.0 mailbox busy",
                           "duration_ms": 35, "attempt": 1}, **ours(ANN)),
            TraceEvent(Kind.MAILBOX, Outcome.DELIVERED, at=at + timedelta(seconds=2),
                       queue_id=delivered, detail={"folder": "INBOX", "latency_ms": 1200},
                       **ours(ANN)),
            TraceEvent(Kind.FORWARD, Outcome.FORWARDED, at=at + timedelta(seconds=2),
                       queue_id=delivered, detail={"copy_queue_id": copy,
                                                   "to": ["ann@elsewhere.example"],
                                                   "copy": "forward"}, **ours(ANN)),
        ], session_id=new_id()),
        EventGroup(copy, [
            TraceEvent(Kind.ATTEMPT, Outcome.DELIVERED, at=at + timedelta(seconds=3),
                       queue_id=copy, sender=ANN, domain="acme.example", mailbox=ANN,
                       recipient="ann@elsewhere.example", detail={
                           "server": "mx.elsewhere.example", "ip": "203.0.113.5",
                           "reply": "250 ok", "duration_ms": 420, "attempt": 1,
                           "latency_ms": 900}),
        ]),
        EventGroup(refused, [
            TraceEvent(Kind.CONNECT, peer="203.0.113.66", at=at, detail={"helo": "bad",
                                                                         "tls": False}),
            TraceEvent(Kind.MAIL, sender="spammer@bad.example", at=at,
                       detail={"reply": "250 2.1.0 Ok"}),
            TraceEvent(Kind.RCPT, Outcome.REFUSED, sender="spammer@bad.example", at=at,
                       detail={"reply": "554 5.7.1 Client host blocked using zen"},
                       **ours(CY)),
        ]),
        EventGroup(held, [
            TraceEvent(Kind.CONNECT, peer="198.51.100.9", at=at, detail={"tls": False}),
            TraceEvent(Kind.MAIL, sender="win@lotto.example", at=at),
            TraceEvent(Kind.RCPT, Outcome.ACCEPTED, sender="win@lotto.example", at=at,
                       detail={"reply": "250 2.1.5 Ok"}, **ours(DAN)),
            TraceEvent(Kind.DATA, Outcome.ACCEPTED, subject="Lottery win", at=at,
                       detail={"reply": "250 2.0.0 Ok"}),
            TraceEvent(Kind.VERDICT, Outcome.QUARANTINED, at=at, detail={
                "filtered": True, "spam": True, "score": 12.0, "action": "quarantine",
                "reason": "score 12 >= quarantine threshold 10",
                "quarantine_id": entry.id,
                "findings": [{"check": "content", "score": 12.0,
                              "reason": "content model: 1.00 spam"}]}, **ours(DAN)),
        ]),
    ]
    for group in groups:
        await services.trace.write(group)
    await services.trace.flush()
    async with services.db.session() as session, session.begin():
        await session.execute(insert(TraceGauge), [
            {"at": now - timedelta(minutes=5), "account_id": None, "name": "queue_deferred",
             "value": 7}])
    return delivered, copy, refused, held, entry.id


@pytest.fixture
async def seeded(settings: Settings, directory: Services) -> AsyncIterator[Seeded]:
    for account, domain in (("Acme", "acme.example"), ("Bolt", "bolt.example")):
        await directory.accounts.create(OP, account)
        await directory.domains.create(OP, domain, account=account, hosting=True)
    await directory.bulk.add_lines(OP, [f"{ANN}|{MAILBOX_PASSWORD}",
                                        f"{DAN}|{MAILBOX_PASSWORD}",
                                        f"{CY}|{MAILBOX_PASSWORD}"], AddressList.FILTER)
    await directory.accounts.create_user(OP, "admin@acme.example", ADMIN_PASSWORD,
                                         account="Acme")
    await directory.accounts.create_user(OP, "root", OPERATOR_PASSWORD)
    delivered, copy, refused, held, quarantine_id = await seed(directory, settings)
    async with running_server(settings) as url:
        yield Seeded(url, delivered, copy, refused, held, quarantine_id)


@pytest.fixture
async def client(seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=seeded.url, timeout=30) as http:
        yield http


async def logged_in(http: httpx.AsyncClient, login: str, password: str) -> Panel:
    panel = Panel(http)
    await panel.login(login, password)
    return panel


def rows(text: str, label: str) -> list[list[str]]:
    """The body rows (cell texts) of the table ``aria-label=label``: tags dropped, then
    entities read (``&lt;ann@…&gt;`` stays text)."""
    table = text.split(f'aria-label="{label}"', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [[html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c))).strip()
             for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def subjects(page: str) -> list[str]:
    return [r[3] for r in rows(page, "traces") if len(r) > 1]


def story_rows(page: str) -> list[list[str]]:
    return rows(page, "events")


def svgs(page: str) -> dict[str, ET.Element]:
    """The page's charts by their title, parsed."""
    found = {}
    for markup in re.findall(r"<svg .*?</svg>", page, re.S):
        root = ET.fromstring(markup)
        found[root.findtext(f"{SVG}title") or ""] = root
    return found


def titles(root: ET.Element, tag: str) -> list[str]:
    return [e.findtext(f"{SVG}title") or "" for e in root.iter(f"{SVG}{tag}")]


async def test_operator_searches_and_reads_a_story(seeded: Seeded,
                                                   client: httpx.AsyncClient) -> None:
    root = await logged_in(client, "root", OPERATOR_PASSWORD)
    everything = await root.get("/panel/trace")
    assert sorted(subjects(everything)) == ["(no subject)", "(no subject)", "Lottery win",
                                            "Quarterly report"]
    spam = await root.get("/panel/trace", sender="spammer@bad.example")
    assert [(r[1], r[2], r[4], r[5]) for r in rows(spam, "traces")] == [
        ("spammer@bad.example", CY, "203.0.113.66", "refused")]
    assert subjects(await root.get("/panel/trace", outcome="quarantined")) == ["Lottery win"]
    assert subjects(await root.get("/panel/trace", message_id="q1@shop.example")) == [
        "Quarterly report"]
    by_peer = await root.get("/panel/trace", peer="192.0.2.7", subject="quarterly")
    assert subjects(by_peer) == ["Quarterly report"]
    assert rows(await root.get("/panel/trace", recipient="nobody@acme.example"),
                "traces") == [["No traces match."]]
    bad = await root.get("/panel/trace", status=400, since="yesterday")
    assert "from must be a date and time" in html.unescape(bad)
    assert 'value="yesterday"' in bad  # the form keeps what was typed

    link = f'/panel/trace/{seeded.delivered}?back=sender%3Ddeals%2540shop.example'
    found = await root.get("/panel/trace", sender="deals@shop.example")
    assert html.escape(link) in found or link in html.unescape(found)
    story = await root.get(f"/panel/trace/{seeded.delivered}", back="sender=deals%40shop.example")
    events = story_rows(story)
    assert [r[2] for r in events] == ["connect", "mail", "rcpt", "data", "verdict", "attempt",
                                      "mailbox", "forward"]
    words = [r[4] for r in events]
    assert words[0].startswith("Connection from 192.0.2.7")
    assert "HELO: mail.shop.example" in words[0]
    assert "TLS: TLSv1.3 TLS_AES_256_GCM_SHA384" in words[0]
    assert words[2].startswith(f"RCPT TO <{ANN}> accepted") and "Answer: 250 2.1.5 Ok" in words[2]
    assert f"Queued as: {seeded.delivered}" in words[3]
    assert "Score: 1.5" in words[4] and "Finding spf: 1.5 points: SPF softfail" in words[4]
    assert words[5].startswith(f"Delivery attempt 1 for {ANN} to local: deferred")
    assert "Reply: 451 4.3.0 mailbox busy" in words[5] and "Took: 35 ms" in words[5]
    assert words[6].startswith(f"Delivered to the mailbox {ANN}")
    assert "Folder: INBOX" in words[6] and "Time in the queue: 1.2 s" in words[6]
    assert f"Copy's queue ID: {seeded.copy}" in words[7]
    assert f'href="/panel/trace/{seeded.copy}"' in story  # the copy links to its trace
    assert [r[3] for r in events][5:7] == ["deferred", "delivered"]
    assert 'href="/panel/trace?sender=deals%40shop.example"' in story  # back to the search

    copy = story_rows(await root.get(f"/panel/trace/{seeded.copy}"))
    assert [(r[2], r[3]) for r in copy] == [("attempt", "delivered")]
    assert "Server address: 203.0.113.5" in copy[0][4]
    await root.get("/panel/trace/0123456789abcdef", status=404)


async def test_account_admin_sees_only_their_domains(seeded: Seeded,
                                                     client: httpx.AsyncClient) -> None:
    admin = await logged_in(client, "admin@acme.example", ADMIN_PASSWORD)
    mine = await admin.get("/panel/trace")
    # not Bolt's refusal; the forwarded copy is a trace of its own
    assert sorted(subjects(mine)) == ["(no subject)", "Lottery win", "Quarterly report"]
    assert 'href="/panel/accounts/Acme/quarantine"' in mine  # their account's menu
    assert rows(await admin.get("/panel/trace", sender="spammer@bad.example"),
                "traces") == [["No traces match."]]
    await admin.get(f"/panel/trace/{seeded.refused}", status=404)

    held = await admin.get(f"/panel/trace/{seeded.held}")
    verdict = next(r for r in story_rows(held) if r[2] == "verdict")
    assert verdict[3] == "quarantined"
    assert f"Quarantine entry: #{seeded.quarantine_id}" in verdict[4]
    assert f'href="/panel/accounts/Acme/quarantine/{seeded.quarantine_id}"' in held
    await admin.get(f"/panel/accounts/Acme/quarantine/{seeded.quarantine_id}")  # it opens


async def test_mailbox_user_traces_their_own_mail(seeded: Seeded,
                                                  client: httpx.AsyncClient) -> None:
    page = await client.get("/mail/login")
    found = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    token = html.unescape(found[1])
    landed = await client.post("/mail/login", data={"_csrf_token": token, "address": ANN,
                                                    "password": MAILBOX_PASSWORD})
    assert landed.status_code == 303, landed.text[:300]
    mine = await client.get("/mail/trace")
    assert mine.status_code == 200
    # the message and its forwarded copy; not dan's, not Bolt's
    assert sorted(subjects(mine.text)) == ["(no subject)", "Quarterly report"]
    assert 'name="peer"' not in mine.text
    story = await client.get(f"/mail/trace/{seeded.delivered}")
    assert story.status_code == 200
    assert [r[2] for r in story_rows(story.text)][-2:] == ["mailbox", "forward"]
    assert f'href="/mail/trace/{seeded.copy}"' in story.text
    for other in (seeded.held, seeded.refused):
        assert (await client.get(f"/mail/trace/{other}")).status_code == 404
    async with httpx.AsyncClient(base_url=seeded.url) as stranger:
        gone = await stranger.get("/mail/trace")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/mail/login")


async def test_dashboards_draw_the_recorded_numbers(seeded: Seeded,
                                                    client: httpx.AsyncClient) -> None:
    admin = await logged_in(client, "admin@acme.example", ADMIN_PASSWORD)
    day = await admin.get("/panel/accounts/Acme/")
    assert "<h1>Acme</h1>" in day and 'aria-label="domains"' in day  # what it showed before
    charts = svgs(day)
    assert set(charts) == {"Mail received", "Delivery", "Spam ratio", "Queue depth",
                           "Delivery latency", "Top refused senders",
                           "Top refused recipients"}
    received = titles(charts["Mail received"], "rect")
    assert [t.split(",")[0] for t in received if t] == ["accepted", "quarantined"]
    assert all(t.endswith(": 1") for t in received if t)
    delivery = charts["Delivery"].findtext(f"{SVG}desc") or ""
    assert "delivered: 2 in all" in delivery and "deferred: 1 in all" in delivery
    spam = charts["Spam ratio"].findtext(f"{SVG}desc") or ""
    assert "50 % of the filtered mail was spam" in spam
    assert "Nothing refused." in (charts["Top refused senders"].findtext(f"{SVG}desc") or "")
    latency = charts["Delivery latency"].findtext(f"{SVG}desc") or ""
    assert "p50: from" in latency
    assert 'aria-current="page">24 hours' in day

    week = await admin.get("/panel/accounts/Acme/", period="7d")
    assert 'aria-current="page">7 days' in week
    assert "6 hours" in week
    assert (await admin.http.get("/panel/dashboard")).headers["location"] == \
        "/panel/accounts/Acme/?period=24h"
    await admin.get("/panel/accounts/Bolt/", status=404)

    async with httpx.AsyncClient(base_url=seeded.url, timeout=30) as http:
        root = await logged_in(http, "root", OPERATOR_PASSWORD)
        overall = svgs(await root.get("/panel/dashboard", period="30d"))
        senders = overall["Top refused senders"]
        assert [t for t in titles(senders, "g") if t] == ["spammer@bad.example: 1"]
        assert "refused: 1 in all" in (overall["Mail received"].findtext(f"{SVG}desc") or "")
        queue = overall["Queue depth"].findtext(f"{SVG}desc") or ""
        assert "deferred: from 0 to 7" in queue
        acme_only = svgs(await root.get("/panel/dashboard", account="Acme"))
        assert "Nothing refused." in (
            acme_only["Top refused senders"].findtext(f"{SVG}desc") or "")
        await root.get("/panel/dashboard", status=404, account="Nope")
