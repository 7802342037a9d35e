"""The MIME corpus of the IMAP tests: small, tricky messages in ``imap_corpus/*.eml``.

``corpus()`` returns ``(name, raw bytes, internal date)`` in a fixed order; that order is the
UID order (UIDs 1..N) once ``dovecot_server.write_maildir`` has stored it. Every file is
stored with CRLF line ends (the loader checks it). Internal dates are UTC: a Maildir keeps
the internal date as the file's mtime and no zone, so an IMAP server shows it in its own
zone (the Dovecot harness runs with TZ=UTC).

Words planted for SEARCH BODY/TEXT (each ``search word -> corpus names``; see ``WORDS``):
ASCII words in plain, multipart, base64 and quoted-printable parts, ``marzipan`` split by a
quoted-printable soft line break, and ``Grüße`` in UTF-8 (8bit, base64), ISO-8859-1 (QP and
8bit) and undeclared raw UTF-8.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

CORPUS_DIR = Path(__file__).with_name("imap_corpus")

# Corpus order = UID order. What each message is for:
NAMES = [
    "01-plain-all-headers",  # every ENVELOPE header, Received/References noise
    "02-missing-headers",  # only To: no Date/From/Subject/Message-ID/MIME headers
    "03-encoded-words",  # RFC 2047 B/Q, UTF-8/ISO-8859-1, adjacent words, folded Subject
    "04-groups-and-lists",  # group syntax, empty groups, several From, escaped quotes, comment
    "05-no-sender-no-reply-to",  # ENVELOPE sender/reply-to default to From
    "06-multipart-alternative",  # text + html, preamble and epilogue
    "07-mixed-base64-attachment",  # base64 text + binary, RFC 2231 name*0*/filename*
    "08-nested-multipart",  # mixed > alternative > related > html + inline png; pdf
    "09-message-rfc822",  # forwarded message/rfc822 holding a multipart/alternative
    "10-8bit-undeclared",  # raw UTF-8 in headers and body, no MIME headers
    "11-8bit-declared",  # charset=utf-8, Content-Transfer-Encoding: 8bit
    "12-missing-closing-boundary",  # multipart without the closing --boundary--
    "13-boundary-never-occurs",  # multipart whose boundary never appears
    "14-quoted-printable",  # ISO-8859-1 QP, soft line breaks, =3D, =20
    "15-folded-headers-spacing",  # lowercase/uppercase names, no space after colon, folds
    "16-content-type-params",  # case differences, quoted params, odd boundary characters
    "17-empty-body",  # headers, blank line, nothing else
    "18-html-latin1",  # text/html only, 8bit ISO-8859-1
    "19-extension-fields",  # trailing blanks, disposition/language/location/MD5, digest
]

# Internal dates: one per message, increasing, all UTC (see the module docstring).
_FIRST = datetime(2024, 2, 1, 8, 0, 0, tzinfo=UTC)
DATES = {name: _FIRST + timedelta(hours=i, minutes=7 * i, seconds=i)
         for i, name in enumerate(NAMES)}

# SEARCH words -> the corpus names whose body contains them (after decoding).
WORDS: dict[str, list[str]] = {
    "quokka": ["01-plain-all-headers"],
    "walrus": ["02-missing-headers"],
    "pelican": ["06-multipart-alternative"],
    "zebracorn": ["07-mixed-base64-attachment"],  # only inside a base64 part
    "heron": ["08-nested-multipart"],
    "kingfisher": ["09-message-rfc822"],  # inside the attached message
    "marzipan": ["14-quoted-printable"],  # split by a QP soft line break
    "capybara": ["15-folded-headers-spacing"],
    "axolotl": ["16-content-type-params"],
    "albatroz": ["18-html-latin1"],
    # UTF-8 8bit/base64/undeclared, ISO-8859-1 quoted-printable and 8bit.
    "Grüße": ["07-mixed-base64-attachment", "10-8bit-undeclared", "11-8bit-declared",
              "14-quoted-printable", "18-html-latin1"],
}
# Not in WORDS on purpose: "meerkat" stands only in the preamble of 13-boundary-never-occurs
# (Dovecot does not find it with SEARCH BODY; a multipart's preamble is no body part),
# "Grüße" also stands in 03-encoded-words' Subject (SEARCH TEXT finds it, BODY does not).


def corpus() -> list[tuple[str, bytes, datetime]]:
    """``(name, raw CRLF bytes, tz-aware internal date)`` for every message, in UID order."""
    files = sorted(p.stem for p in CORPUS_DIR.glob("*.eml"))
    assert files == NAMES, f"imap_corpus/ and NAMES disagree: {files}"
    messages = []
    for name in NAMES:
        raw = (CORPUS_DIR / f"{name}.eml").read_bytes()
        assert b"\n" not in raw.replace(b"\r\n", b""), f"{name}: bare LF"
        assert b"\r" not in raw.replace(b"\r\n", b""), f"{name}: bare CR"
        messages.append((name, raw, DATES[name]))
    return messages


def uids_of(names: list[str]) -> list[int]:
    """UIDs (1-based corpus positions) of the given corpus names."""
    return sorted(NAMES.index(name) + 1 for name in names)
