"""Webmail (issue 19) walked in a real browser, on both backends: log in, the inbox, read
an HTML message, reply with an attachment (draft autosaved), send (the copy in Sent, the
delivery trace), spam and not spam (the domain's model learns), the quarantine (release),
search, and contacts import and export; and undo send within a longer window.

Mail between ann and bob stays on the node: both are mailboxes of acme.example, delivered
by the node's delivery worker. A screenshot of every step lands in test-output/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from webmail_fixtures import (  # noqa: F401 - the fixtures
    ANN,
    BOB,
    VCARDS,
    Node,
    attachment_names,
    body_text,
    file_of,
    html_mail,
    log_in,
    mail_node_fixture,
    node_overrides_fixture,
    spam_mail,
    text_mail,
    web_server_fixture,
)

Shot = Callable[[Page, str], Path]
SLOW = 15_000  # ms: autosave and delivery steps
REPORT_HTML = """<html><head><style>p.lead { color: #335 }</style></head><body>
<p class="lead">Quarterly numbers are <b id="inside">inside</b>.</p>
<script>document.title = "pwned"; parent.document.title = "pwned";</script>
<p onclick="alert(1)">Regards, Bob</p></body></html>"""
SHEET = b"month,total\njan,10\nfeb,12\n"


def test_the_node_delivers_and_holds(mail_node: Node) -> None:
    """The fixtures themselves: local delivery, the MX's hold, no learnt points yet."""
    uid = mail_node.deliver(ANN, text_mail("Plain hello", "a body word zebra\n"))
    assert "zebra" in body_text(mail_node.folder(ANN, "INBOX")[uid])
    held = mail_node.hold(spam_mail())
    assert held.subject == "Your documents" and held.score >= 6
    assert mail_node.learnt_points(ANN, spam_mail()) == 0.0


def t(name: str) -> str:
    return f'[data-test="{name}"]'


def row(page: Page, subject: str) -> Locator:
    return page.locator(t("message-row"), has_text=subject)


def open_folder(page: Page, name: str) -> None:
    page.locator(t(f"folder-{name.lower()}")).click()
    expect(page).to_have_url(re.compile(r"/mail/box\?f=" + re.escape(name)))


def open_message(page: Page, subject: str) -> None:
    row(page, subject).locator(t("message-subject")).click()
    expect(page).to_have_url(re.compile(r"/mail/msg\?"))


def test_webmail_walk(mail_node: Node, page: Page, shot: Shot, tmp_path: Path) -> None:
    node = mail_node
    report = html_mail("Quarterly report", REPORT_HTML, sender=BOB,
                       Message_ID="<report-q4@acme.example>")
    node.deliver(ANN, report, sender=BOB)
    watches = node.deliver(ANN, text_mail("Cheap watches", "Replica watches, best prices.\n"))
    node.deliver(ANN, text_mail("Lunch plans", "Shall we get the zucchini soup?\n"))
    held = node.hold(spam_mail())

    # log in
    page.goto("/mail")
    expect(page.locator(t("login-form"))).to_be_visible()
    shot(page, "01-login")
    log_in(page, ANN)

    # the inbox
    expect(page.locator(t("message-row"))).to_have_count(3)
    for subject in ("Quarterly report", "Cheap watches", "Lunch plans"):
        expect(row(page, subject).locator(t("message-subject"))).to_have_text(subject)
    expect(page.locator(t("folder-inbox")).locator(t("unread-count"))).to_have_text("3")
    shot(page, "02-inbox")

    # an HTML message: sanitised, in a sandboxed iframe, no script ran
    open_message(page, "Quarterly report")
    frame = page.locator(t("body-frame"))
    sandbox = frame.get_attribute("sandbox")
    assert sandbox is not None and "allow-scripts" not in sandbox, sandbox
    assert "allow-same-origin" not in sandbox, sandbox
    body = page.frame_locator(t("body-frame"))
    expect(body.locator("b")).to_have_text("inside")
    expect(body.locator("script")).to_have_count(0)
    expect(body.locator("[onclick]")).to_have_count(0)
    assert all("pwned" not in f.title() for f in page.frames)  # no script ran, anywhere
    shot(page, "03-read-html")

    # reply with an attachment; the draft is saved on its own
    page.locator(t("action-reply")).click()
    expect(page.locator(t("compose-to"))).to_have_value(re.compile(re.escape(BOB)))
    expect(page.locator(t("compose-subject"))).to_have_value("Re: Quarterly report")
    # the module script runs after the page is shown: a file chosen before its handlers
    # are in place would never be uploaded
    expect(page.locator("form[data-ready]")).to_have_count(1)
    page.locator(t("compose-file")).set_input_files(file_of(tmp_path, "numbers.csv", SHEET))
    expect(page.locator(t("attachment-item"))).to_contain_text("numbers.csv", timeout=SLOW)
    text = page.locator(t("compose-body"))
    text.focus()
    text.press("Control+Home")
    text.press_sequentially("Thanks, my numbers are attached.\n")
    expect(page.locator(t("draft-saved"))).to_contain_text("Draft saved", timeout=SLOW)
    node.wait_for(ANN, "Drafts", "Re: Quarterly report", check=lambda m: (
        "my numbers are attached" in body_text(m) and "numbers.csv" in attachment_names(m)))
    shot(page, "04-reply-draft-saved")

    # send (no undo window here): bob has it, ann's copy is in Sent, the draft is gone
    page.locator(t("compose-send")).click()
    expect(page).not_to_have_url(re.compile(r"/mail/compose"))
    shot(page, "05-sent")
    _, received = node.wait_for(BOB, "INBOX", "Re: Quarterly report")
    assert received["In-Reply-To"] == "<report-q4@acme.example>"
    assert "my numbers are attached" in body_text(received)
    assert attachment_names(received) == ["numbers.csv"]
    assert received["DKIM-Signature"] is not None
    _, copy = node.wait_for(ANN, "Sent", "Re: Quarterly report")
    assert copy["Message-ID"] == received["Message-ID"]
    assert not [m for m in node.folder(ANN, "Drafts").values()
                if "Quarterly report" in str(m["Subject"])]
    open_folder(page, "Sent")
    open_message(page, "Re: Quarterly report")
    expect(page.locator(t("trace"))).to_contain_text(BOB)
    expect(page.locator(t("trace"))).to_contain_text(re.compile("delivered", re.I))
    shot(page, "06-sent-trace")

    # spam: to Junk, and the domain's model now scores this kind of mail higher
    data = node.fetch(ANN, "INBOX", watches)
    before = node.learnt_points(ANN, data)
    open_folder(page, "INBOX")
    open_message(page, "Cheap watches")
    page.locator(t("action-spam")).click()
    expect(row(page, "Cheap watches")).to_have_count(0)
    node.wait_for(ANN, "Junk", "Cheap watches")
    assert not [m for m in node.folder(ANN, "INBOX").values()
                if m["Subject"] == "Cheap watches"]
    as_spam = node.learnt_points(ANN, data)
    assert as_spam > before, (before, as_spam)
    shot(page, "07-reported-spam")

    # not spam: back to INBOX, and the model moves back
    open_folder(page, "Junk")
    open_message(page, "Cheap watches")
    page.locator(t("action-notspam")).click()
    node.wait_for(ANN, "INBOX", "Cheap watches")
    assert not node.folder(ANN, "Junk")
    as_ham = node.learnt_points(ANN, data)
    assert as_ham < as_spam, (as_spam, as_ham)
    shot(page, "08-reported-not-spam")

    # the quarantine: why it was held, release, it arrives in INBOX
    page.goto("/mail/quarantine")
    expect(page.locator(t("quarantine-row"))).to_have_count(1)
    expect(page.locator(t("quarantine-row"))).to_contain_text("Your documents")
    shot(page, "09-quarantine")
    page.locator(t("quarantine-row")).get_by_role("link").first.click()
    expect(page.locator(t("quarantine-why"))).to_contain_text(f"{held.score:.1f}")
    shot(page, "10-quarantine-why")
    page.locator(t("quarantine-release")).click()
    expect(page.locator(t("quarantine-row"))).to_have_count(0)
    node.wait_for(ANN, "INBOX", "Your documents")
    assert node.held(ANN) == []
    open_folder(page, "INBOX")
    expect(row(page, "Your documents")).to_have_count(1, timeout=SLOW)
    shot(page, "11-released")

    # search by a word of a body
    page.locator(t("search-input")).fill("zucchini")
    page.locator(t("search-input")).press("Enter")
    results = page.locator(t("search-results"))
    expect(results.locator(t("message-row"))).to_have_count(1)
    expect(results.locator(t("message-row"))).to_contain_text("Lunch plans")
    shot(page, "12-search")

    # contacts: import a vCard file, export vCard 4 and CSV
    page.goto("/mail/contacts")
    page.locator(t("contacts-import-file")).set_input_files(
        file_of(tmp_path, "friends.vcf", VCARDS.encode()))
    page.locator(t("contacts-import-submit")).click()
    expect(page.locator(t("contact-row"))).to_have_count(2)
    expect(page.locator(t("contact-row"), has_text="Dora Explorer")).to_contain_text(
        "dora@maps.example")
    shot(page, "13-contacts-imported")
    vcard4 = download(page, "contacts-export-vcard4")
    assert "VERSION:4.0" in vcard4, vcard4
    assert vcard4.count("BEGIN:VCARD") == 2, vcard4
    assert "dora@maps.example" in vcard4 and "eve@wire.example" in vcard4
    csv = download(page, "contacts-export-csv")
    assert "dora@maps.example" in csv and "eve@wire.example" in csv and "Eve" in csv, csv


def download(page: Page, selector: str) -> str:
    """Click ``selector`` and return the text of the download it starts."""
    with page.expect_download() as started:
        page.locator(t(selector)).click()
    path = started.value.path()
    return Path(path).read_text(encoding="utf-8")


def send_new(page: Page, subject: str, text: str) -> None:
    page.locator(t("compose-button")).click()
    page.locator(t("compose-to")).fill(BOB)
    page.locator(t("compose-subject")).fill(subject)
    page.locator(t("compose-body")).fill(text)
    page.locator(t("compose-send")).click()
    expect(page).not_to_have_url(re.compile(r"/mail/compose"))


@pytest.mark.parametrize("node_overrides", [{"webmail_undo_seconds": 30}])
def test_undo_send_brings_the_draft_back(mail_node: Node, node_overrides: dict[str, Any],
                                         page: Page, shot: Shot) -> None:
    """Undo from the outbox, then from the "Sent." notice right after sending."""
    node = mail_node
    log_in(page, ANN)
    send_new(page, "Undo me", "Please ignore this one.")
    page.goto("/mail/outbox")
    outgoing = page.locator(t("outbox-row"), has_text="Undo me")
    expect(outgoing).to_have_count(1)
    shot(page, "01-outbox")
    outgoing.locator(t("undo-send")).click()
    node.wait_for(ANN, "Drafts", "Undo me",
                  check=lambda m: "Please ignore this one." in body_text(m))
    page.goto("/mail/outbox")
    expect(page.locator(t("outbox-row"))).to_have_count(0)
    shot(page, "02-undone")
    assert node.queued() == 0  # nothing left to deliver
    assert not [m for m in node.folder(BOB, "INBOX").values() if m["Subject"] == "Undo me"]

    send_new(page, "Undo me too", "Ignore this one as well.")
    undo = page.locator(t("undo-send"))
    expect(undo).to_be_visible()
    shot(page, "03-sent-undo-offered")
    undo.click()
    node.wait_for(ANN, "Drafts", "Undo me too",
                  check=lambda m: "Ignore this one as well." in body_text(m))
    assert node.queued() == 0
    shot(page, "04-undone-again")
