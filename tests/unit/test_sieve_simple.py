"""The simple rules and vacation form and its Sieve script: form -> script -> form gives
the form back, every script it makes parses (sievelib, and our grammar's extension
check), the quoting survives hostile text, and a changed script reads as edited."""

from __future__ import annotations

from datetime import date

import pytest
from sievelib.parser import Parser  # type: ignore[import-untyped]

from mailward.core.errors import InvalidInput
from mailward.sieve.grammar import parse, strings, unquote
from mailward.sieve.simple import (
    MARKER,
    Rule,
    SimpleForm,
    Vacation,
    check,
    read_script,
    to_script,
    vacation_changes_on,
)

HOSTILE = 'Boss "big" \\ } ; # /* x */ ünïcode'
FORMS = [
    SimpleForm(),
    SimpleForm(rules=(Rule("from", "news@shop.example", "fileinto", "Shopping"),)),
    SimpleForm(rules=(
        Rule("from", HOSTILE, "fileinto", 'Work/"Boss"'),
        Rule("subject", "[list]", "read", stop=True),
        Rule("header", "YES", "discard", header="X-Spam-Flag", match="is"),
        Rule("to", "me@acme.example", "redirect", "Other@Example.COM", match="is", copy=False),
        Rule("to", "team", "redirect", "ann@elsewhere.example"),
        Rule("from", "boss@acme.example", "read", match="is"),
    ), vacation=Vacation(True, 'Away "now"', "I'm away.\nBack on the 3rd \\o/\n.\n", 3,
                         date(2026, 12, 1), date(2026, 12, 24), ("Alias@Acme.example",))),
    SimpleForm(vacation=Vacation(True, "", "Gone fishing", 1)),
    SimpleForm(vacation=Vacation(True, "Off", "From the 5th", 30, start=date(2027, 1, 5))),
    SimpleForm(vacation=Vacation(True, "Off", "Until the 9th", 7, end=date(2027, 1, 9))),
    SimpleForm(vacation=Vacation(False, "kept", "but off", 7, date(2027, 1, 1))),
]


def sievelib_parses(text: str) -> None:
    parser = Parser()
    assert parser.parse(text.encode()), (parser.error, text)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dates", [True, False])
def test_round_trip_and_every_script_parses(form: SimpleForm, dates: bool) -> None:
    script = to_script(form, dates=dates, today=date(2026, 12, 10))
    assert script.startswith(MARKER)
    sievelib_parses(script)
    parse(script)  # what SieveScripts.put runs: sievelib + the supported extensions
    back = read_script(script)
    assert back.form == check(form)
    assert not back.edited and back.dates is dates


def test_the_script_says_what_the_form_says() -> None:
    script = to_script(FORMS[2])
    lines = script.splitlines()
    assert lines[1] == ('require ["copy", "date", "fileinto", "imap4flags", "relational", '
                        '"vacation"];')
    assert lines[2] == ('if allof(currentdate :value "ge" "date" "2026-12-01", '
                        'currentdate :value "le" "date" "2026-12-24") {')
    assert '    fileinto "Work/\\"Boss\\"";' in lines
    assert '    addflag "\\\\Seen";' in lines and "    stop;" in lines
    assert 'if header :is "x-spam-flag" "YES" {' in lines
    assert 'if address :is :all ["to", "cc"] "me@acme.example" {' in lines
    assert '    redirect "other@example.com";' in lines  # normalised, no :copy
    assert '    redirect :copy "ann@elsewhere.example";' in lines
    [tree_vacation] = [n for top in parse(script) for n in top.walk() if n.name == "vacation"]
    assert unquote(tree_vacation.arguments["reason"]) == "I'm away.\nBack on the 3rd \\o/\n.\n"
    assert strings(tree_vacation.extra_arguments["addresses"]) == ["alias@acme.example"]
    [tree_from] = [n for top in parse(script) for n in top.walk()
                   if n.name == "header" and "from" in str(n.arguments["header-names"])]
    assert strings(tree_from.arguments["key-list"]) == [HOSTILE]


def test_without_the_date_extension_the_dates_decide_when_made() -> None:
    form = SimpleForm(vacation=Vacation(True, "Off", "Away", 7, date(2026, 12, 1),
                                        date(2026, 12, 24)))
    before = to_script(form, dates=False, today=date(2026, 11, 30))
    during = to_script(form, dates=False, today=date(2026, 12, 1))
    after = to_script(form, dates=False, today=date(2026, 12, 25))
    assert "vacation" not in before.split("\n", 1)[1] and "vacation" not in after.split("\n", 1)[1]
    assert 'vacation :days 7 :subject "Off" "Away";' in during and "currentdate" not in during
    assert read_script(before).form == read_script(during).form == check(form)
    assert vacation_changes_on(form, date(2026, 11, 30)) == date(2026, 12, 1)
    assert vacation_changes_on(form, date(2026, 12, 24)) == date(2026, 12, 25)
    assert vacation_changes_on(form, date(2026, 12, 25)) is None


def test_changed_scripts_read_as_edited() -> None:
    script = to_script(FORMS[1])
    assert read_script(script + "keep;\n").edited
    marker, body = script.split("\n", 1)
    assert read_script(marker + "\n" + body.replace("Shopping", "Other")).edited
    foreign = read_script('require "fileinto";\nfileinto "X";\n')
    assert foreign.form is None and foreign.edited
    assert read_script(MARKER + "{not json\nkeep;\n").form is None
    none = read_script(None)
    assert none.form is None and not none.edited


@pytest.mark.parametrize(("form", "reason"), [
    (SimpleForm(rules=(Rule("from", "", "discard"),)), "rule 1: enter the text"),
    (SimpleForm(rules=(Rule("from", "x", "fileinto", " "),)), "rule 1: name the folder"),
    (SimpleForm(rules=(Rule("from", "x", "redirect", "not an address"),)), "rule 1: "),
    (SimpleForm(rules=(Rule("header", "x", "read", header="Bad Name"),)), "name the header"),
    (SimpleForm(rules=(Rule("body", "x", "read"),)), "choose From"),
    (SimpleForm(rules=(Rule("from", "x", "reject"),)), "choose an action"),
    (SimpleForm(rules=(Rule("from", "a\x00b", "read"),)), "control characters"),
    (SimpleForm(vacation=Vacation(True, "", "", 7)), "write the reply's text"),
    (SimpleForm(vacation=Vacation(True, "", "x", 0)), "1 to 365 days"),
    (SimpleForm(vacation=Vacation(True, "", "x", 7, date(2027, 1, 2), date(2027, 1, 1))),
     "before the first"),
    (SimpleForm(vacation=Vacation(True, "a\nb", "x", 7)), "control characters"),
])
def test_bad_forms_are_refused(form: SimpleForm, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason.replace("(", r"\(")):
        to_script(form)
