"""The dashboard's SVG charts (``mailward.web.charts``), parsed as XML: well-formed, labelled
(title, desc), bars and points where the numbers put them, axis labels, legend, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from mailward.web.charts import (
    Series,
    bar_list,
    ms_label,
    nice_ticks,
    numbers_table,
    percent_label,
    time_chart,
)

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2024, 3, 5, 0, 0, tzinfo=UTC)
HOURS = [START + timedelta(hours=h) for h in range(24)]
DAYS = [START + timedelta(days=d) for d in range(7)]


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(str(markup))
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    return root


def texts(root: ET.Element, cls: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if cls in (t.get("class") or "")]


def by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if cls in (e.get("class") or "").split()]


def test_nice_ticks() -> None:
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(100) == [0, 50, 100]
    assert nice_ticks(100, integer=False) == [0, 25, 50, 75, 100]
    assert nice_ticks(0) == [0, 1]  # nothing: still an axis
    assert nice_ticks(3) == [0, 1, 2, 3]
    assert nice_ticks(1_234)[-1] >= 1_234 and all(t.is_integer() for t in nice_ticks(1_234))
    assert nice_ticks(0.3, integer=False)[-1] >= 0.3


def test_labels() -> None:
    assert ms_label(250) == "250 ms" and ms_label(2500) == "2.5 s"
    assert ms_label(900_000) == "15 min" and ms_label(3_600_000) == "1 h"
    assert percent_label(12.5) == "12.5 %" and percent_label(40) == "40 %"


def test_stacked_bars_stand_on_each_other_with_their_numbers() -> None:
    accepted = [0.0] * 24
    refused = [0.0] * 24
    accepted[13], refused[13], accepted[2] = 6, 2, 4
    root = parse(time_chart("Mail in", HOURS, [Series("accepted", accepted, "accepted"),
                                                Series("refused", refused, "refused")],
                            kind="bars", description="Recipients per hour."))
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and title.text == "Mail in"
    assert desc is not None and desc.text is not None
    assert root.get("aria-labelledby") == title.get("id")
    assert root.get("aria-describedby") == desc.get("id")
    assert "Recipients per hour." in desc.text
    assert "accepted: 10 in all, at most 6 (2024-03-05 13:00 UTC)." in desc.text
    assert "refused: 2 in all" in desc.text

    bars = by_class(root, "rect", "bar")
    assert [b.findtext(f"{SVG}title") for b in bars] == [
        "accepted, 2024-03-05 02:00 UTC: 4", "accepted, 2024-03-05 13:00 UTC: 6",
        "refused, 2024-03-05 13:00 UTC: 2"]
    assert [b.get("class") for b in bars] == ["bar s-accepted"] * 2 + ["bar s-refused"]
    # the y axis runs 0..8 (ticks 0 2 4 6 8): 6 is 3/4 of the plot, the refused 2 on top
    assert texts(root, "tick y") == ["0", "2", "4", "6", "8"]
    plot_bottom = float(by_class(root, "line", "axis")[0].get("y1") or 0)
    full = plot_bottom - min(float(t.get("y1") or 0) for t in by_class(root, "line", "grid"))
    _, six, two = bars
    assert float(six.get("height") or 0) == pytest.approx(full * 6 / 8, abs=0.1)
    assert float(six.get("y") or 0) + float(six.get("height") or 0) == \
        pytest.approx(plot_bottom, abs=0.1)
    assert float(two.get("y") or 0) + float(two.get("height") or 0) == \
        pytest.approx(float(six.get("y") or 0), abs=0.1)  # stacked on the accepted bar
    assert float(two.get("x") or 0) == float(six.get("x") or 0)  # the same hour
    # hours on the x axis, every 3 hours; the legend with totals
    assert texts(root, "tick x") == ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00",
                                     "18:00", "21:00"]
    legend = [g.findtext(f"{SVG}text") for g in by_class(root, "g", "legend-item")]
    assert legend == ["accepted (10)", "refused (2)"]


def test_lines_break_where_there_is_no_data() -> None:
    p50 = [100.0, 250.0, None, 500.0, 1000.0, None, None]
    root = parse(time_chart("Latency", DAYS, [Series("p50", p50, "p50")], kind="lines",
                            fmt=ms_label, summable=False))
    [path] = by_class(root, "path", "line")
    moves = (path.get("d") or "").split()
    assert [m for m in moves if m[0] in "ML"] and sum(m[0] == "M" for m in moves) == 2
    dots = by_class(root, "circle", "dot")
    assert [d.findtext(f"{SVG}title") for d in dots] == [
        "p50, 2024-03-05: 100 ms", "p50, 2024-03-06: 250 ms", "p50, 2024-03-08: 500 ms",
        "p50, 2024-03-09: 1 s"]
    ys = [float(d.get("cy") or 0) for d in dots]
    assert ys == sorted(ys, reverse=True)  # higher values, higher up
    assert texts(root, "tick x")[:2] == ["05 Mar", "06 Mar"]  # days
    desc = root.findtext(f"{SVG}desc") or ""
    assert "p50: from 100 ms to 1 s (highest 2024-03-09)." in desc
    assert [g.findtext(f"{SVG}text") for g in by_class(root, "g", "legend-item")] == ["p50"]


def test_a_week_of_hours_is_labelled_by_day_at_midnight() -> None:
    week = [START + timedelta(hours=h) for h in range(7 * 24)]
    root = parse(time_chart("Queue", week, [Series("queued", [1.0] * len(week), "queued")]))
    assert texts(root, "tick x") == ["05 Mar", "06 Mar", "07 Mar", "08 Mar", "09 Mar",
                                     "10 Mar", "11 Mar"]
    assert not by_class(root, "circle", "dot")  # too many points for dots: the line only


def test_percent_axis_and_empty_chart() -> None:
    root = parse(time_chart("Spam", HOURS, [Series("spam", [0.0] * 24, "spam")],
                            fmt=percent_label, y_max=100, summable=False))
    assert texts(root, "tick y")[-1] == "100 %"
    assert texts(root, "empty") == ["Nothing in this period."]


def test_text_is_escaped() -> None:
    evil = '<script>alert("x")</script> & co'
    markup = time_chart(evil, HOURS[:2], [Series(evil, [1.0, 2.0], 'a"b')], kind="bars",
                        description=evil)
    assert "<script>" not in markup
    root = parse(markup)
    assert root.findtext(f"{SVG}title") == evil
    assert {b.get("class") for b in by_class(root, "rect", "bar")} == {"bar s-a-b"}
    listing = bar_list(evil, [(evil, 3)])
    assert "<script>" not in listing
    assert parse(listing).findtext(f"{SVG}title") == evil
    table = numbers_table(evil, HOURS[:2], [Series(evil, [1.0, None])])
    assert "<script>" not in table


def test_bar_list_ranks_with_proportional_bars() -> None:
    long = "a-very-long-sender-address-that-does-not-fit@spammer.example"
    root = parse(bar_list("Top refused senders", [(long, 10), ("x@y.example", 5)],
                          description="Refused recipients by sender."))
    items = by_class(root, "g", "item")
    assert [i.findtext(f"{SVG}title") for i in items] == [f"{long}: 10", "x@y.example: 5"]
    labels = texts(root, "label")
    assert labels[0].endswith("…") and long.startswith(labels[0][:-1])
    assert labels[1] == "x@y.example"
    assert texts(root, "value") == ["10", "5"]
    first, second = (float(b.get("width") or 0) for b in by_class(root, "rect", "bar"))
    assert second == pytest.approx(first / 2)
    assert f"{long}: 10; x@y.example: 5" in (root.findtext(f"{SVG}desc") or "")
    assert texts(parse(bar_list("None", [])), "empty") == ["None."]


def test_numbers_table_leaves_out_empty_slots() -> None:
    table = ET.fromstring(str(numbers_table(
        "volume numbers", HOURS[:3], [Series("accepted", [0, 3, 1]), Series("refused", [0, 1])])))
    rows = [[c.text or "" for c in row] for row in table.iter("tr")]
    assert rows == [["Time", "accepted", "refused"],
                    ["2024-03-05 01:00 UTC", "3", "1"], ["2024-03-05 02:00 UTC", "1", ""]]


def test_unknown_kind() -> None:
    with pytest.raises(ValueError):
        time_chart("x", HOURS, [], kind="pie")
