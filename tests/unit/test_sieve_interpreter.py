"""The Sieve interpreter over sievelib's parse tree: tests, actions, extensions, limits,
and the vacation rules (RFC 5228, 5229, 5230, 5231, 5232, 5233, 3834)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailward.sieve.grammar import ScriptError, parse
from mailward.sieve.interpreter import Delivery, Envelope, Limits, VacationAction, run
from mailward.sieve.message import SieveMessage
from mailward.sieve.vacation import compose, why_not

ENV = Envelope("zoe@outside.example", "ann+news@hosted.example")
MSG = (b"From: Zoe <zoe@outside.example>\r\nTo: Ann <ann@hosted.example>\r\n"
       b"Cc: bob@hosted.example\r\nSubject: =?utf-8?q?Invoice_=C3=9C_42?=\r\n"
       b"Message-ID: <m1@outside.example>\r\nX-Spam-Score: 7\r\n"
       b"Date: Tue, 02 Dec 2025 10:00:00 +0000\r\n"
       b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
       b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: base64\r\n\r\nUGF5IGJ5IEZyaWRheQ==\r\n"
       b"--b\r\nContent-Type: text/html\r\n\r\n<b>html part</b>\r\n--b--\r\n")


def folders(script: str, data: bytes = MSG, **kw: object) -> list[tuple[str, list[str]]]:
    result = run(script, data, ENV, **kw)  # type: ignore[arg-type]
    assert result.error is None, result.error
    return [(d.folder, sorted(d.flags)) for d in result.deliveries]


def test_no_action_is_the_implicit_keep() -> None:
    assert folders("") == [("INBOX", [])]


@pytest.mark.parametrize(("test", "taken"), [
    ('header :contains "subject" "invoice ü"', False),  # casemap folds ASCII only
    ('header :contains "subject" "INVOICE Ü"', True),
    ('header :is :comparator "i;octet" "subject" "invoice Ü 42"', False),
    ('header :matches "subject" "Inv*42"', True),
    ('header :matches "subject" "Inv?ice*"', True),
    ('address :domain "from" "OUTSIDE.example"', True),
    ('address :localpart "cc" "bob"', True),
    ('address :all :is "to" "ann@hosted.example"', True),
    ('exists ["x-spam-score", "subject"]', True),
    ('exists "x-missing"', False),
    ("size :over 100", True),
    ("size :under 1K", True),
    ("size :over 1M", False),
    ("not true", False),
    ('allof (true, header :is "subject" "nope")', False),
    ('anyof (false, address :domain "from" "outside.example")', True),
    ('envelope :is "from" "zoe@outside.example"', True),
    ('envelope :detail "to" "news"', True),
    ('envelope :user "to" "ann"', True),
    ('header :value "gt" "x-spam-score" "5"', True),
    ('header :value "lt" "x-spam-score" "5"', False),
    ('address :count "ge" ["to", "cc"] "2"', True),
    ('body :contains "friday"', True),  # the base64 text part, decoded
    ('body :content "text/html" :contains "html part"', True),
    ('body :text :contains "html part"', True),
    ('currentdate :value "ge" "date" "2025-01-01"', True),
    ('date :is "date" "year" "2025"', True),
])
def test_tests(test: str, taken: bool) -> None:
    script = ('require ["fileinto", "envelope", "subaddress", "relational", "body", '
              f'"date"];\nif {test} {{ fileinto "Hit"; }}')
    assert folders(script, now=datetime(2026, 1, 1, tzinfo=UTC)) == (
        [("Hit", [])] if taken else [("INBOX", [])])


def test_elsif_else_stop_and_discard() -> None:
    script = """require "fileinto";
if false { fileinto "A"; } elsif true { fileinto "B"; } else { fileinto "C"; }
if true { stop; }
fileinto "D";"""
    assert folders(script) == [("B", [])]
    assert folders("discard;") == []
    assert folders('require "fileinto"; keep; discard; fileinto "X";') == [
        ("INBOX", []), ("X", [])]


def test_copy_redirect_and_flags() -> None:
    script = """require ["copy", "fileinto", "imap4flags"];
addflag "\\\\seen"; addflag ["$Work", "\\\\Flagged"]; removeflag "\\\\Flagged";
fileinto :copy "Archive";
fileinto :flags "$Only" "Other";
redirect :copy "bob@elsewhere.example";"""
    result = run(script, MSG, ENV)
    assert result.redirects == ["bob@elsewhere.example"]
    assert [(d.folder, sorted(d.flags)) for d in result.deliveries] == [
        ("Archive", ["$Work", "\\Seen"]), ("Other", ["$Only"])]  # :copy: no implicit keep
    kept = run('require "imap4flags"; setflag "\\\\Flagged";', MSG, ENV)
    assert kept.deliveries == [Delivery("INBOX", frozenset({"\\Flagged"}))]


def test_variables_and_match_variables() -> None:
    script = """require ["fileinto", "variables", "copy"];
set :lower "who" "TEAM";
if header :matches "subject" "Invoice * *" { fileinto "${who}/${2}-${1}"; }
if string :is "${who}" "team" { fileinto :copy "Yes"; }"""
    assert folders(script) == [("team/42-Ü", []), ("Yes", [])]
    # without the variables extension ${...} stays as written
    assert folders('require "fileinto"; fileinto "a${x}";') == [("a${x}", [])]


def test_limits_give_the_implicit_keep() -> None:
    many = "\n".join(f'redirect "r{n}@x.example";' for n in range(5))
    result = run(many, MSG, ENV, limits=Limits(max_redirects=4))
    assert result.error and "redirects" in result.error
    assert result.deliveries == [Delivery("INBOX", frozenset())]
    assert result.redirects == []
    actions = 'require ["fileinto", "copy"];\n' + "\n".join(
        f'fileinto :copy "F{n}";' for n in range(10))
    assert run(actions, MSG, ENV, limits=Limits(max_actions=5)).error
    steps = 'if anyof (' + ", ".join(["false"] * 50) + ') { discard; }'
    assert "steps" in (run(steps, MSG, ENV, limits=Limits(max_steps=20)).error or "")


def test_parse_errors_and_unsupported_extensions_are_refused_with_the_line() -> None:
    with pytest.raises(ScriptError, match=r"^line 3"):
        parse('require "fileinto";\n\nif true { fileinto "x" }\n')
    with pytest.raises(ScriptError, match="line 2: unsupported extension 'enotify'"):
        parse('# notify\nrequire ["fileinto", "enotify"];\n')
    with pytest.raises(ScriptError):
        parse('fileinto "x";')  # fileinto without require
    parse('require ["vacation", "vacation-seconds"]; vacation :seconds 60 "x";')


VAC = 'require "vacation"; vacation :days 0 :addresses "alias@hosted.example" "Away.";'


def action(script: str = VAC) -> VacationAction:
    vacation = run(script, MSG, ENV).vacation
    assert vacation is not None
    return vacation


def test_vacation_action_and_reply() -> None:
    vac = action()
    assert vac.seconds == 86400  # :days at least 1
    assert vac.handle  # the same reason is the same handle
    assert action().handle == vac.handle
    msg = SieveMessage(MSG)
    assert why_not(vac, mailbox="ann@hosted.example", sender=ENV.sender, message=msg) is None
    reply = compose(vac, mailbox="ann@hosted.example", sender=ENV.sender, message=msg,
                    now=datetime(2026, 1, 1, tzinfo=UTC)).decode()
    assert "Auto-Submitted: auto-replied" in reply
    assert "In-Reply-To: <m1@outside.example>" in reply
    assert "To: zoe@outside.example" in reply and "From: ann@hosted.example" in reply
    assert "Subject: =?utf-8?" in reply  # "Auto: Invoice Ü 42", encoded
    assert reply.endswith("Away.\r\n")


@pytest.mark.parametrize(("sender", "extra", "why"), [
    ("", b"", "null sender"),
    ("MAILER-DAEMON@outside.example", b"", "robot"),
    ("owner-list@outside.example", b"", "robot"),
    ("list-request@outside.example", b"", "robot"),
    ("alias@hosted.example", b"", "our own"),
    ("ann@hosted.example", b"", "our own"),
    (ENV.sender, b"Auto-Submitted: auto-generated\r\n", "Auto-Submitted"),
    (ENV.sender, b"List-Id: <x.lists.example>\r\n", "list"),
    (ENV.sender, b"Precedence: bulk\r\n", "bulk"),
])
def test_vacation_never_answers(sender: str, extra: bytes, why: str) -> None:
    message = SieveMessage(extra + MSG)
    assert why in (why_not(action(), mailbox="ann@hosted.example", sender=sender,
                           message=message) or "")


def test_vacation_only_when_addressed_to_the_mailbox() -> None:
    message = SieveMessage(MSG.replace(b"To: Ann <ann@hosted.example>", b"To: x@else.example")
                           .replace(b"Cc: bob@hosted.example", b"Cc: y@else.example"))
    assert why_not(action(), mailbox="ann@hosted.example", sender=ENV.sender,
                   message=message) == "not addressed to the mailbox"
    auto_no = SieveMessage(b"Auto-Submitted: no\r\n" + MSG)
    assert why_not(action(), mailbox="ann@hosted.example", sender=ENV.sender,
                   message=auto_no) is None
