"""The heuristic rules: dangerous attachments, Date/Message-ID sanity, forged From names."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from mailward.filter.pipeline import FilterInput
from mailward.filter.rules import GTUBE, SCORES, RulesCheck, findings_of

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def message(*, date: datetime | None = NOW, message_id: str | None = "<a1@mail.example>",
            sender: str = "Anna <anna@example.com>",
            attachments: tuple[tuple[str, bytes], ...] = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "bob@acme.example"
    msg["Subject"] = "Minutes of Tuesday"
    if date is not None:
        msg["Date"] = format_datetime(date)
    if message_id is not None:
        msg["Message-ID"] = message_id
    msg.set_content("Hi Bob,\nthe minutes are attached.\nAnna\n")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream",
                           filename=name)
    return msg.as_bytes()


def zipped(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
    return buffer.getvalue()


def rules(data: bytes) -> dict[str, float]:
    return {f.check.removeprefix("rule:"): f.score for f in findings_of(data, NOW)}


def test_an_ordinary_message_fires_nothing() -> None:
    assert rules(message(attachments=(("minutes.pdf", b"%PDF-1.4"),
                                      ("photos.zip", zipped("a.jpg", "b.jpg"))))) == {}


def test_dangerous_attachments() -> None:
    assert rules(message(attachments=(("setup.exe", b"MZ"),))) == {
        "executable-attachment": SCORES["executable-attachment"]}
    assert set(rules(message(attachments=(("invoice.pdf.exe", b"MZ"),)))) == {
        "executable-attachment", "double-extension"}
    assert set(rules(message(attachments=(("invoice.zip", zipped("readme.txt",
                                                                   "invoice.scr")),)))) == {
        "executable-in-archive"}
    assert set(rules(message(attachments=(("budget.xlsm", b"PK"),)))) == {"macro-document"}
    macro_docx = zipped("[Content_Types].xml", "word/document.xml", "word/vbaProject.bin")
    plain_docx = zipped("[Content_Types].xml", "word/document.xml")
    assert set(rules(message(attachments=(("report.docx", macro_docx),)))) == {
        "macro-document"}
    assert rules(message(attachments=(("report.docx", plain_docx),))) == {}
    assert rules(message(attachments=(("broken.zip", b"PK\x03\x04 not a zip"),))) == {}


def test_date_and_message_id() -> None:
    assert set(rules(message(date=None, message_id=None))) == {"missing-date",
                                                              "missing-message-id"}
    assert set(rules(message(message_id="no-angle-brackets"))) == {"malformed-message-id"}
    assert set(rules(message(date=datetime(2027, 3, 1, tzinfo=UTC)))) == {"date-in-future"}
    assert set(rules(message(date=datetime(2026, 9, 1, tzinfo=UTC)))) == {"date-long-ago"}
    assert rules(message(date=datetime(2026, 12, 5, 20, 0, tzinfo=UTC))) == {}


def test_a_from_name_showing_another_domain() -> None:
    forged = message(sender='"support@yourbank.example" <x@cheap-host.example>')
    assert set(rules(forged)) == {"from-name-foreign-address"}
    assert rules(message(sender='"anna@example.com" <anna@example.com>')) == {}


def test_gtube_in_the_body_as_written_or_encoded() -> None:
    plain = message().replace(b"the minutes are attached.", b"test " + GTUBE)
    assert rules(plain) == {"gtube": 1000.0}
    encoded = EmailMessage()
    encoded["From"], encoded["Message-ID"] = "a@example.com", "<g@example.com>"
    encoded["Date"] = format_datetime(NOW)
    encoded.set_content("spam test\n" + GTUBE.decode() + "\n", cte="base64")
    assert GTUBE not in encoded.as_bytes() and rules(encoded.as_bytes()) == {"gtube": 1000.0}
    in_a_header = message().replace(b"Subject: Minutes of Tuesday",
                                    b"Subject: " + GTUBE)
    assert rules(in_a_header) == {}  # only the body counts


def test_unparseable_and_8bit_input_never_raises() -> None:
    assert [f.check for f in findings_of(b"", NOW)] == ["rule:missing-date",
                                                        "rule:missing-message-id"]
    garbage = b"From: \xff\xfe<<>>\r\nDate: not a date\r\nContent-Type: multipart/mixed\r\n\r\n\x00"
    found = {f.check for f in findings_of(garbage, NOW)}
    assert "rule:missing-message-id" in found and "rule:missing-date" not in found


async def test_the_pipeline_check() -> None:
    data = message(attachments=(("game.scr", b"MZ"),))
    found = await RulesCheck()(FilterInput("a@example.com", ("b@acme.example",), data,
                                           "192.0.2.1", "mail.example.com"))
    assert [(f.check, f.reason) for f in found] == [
        ("rule:executable-attachment", "executable attachment 'game.scr'")]
