"""Server-rendered SVG charts for the panel's dashboard: pure functions from numbers to
markup, no JavaScript, nothing fetched from elsewhere.

* :func:`time_chart`: several series over time, as stacked bars or as lines (gaps where a
  value is ``None``), with a y axis of round ticks, time labels and a legend.
* :func:`bar_list`: a ranked list of labelled horizontal bars (the top refused senders).
* :func:`numbers_table`: the same numbers as an HTML table (in a ``<details>``), for
  screen readers and for anyone who wants the exact figures.

Every chart is an ``<svg role="img">`` named by its ``<title>`` and described by its
``<desc>`` (which sums each series up in words), and every bar or point carries a
``<title>`` with its value (a tooltip, read out by screen readers). Text is escaped.
Axes and labels are drawn in ``currentColor`` and each series has a class ``s-<key>``
whose colour the stylesheet may set through the ``--c`` variable (the ``fill``/``stroke``
attributes are the fallback), so the charts follow the page's colours, dark or light.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

__all__ = [
    "COLOURS",
    "Series",
    "bar_list",
    "count_label",
    "ms_label",
    "nice_ticks",
    "numbers_table",
    "percent_label",
    "time_chart",
]

COLOURS: dict[str, str] = {
    "accepted": "#2e8b57", "refused": "#c0392b", "quarantined": "#d68910",
    "delivered": "#2f6fd0", "deferred": "#e67e22", "bounced": "#8e44ad",
    "released": "#17a2b8", "spam": "#c0392b", "ratio": "#c0392b",
    "queued": "#2f6fd0", "active": "#2e8b57",
    "p50": "#2e8b57", "p90": "#d68910", "p99": "#c0392b",
}
"""The fallback colour of a series key (the stylesheet's ``--c`` wins)."""
_SPARE = ("#2f6fd0", "#2e8b57", "#d68910", "#8e44ad", "#c0392b", "#17a2b8", "#7f8c8d")

FONT = 12  # px, in the chart's own units
CHAR = 6.6  # the width of an average character at FONT (to lay out labels)
LEFT, RIGHT, TOP = 56, 12, 10
AXIS_H = 22  # the x labels under the plot
LEGEND_ROW = 20
MAX_X_LABELS = 8
DOT_LIMIT = 60  # lines get a dot (with its value) per point up to this many points

Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Series:
    """One series: its legend ``name``, a value per time slot (``None``: no data, a gap in
    a line) and the ``key`` that picks its colour class (``s-<key>``)."""

    name: str
    values: Sequence[float | None]
    key: str = ""


def count_label(value: float) -> str:
    """1234 → ``1,234``; 1.5 → ``1.5``."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def percent_label(value: float) -> str:
    return f"{value:.0f} %" if float(value).is_integer() else f"{value:.1f} %"


def ms_label(value: float) -> str:
    """Milliseconds in the unit that reads best: ``250 ms``, ``2.5 s``, ``15 min``, ``1 h``."""
    for size, unit in ((3_600_000, "h"), (60_000, "min"), (1000, "s")):
        if value >= size:
            amount = value / size
            return f"{amount:.0f} {unit}" if amount.is_integer() else f"{amount:.1f} {unit}"
    return f"{value:.0f} ms"


def nice_ticks(top: float, *, count: int = 4, integer: bool = True) -> list[float]:
    """Round tick values from 0 to at least ``top``: steps of 1, 2, 5 (2.5 unless
    ``integer``) times a power of ten, about ``count`` of them."""
    top = top if top > 0 else 1.0
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in steps if m * magnitude >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _colour(key: str, index: int) -> str:
    return COLOURS.get(key, _SPARE[index % len(_SPARE)])


def _key(series: Series, index: int) -> str:
    raw = series.key or f"series{index}"
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw.lower())


def _spacing(slots: Sequence[datetime]) -> timedelta:
    return slots[1] - slots[0] if len(slots) > 1 else timedelta(hours=1)


def _when(slot: datetime, spacing: timedelta) -> str:
    """A slot as a title reads it: the hour (UTC) or the day."""
    return slot.strftime("%Y-%m-%d" if spacing >= timedelta(days=1) else "%Y-%m-%d %H:%M UTC")


def _x_labels(slots: Sequence[datetime]) -> list[tuple[int, str]]:
    """(slot index, label) of the time axis: hours within a day, else days (at midnight
    when the slots are hours), at most ``MAX_X_LABELS``."""
    if not slots:
        return []
    spacing = _spacing(slots)
    daily = spacing >= timedelta(days=1) or slots[-1] - slots[0] > timedelta(days=1)
    if daily:
        candidates = [i for i, s in enumerate(slots)
                      if spacing >= timedelta(days=1) or (s.hour == 0 and s.minute == 0)]
        if not candidates:
            candidates = [0]
        step = max(1, math.ceil(len(candidates) / MAX_X_LABELS))
        return [(i, slots[i].strftime("%d %b")) for i in candidates[::step]]
    step = max(1, math.ceil(len(slots) / MAX_X_LABELS))
    return [(i, slots[i].strftime("%H:%M")) for i in range(0, len(slots), step)]


def _legend(items: Sequence[tuple[str, str, str]], width: float, top: float
            ) -> tuple[list[str], float]:
    """Legend entries (key, colour, text) laid out in rows from ``top``; the markup and
    the height used."""
    parts: list[str] = []
    x, y = float(LEFT), top
    for key, colour, text in items:
        need = 18 + len(text) * CHAR + 16
        if x > LEFT and x + need > width:
            x, y = LEFT, y + LEGEND_ROW
        parts.append(
            f'<g class="legend-item s-{key}"><rect class="swatch" x="{_num(x)}" '
            f'y="{_num(y + 3)}" width="12" height="12" rx="2" fill="{colour}"/>'
            f'<text x="{_num(x + 18)}" y="{_num(y + 13)}">{escape(text)}</text></g>')
        x += need
    return parts, (y - top + LEGEND_ROW) if items else 0.0


def _summary(series: Series, slots: Sequence[datetime], fmt: Format, summable: bool) -> str:
    """One series in words: its total (counts) or its range, and when it peaked."""
    known = [(v, i) for i, v in enumerate(series.values) if v is not None]
    if not known:
        return f"{series.name}: no data."
    spacing = _spacing(slots)
    peak, at = max(known, key=lambda p: p[0])
    if summable:
        total = sum(v for v, _ in known)
        if total == 0:
            return f"{series.name}: none."
        return (f"{series.name}: {fmt(total)} in all, at most {fmt(peak)} "
                f"({_when(slots[at], spacing)}).")
    low = min(v for v, _ in known)
    return (f"{series.name}: from {fmt(low)} to {fmt(peak)} "
            f"(highest {_when(slots[at], spacing)}).")


def time_chart(
    title: str,
    slots: Sequence[datetime],
    series: Sequence[Series],
    *,
    kind: str = "lines",
    description: str = "",
    fmt: Format = count_label,
    summable: bool = True,
    y_max: float | None = None,
    integer: bool = True,
    width: int = 720,
    plot_height: int = 200,
    empty_text: str = "Nothing in this period.",
) -> Markup:
    """``series`` over the time ``slots`` (one value per slot each) as an SVG chart.

    ``kind`` ``"bars"`` stacks the series in one bar per slot (in the order given);
    ``"lines"`` draws each as a line, broken where a value is ``None``. ``fmt`` writes a
    value (ticks, titles, desc); ``summable`` series (counts) are summed up in the legend
    and desc, the others (ratios, latencies) by their range. ``y_max`` fixes the top of the
    y axis (e.g. 100 for percentages), else it is rounded up from the data.
    """
    if kind not in ("bars", "lines"):
        raise ValueError(f"unknown chart kind {kind!r}")
    n = len(slots)
    plot_w = width - LEFT - RIGHT
    slot_w = plot_w / n if n else plot_w
    bottom = TOP + plot_height
    spacing = _spacing(slots)
    keys = [_key(s, i) for i, s in enumerate(series)]
    colours = [_colour(k, i) for i, k in enumerate(keys)]

    def value(s: Series, i: int) -> float | None:
        return s.values[i] if i < len(s.values) else None

    if kind == "bars":
        highest = max((sum(value(s, i) or 0 for s in series) for i in range(n)), default=0)
    else:
        highest = max((v for s in series for v in s.values if v is not None), default=0)
    ticks = nice_ticks(y_max if y_max is not None else highest, integer=integer)
    top_value = ticks[-1]

    def y_of(v: float) -> float:
        return bottom - (v / top_value) * plot_height

    def x_mid(i: int) -> float:
        return LEFT + (i + 0.5) * slot_w

    out: list[str] = []
    # the grid and the y axis
    for tick in ticks:
        y = _num(y_of(tick))
        out.append(f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{y}" y2="{y}" '
                   f'stroke="currentColor" stroke-opacity="0.15"/>')
        out.append(f'<text class="tick y" x="{LEFT - 6}" y="{_num(y_of(tick) + 4)}" '
                   f'text-anchor="end">{escape(fmt(tick))}</text>')
    out.append(f'<line class="axis" x1="{LEFT}" x2="{width - RIGHT}" y1="{bottom}" '
               f'y2="{bottom}" stroke="currentColor" stroke-opacity="0.6"/>')
    for i, label in _x_labels(slots):
        x = _num(x_mid(i))
        out.append(f'<line class="tick-mark" x1="{x}" x2="{x}" y1="{bottom}" '
                   f'y2="{bottom + 4}" stroke="currentColor" stroke-opacity="0.6"/>')
        out.append(f'<text class="tick x" x="{x}" y="{bottom + 16}" '
                   f'text-anchor="middle">{escape(label)}</text>')

    has_data = any(v for s in series for v in s.values if v)
    if kind == "bars":
        bar_w = max(slot_w * 0.8, 0.5)
        for i in range(n):
            level = 0.0
            for s, key, colour in zip(series, keys, colours, strict=True):
                part = value(s, i) or 0.0
                if part <= 0:
                    continue
                y_top, y_bottom = y_of(level + part), y_of(level)
                level += part
                out.append(
                    f'<rect class="bar s-{key}" x="{_num(x_mid(i) - bar_w / 2)}" '
                    f'y="{_num(y_top)}" width="{_num(bar_w)}" '
                    f'height="{_num(max(y_bottom - y_top, 0.5))}" fill="{colour}">'
                    f'<title>{escape(s.name)}, {escape(_when(slots[i], spacing))}: '
                    f'{escape(fmt(part))}</title></rect>')
    else:
        for s, key, colour in zip(series, keys, colours, strict=True):
            path: list[str] = []
            pen_up = True
            for i in range(n):
                point = value(s, i)
                if point is None:
                    pen_up = True
                    continue
                path.append(f'{"M" if pen_up else "L"}{_num(x_mid(i))} {_num(y_of(point))}')
                pen_up = False
            if not path:
                continue
            out.append(f'<g class="series s-{key}"><path class="line" d="{" ".join(path)}" '
                       f'fill="none" stroke="{colour}" stroke-width="2" '
                       f'stroke-linejoin="round"/>')
            if n <= DOT_LIMIT:
                for i in range(n):
                    point = value(s, i)
                    if point is None:
                        continue
                    out.append(
                        f'<circle class="dot" cx="{_num(x_mid(i))}" cy="{_num(y_of(point))}" '
                        f'r="2.5" fill="{colour}"><title>{escape(s.name)}, '
                        f'{escape(_when(slots[i], spacing))}: {escape(fmt(point))}</title>'
                        f'</circle>')
            out.append("</g>")
    if not has_data:
        out.append(f'<text class="empty" x="{_num(LEFT + plot_w / 2)}" '
                   f'y="{_num(TOP + plot_height / 2)}" text-anchor="middle">'
                   f'{escape(empty_text)}</text>')

    def legend_text(s: Series) -> str:
        if not summable:
            return s.name
        total = sum(v for v in s.values if v is not None)
        return f"{s.name} ({fmt(total)})"

    legend, legend_h = _legend(
        [(k, c, legend_text(s)) for s, k, c in zip(series, keys, colours, strict=True)],
        width, bottom + AXIS_H + 4)
    height = bottom + AXIS_H + 4 + legend_h
    words = " ".join(_summary(s, slots, fmt, summable) for s in series)
    if slots:
        period = f"{_when(slots[0], spacing)} to {_when(slots[-1], spacing)}"
        words = f"{period}. {words}"
    desc = f"{description} {words}".strip()
    return _svg(title, desc, width, height, "chart-" + kind, out + legend)


def bar_list(title: str, items: Sequence[tuple[str, float]], *, description: str = "",
             key: str = "refused", fmt: Format = count_label, width: int = 420,
             empty_text: str = "None.") -> Markup:
    """``items`` (label, value), largest first as given, as horizontal bars with the label
    on the left and the value at the bar's end."""
    row, label_w = 22, min(width * 0.5, 210)
    bar_x, value_w = LEFT // 4 + label_w, 52
    bar_room = width - bar_x - value_w - RIGHT
    top = max((v for _, v in items), default=0) or 1
    colour = _colour(key, 0)
    out: list[str] = []
    for i, (label, v) in enumerate(items):
        y = TOP + i * row
        limit = int((label_w - 8) / CHAR)
        shown = label if len(label) <= limit else label[: max(limit - 1, 1)] + "…"
        length = max(bar_room * v / top, 1.0)
        out.append(
            f'<g class="item s-{key}"><title>{escape(label)}: {escape(fmt(v))}</title>'
            f'<text class="label" x="{_num(bar_x - 8)}" y="{_num(y + 15)}" '
            f'text-anchor="end">{escape(shown)}</text>'
            f'<rect class="bar" x="{_num(bar_x)}" y="{_num(y + 4)}" width="{_num(length)}" '
            f'height="{row - 8}" rx="2" fill="{colour}"/>'
            f'<text class="value" x="{_num(bar_x + length + 6)}" y="{_num(y + 15)}">'
            f'{escape(fmt(v))}</text></g>')
    if not items:
        out.append(f'<text class="empty" x="{_num(width / 2)}" y="{TOP + 15}" '
                   f'text-anchor="middle">{escape(empty_text)}</text>')
    height = TOP * 2 + max(len(items), 1) * row
    words = "; ".join(f"{label}: {fmt(v)}" for label, v in items) or empty_text
    return _svg(title, f"{description} {words}".strip(), width, height, "chart-list", out)


def numbers_table(label: str, slots: Sequence[datetime], series: Sequence[Series], *,
                  fmt: Format = count_label, summary: str = "Numbers") -> Markup:
    """The chart's numbers as a table inside a closed ``<details>``: a row per slot that
    has any value (empty ones are left out), a column per series."""
    spacing = _spacing(slots)
    head = "".join(f"<th scope=\"col\">{escape(s.name)}</th>" for s in series)
    rows = []
    for i, slot in enumerate(slots):
        values = [s.values[i] if i < len(s.values) else None for s in series]
        if not any(values):
            continue
        cells = "".join(f"<td>{'' if v is None else escape(fmt(v))}</td>" for v in values)
        rows.append(f"<tr><th scope=\"row\">{escape(_when(slot, spacing))}</th>{cells}</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{len(series) + 1}">Nothing in this period.</td></tr>')
    return Markup(
        f'<details class="chart-numbers"><summary>{escape(summary)}</summary>'
        f'<table aria-label="{escape(label)}"><thead><tr><th scope="col">Time</th>{head}'
        f'</tr></thead><tbody>{"".join(rows)}</tbody></table></details>')


def _svg(title: str, desc: str, width: float, height: float, kind: str,
         body: Sequence[str]) -> Markup:
    # the ids that label it: the same chart always gets the same ones (charts of one
    # page have different titles)
    ident = "chart-" + hashlib.sha1(f"{kind}\0{title}".encode()).hexdigest()[:10]
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" role="img" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" width="{_num(width)}" '
        f'height="{_num(height)}" font-size="{FONT}" font-family="system-ui, sans-serif" '
        f'fill="currentColor" aria-labelledby="{ident}-t" aria-describedby="{ident}-d">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}'
        f'</desc>{"".join(body)}</svg>')
