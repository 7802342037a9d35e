"""Differential test: our IMAP server answers like Dovecot for the same MIME corpus.

Dovecot (Debian's ``dovecot-imapd``) serves the corpus from a Maildir; our ``imap`` role
serves it from the store (Maildir or PostgreSQL, one run each) after delivery with the same
internal dates. Both get the same raw commands over a socket and their answers are compared
byte for byte (``dovecot_server.imap_answers``: only the tag and the human text of the
tagged line are dropped). The report lists every command whose answers differ.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from dovecot_server import dovecot_imap, imap_answers, write_maildir
from hosting_helpers import PASSWORD, Hosting, client_tls
from imap_corpus import NAMES, WORDS, corpus

from mailward.store import open_store

USER = "bob@acme.example"  # a mailbox of the ``hosting`` fixture; Dovecot's user too

# Sections asked of every message, existing or not (Dovecot answers missing ones with "").
SECTIONS = [
    "", "HEADER", "TEXT", "1", "1.MIME", "2", "2.MIME", "3", "1.1", "1.2", "1.2.1",
    "1.2.2", "1.1.MIME", "2.1", "2.2", "2.HEADER", "2.TEXT", "2.1.MIME", "1.HEADER",
    "HEADER.FIELDS (From To Subject X-None)", "HEADER.FIELDS.NOT (Received Subject)",
    "2.HEADER.FIELDS (Subject From)", "1.2.1.TEXT", "2.1.1", "3.1", "3.1.1", "3.1.HEADER",
    "3.2", "4", "4.MIME", "5",
]
PARTIALS = ["<0.40>", "<100.25>", "<5000.10>"]  # inside, middle, past the end
SEARCHES = [
    "ALL", "1:5", "UID 3:7,12", "NOT UID 1:10", "FROM example.com", "FROM alice",
    "TO bob", "CC dave", "BCC nobody", "SUBJECT report", "SUBJECT birds", "SUBJECT space",
    "HEADER Message-ID example", 'HEADER X-Missing ""', "HEADER content-type multipart",
    "SINCE 1-Feb-2024", "SINCE 2-Feb-2024", "BEFORE 2-Feb-2024", "ON 1-Feb-2024",
    "SENTSINCE 20-Jan-2024", "SENTBEFORE 20-Jan-2024", "SENTON 28-Jan-2024",
    "LARGER 600", "SMALLER 300", "OR SUBJECT birds FROM alice", "NOT FROM example.com",
    "SEEN", "UNSEEN", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "BODY lemur", "TEXT inner",
    "BODY digest", "BODY preamble", "TEXT quokka", "TEXT Fwd", "BODY Subject", "BODY meerkat",
    "CHARSET UTF-8 SUBJECT Grüße", "CHARSET UTF-8 FROM Müller", "CHARSET UTF-8 TO Jérôme",
    "CHARSET UTF-8 SUBJECT Café", "CHARSET UTF-8 FROM Zoë", "CHARSET UTF-8 SUBJECT Olá",
    "(FROM broken SUBJECT boundary) OR SMALLER 400 LARGER 1000",
]
# Not compared: [UN]KEYWORD of a keyword the folder never had. Dovecot then adds it to the
# folder's keywords and announces FLAGS and PERMANENTFLAGS; we simply find nothing.


def _commands() -> list[str]:
    commands = [
        "UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE)",
        "FETCH 1:* (UID RFC822.SIZE)",
    ]
    for uid in range(1, len(NAMES) + 1):
        commands += [f"UID FETCH {uid} (ENVELOPE)", f"UID FETCH {uid} (BODYSTRUCTURE)",
                     f"UID FETCH {uid} (BODY)", f"UID FETCH {uid} (RFC822.HEADER)"]
        commands += [f"UID FETCH {uid} (BODY.PEEK[{section}])" for section in SECTIONS]
        commands += [f"UID FETCH {uid} (BODY.PEEK[{section}]{partial})"
                     for section in ("", "TEXT", "1") for partial in PARTIALS]
    for word in WORDS:
        commands += [f"UID SEARCH CHARSET UTF-8 BODY {word}",
                     f"UID SEARCH CHARSET UTF-8 TEXT {word}"]
    commands += [f"UID SEARCH {criteria}" for criteria in SEARCHES]
    commands += [f"SEARCH {criteria}" for criteria in SEARCHES[:4]]
    return commands


COMMANDS = _commands()


@pytest.fixture(scope="module")
def dovecot_says(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bytes]]:
    """Dovecot's answer to every command in ``COMMANDS``."""
    base = tmp_path_factory.mktemp("dovecot")
    write_maildir(base / "Maildir", corpus())
    with dovecot_imap(base / "work", user=USER, password=PASSWORD,
                      maildir=base / "Maildir") as (host, port):
        answers = imap_answers(host, port, USER, PASSWORD, COMMANDS)
    yield dict(zip(COMMANDS, answers, strict=True))


def _report(mismatches: list[tuple[str, bytes, bytes]]) -> str:
    lines = [f"{len(mismatches)} of {len(COMMANDS)} commands answered differently:"]
    for command, ours, theirs in mismatches[:40]:
        lines += [f"--- {command}", f"  dovecot: {theirs!r}", f"  ours:    {ours!r}"]
    return "\n".join(lines)


async def test_answers_match_dovecot(hosting: Hosting, dovecot_says: dict[str, bytes]) -> None:
    store = open_store(hosting.settings, hosting.directory.db)
    for _name, raw, date in corpus():
        await store.deliver(USER, raw, internal_date=date)
    ours = await asyncio.to_thread(imap_answers, "127.0.0.1", hosting.imaps, USER, PASSWORD,
                                   COMMANDS, tls=client_tls())
    mismatches = [(command, answer, dovecot_says[command])
                  for command, answer in zip(COMMANDS, ours, strict=True)
                  if answer != dovecot_says[command]]
    assert not mismatches, _report(mismatches)
    # The comparison is worth something only if both servers found real content.
    assert dovecot_says["UID SEARCH ALL"].startswith(b"* SEARCH 1 2 3 ")
    assert sum(b"BODYSTRUCTURE ((" in dovecot_says[f"UID FETCH {uid} (BODYSTRUCTURE)"]
               for uid in range(1, len(NAMES) + 1)) >= 6
