"""Charts drawn as SVG on the server: stacked bars, a line, and a list of horizontal bars.

Each chart is a ``<figure>`` holding an ``<svg role="img">`` named by its ``<title>`` and
described by a ``<desc>`` that says what it shows in words, a legend when it has several
series, and the numbers as a table (in a ``<details>``), which is what screen readers and
people who want exact values read. The SVG has a ``viewBox`` and no fixed size, so it scales
to the page; colours come from a palette whose colours all stand out against white (3:1, as
WCAG asks of graphics) and from one another, and every bar carries its value in a tooltip.
Pure functions of their data: no database, no request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from waypost.domain.report_csv import is_number

# Blue, vermillion, green, purple, ochre, magenta, olive, dark grey; grey is "the rest".
PALETTE = ("#0072b2", "#d55e00", "#008a62", "#7a4fa0", "#a6761d", "#c1377a", "#5c6b00", "#4d4d4d")
OTHER_COLOUR = "#6e7781"
WIDTH = 720
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 52, 28, 12, 30
# Lists of bars sit in half-width panels: a narrower drawing keeps their text as large.
LIST_WIDTH = 420
MAX_X_LABELS = 8
NUM = ' class="num"'
NOTHING = "Nothing in these days"


@dataclass(frozen=True)
class Series:
    """One named row of values, one value per category; ``colour`` overrides the palette."""

    label: str
    values: Sequence[int]
    colour: str | None = None


def colours(count: int) -> list[str]:
    """The palette's first ``count`` colours (it repeats beyond its eight)."""
    return [PALETTE[i % len(PALETTE)] for i in range(count)]


def compact(value: float) -> str:
    """A short axis label: 950, 1.2k, 3M."""
    for limit, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:g}"


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round axis values from 0 that reach ``top``: 0, 5, 10, 15, 20 for 17."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = max(1, next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, anchor: str = "middle", cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}"{attr}>{escape(text)}</text>'


def _label_every(count: int) -> int:
    return max(1, math.ceil(count / MAX_X_LABELS))


def _svg(
    chart_id: str, title: str, summary: str, size: tuple[int, int], body: list[str], cls: str = ""
) -> str:
    width, height = size
    return (
        f'<svg class="chart-svg{cls}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" focusable="false">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(summary)}</desc>' + "".join(body) + "</svg>"
    )


def _axes(ticks: list[float], plot_height: float) -> list[str]:
    """Horizontal grid lines with their values on the left."""
    parts = ['<g class="chart-grid" aria-hidden="true">']
    for tick in ticks:
        y = TOP + plot_height - tick / ticks[-1] * plot_height
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(y)}" y2="{_num(y)}" '
            'stroke="#d0d7de" stroke-width="1"/>'
        )
        parts.append(_text(LEFT - 6, y + 4, compact(tick), "end"))
    parts.append("</g>")
    return parts


def _x_labels(categories: Sequence[str], slot: float) -> list[str]:
    every = _label_every(len(categories))
    last = len(categories) - 1
    parts = ['<g class="chart-x" aria-hidden="true">']
    for i, label in enumerate(categories):
        # Count back from the last category, so that the newest one is always labelled.
        if (last - i) % every == 0:
            parts.append(_text(LEFT + slot * (i + 0.5), HEIGHT - BOTTOM + 18, label))
    parts.append("</g>")
    return parts


def _legend(series: Sequence[Series], fills: Sequence[str]) -> str:
    items = "".join(
        '<li><svg class="swatch" viewBox="0 0 10 10" aria-hidden="true" focusable="false">'
        f'<rect width="10" height="10" fill="{fill}"/></svg>{escape(s.label)}</li>'
        for s, fill in zip(series, fills, strict=True)
    )
    return f'<ul class="chart-legend">{items}</ul>'


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str | int]]) -> str:
    head = "".join(
        f'<th scope="col"{NUM if i else ""}>{escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        first, *rest = row
        cells = "".join(
            f'<td class="num">{v:,}</td>' if isinstance(v, int) else f"<td>{escape(v)}</td>"
            for v in rest
        )
        body.append(f'<tr><th scope="row">{escape(str(first))}</th>{cells}</tr>')
    return (
        '<details class="chart-data"><summary>The numbers</summary>'
        f'<div class="table-wrap" role="region" aria-label="{escape(caption)}" tabindex="0">'
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div></details>"
    )


def _figure(chart_id: str, *parts: str) -> Markup:
    # Every piece is built from escaped text above.
    return Markup(f'<figure class="chart" id="{escape(chart_id)}">{"".join(parts)}</figure>')  # noqa: S704


def stacked_bars(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    summary: str,
    category_label: str = "Day",
) -> Markup:
    """One bar per category, split into the series' values, stacked in the series' order."""
    fills = [s.colour or c for s, c in zip(series, colours(len(series)), strict=True)]
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    ticks = nice_ticks(max(totals, default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    bar = slot * 0.75
    body = _axes(ticks, plot_height)
    body.append('<g class="chart-bars">')
    for i, category in enumerate(categories):
        y: float = TOP + plot_height
        x = LEFT + slot * i + (slot - bar) / 2
        for s, fill in zip(series, fills, strict=True):
            value = s.values[i]
            if value <= 0:
                continue
            h = value / ticks[-1] * plot_height
            y -= h
            body.append(
                f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(bar)}" height="{_num(h)}" '
                f'fill="{fill}" stroke="#ffffff" stroke-width="0.5">'
                f"<title>{escape(category)}: {escape(s.label)} {value:,}</title></rect>"
            )
    if not any(totals):
        body.append(_text(LEFT + (WIDTH - LEFT - RIGHT) / 2, TOP + plot_height / 2, NOTHING))
    body.append("</g>")
    body += _x_labels(categories, slot)
    rows: list[list[str | int]] = [
        [category, *(s.values[i] for s in series), totals[i]]
        for i, category in enumerate(categories)
    ]
    headers = [category_label, *(s.label for s in series), "Total"]
    return _figure(
        chart_id,
        _svg(chart_id, title, summary, (WIDTH, HEIGHT), body),
        _legend(series, fills) if len(series) > 1 else "",
        _table(title, headers, rows),
    )


def line(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Series,
    *,
    summary: str,
    category_label: str = "Day",
    extra: Sequence[Series] = (),
) -> Markup:
    """A line over the categories with the area below it shaded; ``extra`` series are only
    added to the table of numbers (entries and exits next to the member count)."""
    fill = series.colour or PALETTE[0]
    values = list(series.values)
    ticks = nice_ticks(max(values, default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    points = [
        (LEFT + slot * (i + 0.5), TOP + plot_height - v / ticks[-1] * plot_height)
        for i, v in enumerate(values)
    ]
    body = _axes(ticks, plot_height)
    if points:
        base = TOP + plot_height
        path = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
        area = f"{_num(points[0][0])},{_num(base)} {path} {_num(points[-1][0])},{_num(base)}"
        body.append(
            f'<polygon points="{area}" fill="{fill}" fill-opacity="0.15" aria-hidden="true"/>'
            f'<polyline points="{path}" fill="none" stroke="{fill}" stroke-width="2.5" '
            'stroke-linejoin="round" aria-hidden="true"/>'
        )
        radius = 3 if len(points) <= 60 else 1.5
        body.append('<g class="chart-points">')
        for (x, y), category, value in zip(points, categories, values, strict=True):
            body.append(
                f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{radius}" fill="{fill}">'
                f"<title>{escape(category)}: {value:,} {escape(series.label.lower())}</title>"
                "</circle>"
            )
        body.append("</g>")
    body += _x_labels(categories, slot)
    rows: list[list[str | int]] = [
        [category, values[i], *(s.values[i] for s in extra)]
        for i, category in enumerate(categories)
    ]
    headers = [category_label, series.label, *(s.label for s in extra)]
    return _figure(
        chart_id,
        _svg(chart_id, title, summary, (WIDTH, HEIGHT), body),
        _table(title, headers, rows),
    )


def bar_list(
    chart_id: str,
    title: str,
    items: Sequence[tuple[str, int]],
    *,
    summary: str,
    category_label: str,
    value_label: str,
    table_labels: Sequence[str] | None = None,
) -> Markup:
    """Horizontal bars, one per item, in the order given, each labelled with its value;
    ``table_labels`` name the items in the tooltips and the table where a bar's label is short."""
    row_height, value_width, max_chars = 28, 56, 27
    # About 7 units a character: the labels' column is as wide as the longest label needs.
    longest = max((len(label) for label, _ in items), default=0)
    label_width = min(7 * max_chars + 16, max(80, 7 * longest + 16))
    height = TOP + BOTTOM // 2 + row_height * max(len(items), 1)
    top = max((value for _, value in items), default=0)
    scale = (LIST_WIDTH - label_width - value_width) / top if top else 0
    full = list(table_labels) if table_labels is not None else [label for label, _ in items]
    body = ['<g class="chart-bars">']
    for i, (label, value) in enumerate(items):
        y = TOP + row_height * i
        shown = label if len(label) <= max_chars else label[: max_chars - 1] + "…"
        width = max(value * scale, 1 if value else 0)
        body.append(_text(label_width - 8, y + 18, shown, "end"))
        body.append(
            f'<rect x="{label_width}" y="{y + 5}" width="{_num(width)}" height="{row_height - 10}"'
            f' fill="{PALETTE[0]}"><title>{escape(full[i])}: {value:,}</title></rect>'
        )
        body.append(_text(label_width + width + 6, y + 18, f"{value:,}", "start"))
    if not items:
        body.append(_text(LIST_WIDTH / 2, TOP + 18, NOTHING))
    body.append("</g>")
    return _figure(
        chart_id,
        _svg(chart_id, title, summary, (LIST_WIDTH, height), body, " chart-list"),
        _table(
            title,
            [category_label, value_label],
            [[name, value] for name, (_, value) in zip(full, items, strict=True)],
        ),
    )


# -- reports: any report's chart, drawn from its series, and its table of numbers -----------

ReportValues = Sequence[float | None]
OPEN = ' open=""'


def figure_value(value: float | None) -> str:
    """A value as a tooltip or a summary says it: 1,234, 1,234.5, or "no value"."""
    if value is None:
        return "no value"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _top(series: Sequence[tuple[str, ReportValues]], stacked: bool) -> float:
    if stacked:
        count = max((len(values) for _, values in series), default=0)
        sums = [sum(max(values[i] or 0, 0) for _, values in series) for i in range(count)]
        return max(sums, default=0)
    return max((v for _, values in series for v in values if v is not None), default=0)


def _report_bars(
    categories: Sequence[str],
    series: Sequence[tuple[str, ReportValues]],
    fills: Sequence[str],
    stacked: bool,
) -> list[str]:
    """Vertical bars: side by side per category, or stacked in the series' order."""
    ticks = nice_ticks(_top(series, stacked))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    group = slot * 0.8
    width = group if stacked else group / max(len(series), 1)
    body = _axes(ticks, plot_height)
    body.append('<g class="chart-bars">')
    for i, category in enumerate(categories):
        base: float = TOP + plot_height
        for j, ((label, values), fill) in enumerate(zip(series, fills, strict=True)):
            value = values[i] if i < len(values) else None
            if value is None or value <= 0:
                continue
            h = value / ticks[-1] * plot_height
            x = LEFT + slot * i + (slot - group) / 2 + (0 if stacked else width * j)
            y = base - h
            if stacked:
                base = y
            body.append(
                f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(width)}" height="{_num(h)}" '
                f'fill="{fill}" stroke="#ffffff" stroke-width="0.5">'
                f"<title>{escape(category)}: {escape(label)} {figure_value(value)}</title></rect>"
            )
    body.append("</g>")
    return body + _x_labels(categories, slot)


def _report_lines(
    categories: Sequence[str], series: Sequence[tuple[str, ReportValues]], fills: Sequence[str]
) -> list[str]:
    """A line per series; a category without a value breaks the line there."""
    ticks = nice_ticks(_top(series, False))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    radius = 3 if len(categories) <= 60 else 1.5
    body = _axes(ticks, plot_height)
    for (label, values), fill in zip(series, fills, strict=True):
        runs: list[list[tuple[float, float]]] = [[]]
        points = []
        for i, category in enumerate(categories):
            value = values[i] if i < len(values) else None
            if value is None:
                runs.append([])
                continue
            x = LEFT + slot * (i + 0.5)
            y = TOP + plot_height - max(value, 0) / ticks[-1] * plot_height
            runs[-1].append((x, y))
            points.append(
                f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{radius}" fill="{fill}">'
                f"<title>{escape(category)}: {escape(label)} {figure_value(value)}</title>"
                "</circle>"
            )
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{_num(x)},{_num(y)}" for x, y in run)
                body.append(
                    f'<polyline points="{path}" fill="none" stroke="{fill}" stroke-width="2.5" '
                    'stroke-linejoin="round" aria-hidden="true"/>'
                )
        body.append('<g class="chart-points">' + "".join(points) + "</g>")
    return body + _x_labels(categories, slot)


def _report_funnel(categories: Sequence[str], values: ReportValues) -> tuple[list[str], int]:
    """A horizontal bar per step, as wide as its value, with its share of the first step."""
    row_height, label_width, value_width = 34, 180, 150
    first = values[0] if values and values[0] else 0
    top = max((v for v in values if v is not None), default=0)
    scale = (WIDTH - label_width - value_width) / top if top else 0
    body = ['<g class="chart-bars">']
    for i, category in enumerate(categories):
        value = values[i] if i < len(values) else None
        y = TOP + row_height * i
        shown = category if len(category) <= 24 else category[:23] + "…"
        width = max((value or 0) * scale, 1 if value else 0)
        share = f" ({(value or 0) / first:.0%})" if first and i else ""
        text = f"{figure_value(value)}{share}"
        body.append(_text(label_width - 8, y + 21, shown, "end"))
        body.append(
            f'<rect x="{label_width}" y="{y + 6}" width="{_num(width)}" height="{row_height - 12}"'
            f' fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(category)}: {text}</title></rect>'
        )
        body.append(_text(label_width + width + 6, y + 21, text, "start"))
    body.append("</g>")
    return body, TOP + BOTTOM // 2 + row_height * max(len(categories), 1)


def _report_table(
    caption: str, columns: Sequence[str], rows: Sequence[Sequence[object]], shown: bool
) -> str:
    """The report's own table: whole numbers with thousands separators, exact decimals as
    they are, an empty cell where there is no value; the first column heads each row."""
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            tag = "th" if i == 0 else "td"
            scope = ' scope="row"' if i == 0 else ""
            if value is None:
                cells.append(f'<{tag}{scope} class="num muted">&#8211;</{tag}>')
            elif isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(f'<{tag}{scope} class="num">{figure_value(value)}</{tag}>')
            elif isinstance(value, str) and i and is_number(value):
                # An exact decimal, as the report gives it: aligned as a number, not rounded.
                cells.append(f'<{tag}{scope} class="num">{escape(value)}</{tag}>')
            else:
                cells.append(f"<{tag}{scope}>{escape(str(value))}</{tag}>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<details class="chart-data"{OPEN if shown else ""}><summary>The numbers</summary>'
        f'<div class="table-wrap" role="region" aria-label="{escape(caption)}" tabindex="0">'
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div></details>"
    )


def report_figure(
    chart_id: str,
    title: str,
    style: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, ReportValues]],
    *,
    summary: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    numbers_shown: bool = True,
) -> Markup:
    """A report's chart in ``style`` (``bars``, ``stacked_bars``, ``line`` or ``funnel``)
    over its categories, with a legend when it has several series, and the report's own
    table (``columns`` and ``rows``) as its numbers, open unless ``numbers_shown`` is false."""
    fills = colours(len(series))
    size = (WIDTH, HEIGHT)
    if style == "funnel":
        body, height = _report_funnel(categories, series[0][1] if series else [])
        size = (WIDTH, height)
    elif style == "line":
        body = _report_lines(categories, series, fills)
    else:
        body = _report_bars(categories, series, fills, stacked=style == "stacked_bars")
    if not any(v for _, values in series for v in values):
        body.append(_text(WIDTH / 2, size[1] / 2, "Nothing in this range"))
    legend = (
        _legend([Series(label, []) for label, _ in series], fills)
        if len(series) > 1 and style != "funnel"
        else ""
    )
    return _figure(
        chart_id,
        _svg(chart_id, title, summary, size, body),
        legend,
        _report_table(title, columns, rows, numbers_shown),
    )
