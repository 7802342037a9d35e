"""Writing mail and the address book in a real browser (both backends): an attachment
uploaded with its progress bar, autosave ("Draft saved", the draft in Drafts), send (the
copy in Sent, the mail at bob's), the HTML editor (formatting arrives, scripts do not),
address suggestions from the contacts, and contacts import/export round trip between
two mailboxes (downloads through Playwright)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect
from webmail_fixtures import (  # noqa: F401 - the fixtures
    ANN,
    BOB,
    VCARDS,
    Node,
    attachment_names,
    body_text,
    file_of,
    log_in,
    mail_node_fixture,
    node_overrides_fixture,
    web_server_fixture,
)

Shot = Callable[[Page, str], Path]
SLOW = 15_000  # ms: autosave, upload and delivery steps
BIG = bytes(range(256)) * 8192  # 2 MiB: the upload reports progress on its way


def t(name: str) -> str:
    return f'[data-test="{name}"]'


def html_part(message: object) -> str:
    part = message.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    return "" if part is None else str(part.get_content())


def test_compose_upload_autosave_and_send(mail_node: Node, page: Page, shot: Shot,
                                          tmp_path: Path) -> None:
    node = mail_node
    log_in(page, ANN)
    page.locator(t("compose-button")).click()
    expect(page).to_have_url(re.compile(r"/mail/compose"))
    page.locator(t("compose-to")).fill(BOB)
    page.locator(t("compose-subject")).fill("Site photos")
    expect(page.locator("form[data-ready]")).to_have_count(1)  # compose.js is set up
    page.locator(t("compose-file")).set_input_files(file_of(tmp_path, "site.bin", BIG))
    expect(page.locator(t("attachment-item"))).to_contain_text("site.bin", timeout=SLOW)
    progress = page.locator(t("upload-progress"))
    expect(progress).to_be_visible()
    expect(progress).to_have_js_property("value", 100)
    shot(page, "01-uploaded")
    # the upload saved the draft with the file and the fields typed so far
    node.wait_for(ANN, "Drafts", "Site photos",
                  check=lambda m: attachment_names(m) == ["site.bin"])

    page.locator(t("compose-body")).fill("The photos of the site, as promised.")
    expect(page.locator(t("draft-saved"))).to_contain_text("Draft saved", timeout=SLOW)
    node.wait_for(ANN, "Drafts", "Site photos", check=lambda m: (
        "as promised" in body_text(m) and attachment_names(m) == ["site.bin"]))
    drafts = [m for m in node.folder(ANN, "Drafts").values()
              if m["Subject"] == "Site photos"]
    assert len(drafts) == 1, "each save replaces the previous draft"
    shot(page, "02-draft-saved")

    page.locator(t("compose-send")).click()
    expect(page).not_to_have_url(re.compile(r"/mail/compose"), timeout=SLOW)
    expect(page.locator(".flash", has_text="Sent.")).to_be_visible()
    shot(page, "03-sent")
    _, copy = node.wait_for(ANN, "Sent", "Site photos")
    assert attachment_names(copy) == ["site.bin"]
    _, received = node.wait_for(BOB, "INBOX", "Site photos", seconds=45)
    assert "as promised" in body_text(received)
    [attached] = [p for p in received.iter_attachments()]
    assert attached.get_content() == BIG
    assert not [m for m in node.folder(ANN, "Drafts").values()
                if m["Subject"] == "Site photos"], "sending removed the draft"


def test_html_editor_and_suggestions(mail_node: Node, page: Page, shot: Shot) -> None:
    node = mail_node
    log_in(page, ANN)
    page.goto("/mail/contacts/new")
    page.locator(t("contact-name")).fill("Bob Builder")
    page.locator(t("contact-emails")).fill(BOB)
    page.locator(t("contact-save")).click()
    expect(page.locator(t("contact-row"), has_text="Bob Builder")).to_have_count(1)

    page.goto("/mail/settings")
    page.get_by_label("Write messages with formatting (HTML)").check()
    page.get_by_label(re.compile("Undo send")).fill("0")
    page.locator(t("settings-save")).click()
    expect(page.locator(".flash", has_text="Settings saved.")).to_be_visible()
    shot(page, "01-settings")

    page.goto("/mail/compose")
    to = page.locator(t("compose-to"))
    to.press_sequentially("bui")
    expect(page.locator("#suggest-to option")).to_have_count(1, timeout=SLOW)
    assert page.locator("#suggest-to option").get_attribute("value") == \
        f"Bob Builder <{BOB}>"
    to.fill(f"Bob Builder <{BOB}>")
    page.locator(t("compose-subject")).fill("Formatted")
    editor = page.locator(t("compose-html-editor"))
    expect(editor).to_be_visible()
    expect(page.locator(t("compose-body"))).to_be_hidden()
    editor.click()
    editor.press_sequentially("Hello ")
    page.locator('button[data-cmd="bold"]').click()
    editor.press_sequentially("world")
    expect(editor.locator("b")).to_have_text("world")
    shot(page, "02-html-editor")
    page.locator(t("compose-send")).click()
    expect(page).not_to_have_url(re.compile(r"/mail/compose"))
    _, received = node.wait_for(BOB, "INBOX", "Formatted")
    assert "<b>world</b>" in html_part(received)
    assert "Hello world" in body_text(received)


def test_contacts_import_export_round_trip(mail_node: Node, page: Page, shot: Shot,
                                           tmp_path: Path) -> None:
    log_in(page, ANN)
    page.goto("/mail/contacts")
    page.locator(t("contacts-import-file")).set_input_files(
        file_of(tmp_path, "friends.vcf", VCARDS.encode()))
    page.locator(t("contacts-import-submit")).click()
    expect(page.locator(t("contacts-import-result"))).to_contain_text("2 added")
    expect(page.locator(t("contact-row"))).to_have_count(2)
    shot(page, "01-imported")
    exported: dict[str, Path] = {}
    for kind in ("vcard3", "vcard4", "csv"):
        with page.expect_download() as started:
            page.locator(t(f"contacts-export-{kind}")).click()
        download = started.value
        exported[kind] = tmp_path / f"{kind}-{download.suggested_filename}"
        download.save_as(exported[kind])
    vcard3 = exported["vcard3"].read_text(encoding="utf-8")
    assert "VERSION:3.0" in vcard3 and vcard3.count("BEGIN:VCARD") == 2, vcard3
    assert "VERSION:4.0" in exported["vcard4"].read_text(encoding="utf-8")
    assert "eve@wire.example" in exported["csv"].read_text(encoding="utf-8")
    assert exported["csv"].name.endswith(".csv") and exported["vcard3"].name.endswith(".vcf")

    page.locator("form.logout button").click()
    log_in(page, BOB)
    page.goto("/mail/contacts")
    expect(page.locator(t("contact-row"))).to_have_count(0)
    for kind, added in (("vcard3", "2 added"), ("csv", "2 updated")):
        page.locator(t("contacts-import-file")).set_input_files(exported[kind])
        page.locator(t("contacts-import-submit")).click()
        expect(page.locator(t("contacts-import-result"))).to_contain_text(
            re.compile(added + "|0 updated, 2 skipped"))
    expect(page.locator(t("contact-row"))).to_have_count(2)
    expect(page.locator(t("contact-row"), has_text="Eve Listener")).to_contain_text(
        "eve@wire.example")
    shot(page, "02-round-trip")
