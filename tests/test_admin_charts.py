"""The SVG charts: accessible markup, scaled bars, legends, tables of numbers, escaping."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from waypost.admin.charts import (
    OTHER_COLOUR,
    PALETTE,
    Series,
    bar_list,
    colours,
    compact,
    figure_value,
    line,
    nice_ticks,
    report_figure,
    stacked_bars,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    """The figure as XML (the charts are well-formed), with SVG in its namespace."""
    tagged = str(markup).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ')
    return ET.fromstring(tagged)  # noqa: S314 (Waypost's own output)


def svg_of(figure: ET.Element) -> ET.Element:
    found = figure.find(f"{SVG}svg")
    assert found is not None
    return found


def luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("colour", [*PALETTE, OTHER_COLOUR])
def test_every_colour_stands_out_against_white(colour: str) -> None:
    assert contrast(colour, "#ffffff") >= 3.0, colour


def test_the_colours_differ_from_one_another() -> None:
    for a, b in itertools.combinations([*PALETTE, OTHER_COLOUR], 2):
        rgb_a = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
        rgb_b = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
        assert sum(abs(x - y) for x, y in zip(rgb_a, rgb_b, strict=True)) > 80, (a, b)
    assert colours(10) == [*PALETTE, *PALETTE[:2]]


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (17, [0, 5, 10, 15, 20]),
        (100, [0, 50, 100]),
        (1234, [0, 500, 1000, 1500]),
    ],
)
def test_axis_ticks_are_round_and_reach_the_top(top: int, ticks: list[int]) -> None:
    assert nice_ticks(top) == ticks


def test_axis_labels_are_short() -> None:
    assert [compact(v) for v in (0, 950, 1000, 1500, 2_500_000, 3e9)] == [
        "0", "950", "1k", "1.5k", "2.5M", "3G",
    ]  # fmt: skip


def test_a_stacked_bar_chart_is_an_image_named_and_described() -> None:
    figure = parse(
        stacked_bars(
            "acts",
            "Activities per day",
            ["Mar 1", "Mar 2", "Mar 3"],
            [Series("Page visit", [4, 0, 2]), Series("Click", [4, 0, 0])],
            summary="10 activities in 3 days.",
        )
    )
    assert figure.tag == "figure"
    assert figure.get("id") == "acts"
    svg = svg_of(figure)
    assert svg.get("role") == "img"
    assert svg.get("viewBox") == "0 0 720 220"
    assert svg.get("width") is None  # it scales with the page
    labelled = (svg.get("aria-labelledby") or "").split()
    assert labelled == ["acts-title", "acts-desc"]
    title = svg.find(f"{SVG}title")
    desc = svg.find(f"{SVG}desc")
    assert title is not None
    assert desc is not None
    assert (title.get("id"), title.text) == ("acts-title", "Activities per day")
    assert (desc.get("id"), desc.text) == ("acts-desc", "10 activities in 3 days.")

    rects = svg.findall(f".//{SVG}g[@class='chart-bars']/{SVG}rect")
    tips = [r.findtext(f"{SVG}title") for r in rects]
    assert tips == ["Mar 1: Page visit 4", "Mar 1: Click 4", "Mar 3: Page visit 2"]
    heights = [float(r.get("height") or 0) for r in rects]
    # 8 is the axis top: a bar of 4 is half the plot, and of 2 a quarter
    assert heights[0] == pytest.approx(heights[1])
    assert heights[0] == pytest.approx(2 * heights[2])
    assert rects[0].get("fill") == PALETTE[0]
    assert rects[1].get("fill") == PALETTE[1]
    # stacked: the second series sits on top of the first
    assert float(rects[1].get("y") or 0) + heights[1] == pytest.approx(
        float(rects[0].get("y") or 0)
    )

    legend = figure.find("ul[@class='chart-legend']")
    assert legend is not None
    assert ["".join(li.itertext()) for li in legend] == ["Page visit", "Click"]
    fills = [li.find(f".//{SVG}rect") for li in legend]
    assert [f.get("fill") for f in fills if f is not None] == [PALETTE[0], PALETTE[1]]

    box = figure.find(".//div[@class='table-wrap']")
    assert box is not None  # it scrolls: a labelled region the keyboard reaches
    assert (box.get("role"), box.get("aria-label"), box.get("tabindex")) == (
        "region",
        "Activities per day",
        "0",
    )
    table = figure.find(".//table")
    assert table is not None
    assert table.findtext("caption") == "Activities per day"
    assert [th.text for th in table.findall("thead/tr/th")] == [
        "Day",
        "Page visit",
        "Click",
        "Total",
    ]
    rows = [[c.text for c in tr] for tr in table.findall("tbody/tr")]
    assert rows == [["Mar 1", "4", "4", "8"], ["Mar 2", "0", "0", "0"], ["Mar 3", "2", "0", "2"]]


def test_a_series_may_bring_its_own_colour_and_one_series_has_no_legend() -> None:
    figure = parse(
        stacked_bars("one", "New contacts", ["a"], [Series("New", [3], OTHER_COLOUR)], summary="")
    )
    rect = svg_of(figure).find(f".//{SVG}rect")
    assert rect is not None
    assert rect.get("fill") == OTHER_COLOUR
    assert figure.find("ul") is None


def test_an_empty_chart_says_so() -> None:
    figure = parse(stacked_bars("e", "Activities", ["a", "b"], [Series("x", [0, 0])], summary=""))
    svg = svg_of(figure)
    assert svg.findall(f".//{SVG}rect") == []
    assert "Nothing in these days" in "".join(svg.itertext())


def test_at_most_eight_days_are_labelled_and_the_last_always() -> None:
    days = [f"d{i}" for i in range(30)]
    figure = parse(stacked_bars("x", "t", days, [Series("s", [1] * 30)], summary=""))
    labels = [t.text for t in svg_of(figure).findall(f".//{SVG}g[@class='chart-x']/{SVG}text")]
    assert len(labels) <= 8
    assert labels[-1] == "d29"


def test_text_is_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script> & co'
    markup = str(
        stacked_bars("x", evil, [evil], [Series(evil, [1]), Series("b", [1])], summary=evil)
        + bar_list("y", evil, [(evil, 1)], summary=evil, category_label=evil, value_label=evil)
        + line("z", evil, [evil], Series(evil, [1]), summary=evil)
    )
    assert "<script>" not in markup
    assert "&lt;script&gt;" in markup
    parse(f"<div>{markup}</div>")  # still well-formed


def test_a_line_chart_has_a_point_per_day_and_extra_columns_in_its_table() -> None:
    figure = parse(
        line(
            "members",
            "Members per day",
            ["Mar 1", "Mar 2", "Mar 3"],
            Series("Members", [0, 10, 5]),
            summary="From 0 to 5 members.",
            extra=[Series("Entered", [0, 10, 1]), Series("Left", [0, 0, 6])],
        )
    )
    svg = svg_of(figure)
    assert svg.get("role") == "img"
    points = svg.findall(f".//{SVG}circle")
    assert [p.findtext(f"{SVG}title") for p in points] == [
        "Mar 1: 0 members",
        "Mar 2: 10 members",
        "Mar 3: 5 members",
    ]
    ys = [float(p.get("cy") or 0) for p in points]
    assert ys[0] > ys[2] > ys[1]  # higher counts are higher up
    polyline = svg.find(f"{SVG}polyline")
    assert polyline is not None
    assert len((polyline.get("points") or "").split()) == 3
    table = figure.find(".//table")
    assert table is not None
    assert [th.text for th in table.findall("thead/tr/th")] == ["Day", "Members", "Entered", "Left"]
    assert [c.text for c in table.findall("tbody/tr")[2]] == ["Mar 3", "5", "1", "6"]


def test_a_bar_list_keeps_the_order_given_and_shortens_long_labels() -> None:
    long_name = "A very long activity type name, indeed"
    figure = parse(
        bar_list(
            "top",
            "Top types",
            [("Page visit", 1200), (long_name, 600), ("Zero", 0)],
            summary="Page visit leads.",
            category_label="Type",
            value_label="Activities",
        )
    )
    svg = svg_of(figure)
    rects = svg.findall(f".//{SVG}rect")
    assert [r.findtext(f"{SVG}title") for r in rects] == [
        "Page visit: 1,200",
        f"{long_name}: 600",
        "Zero: 0",
    ]
    widths = [float(r.get("width") or 0) for r in rects]
    assert widths[0] == pytest.approx(2 * widths[1])
    assert widths[2] == 0
    texts = [t.text or "" for t in svg.findall(f".//{SVG}text")]
    assert "A very long activity type …" in texts
    assert "1,200" in texts
    rows = [[c.text for c in tr] for tr in figure.findall(".//tbody/tr")]
    assert rows[1] == [long_name, "600"]
    empty = parse(bar_list("e", "t", [], summary="", category_label="a", value_label="b"))
    assert "Nothing in these days" in "".join(svg_of(empty).itertext())


# -- reports -----------------------------------------------------------------------------


def report(
    style: str, series: list[tuple[str, list[float | None]]], **kwargs: object
) -> ET.Element:
    categories = kwargs.pop("categories", ["2026-03-01", "2026-03-02", "2026-03-03"])
    return parse(
        report_figure(
            "rep",
            "Deposits per day",
            style,
            categories,  # type: ignore[arg-type]
            series,
            summary="Deposits: highest 300 at 2026-03-02.",
            columns=["Period", "Deposits", "Sum"],
            rows=[["2026-03-01", 1, "100.50"], ["2026-03-02", 2, "300"], ["2026-03-03", 0, None]],
            **kwargs,  # type: ignore[arg-type]
        )
    )


def test_a_report_figure_is_named_described_and_holds_the_reports_own_table() -> None:
    figure = report("bars", [("Sum", [100.5, 300, None])])
    svg = svg_of(figure)
    assert svg.get("role") == "img"
    assert svg.findtext(f"{SVG}title") == "Deposits per day"
    assert svg.findtext(f"{SVG}desc") == "Deposits: highest 300 at 2026-03-02."
    rects = svg.findall(f".//{SVG}g[@class='chart-bars']/{SVG}rect")
    assert [r.findtext(f"{SVG}title") for r in rects] == [
        "2026-03-01: Sum 100.5",
        "2026-03-02: Sum 300",
    ]
    heights = [float(r.get("height") or 0) for r in rects]
    assert heights[1] == pytest.approx(heights[0] * 300 / 100.5, abs=0.2)
    assert figure.find("ul[@class='chart-legend']") is None  # one series
    details = figure.find("details")
    assert details is not None
    assert details.get("open") is not None  # a report's numbers are shown
    table = figure.find(".//table")
    assert table is not None
    assert [th.text for th in table.findall("thead/tr/th")] == ["Period", "Deposits", "Sum"]
    rows = [[c.text for c in tr] for tr in table.findall("tbody/tr")]
    assert rows == [
        ["2026-03-01", "1", "100.50"],
        ["2026-03-02", "2", "300"],
        ["2026-03-03", "0", "\u2013"],
    ]
    assert [c.tag for c in table.findall("tbody/tr")[0]] == ["th", "td", "td"]
    # An exact decimal is aligned as a number.
    assert [c.get("class") for c in table.findall("tbody/tr")[0]] == [None, "num", "num"]
    assert table.findall("tbody/tr")[0][0].get("scope") == "row"


def test_the_numbers_may_start_folded() -> None:
    details = report("bars", [("Sum", [1, 2, 3])], numbers_shown=False).find("details")
    assert details is not None
    assert details.get("open") is None


def test_report_bars_side_by_side_or_stacked() -> None:
    series: list[tuple[str, list[float | None]]] = [("A", [2, 4, 0]), ("B", [2, 0, 1])]
    side = svg_of(report("bars", series)).findall(f".//{SVG}g[@class='chart-bars']/{SVG}rect")
    assert [float(r.get("x") or 0) < float(side[1].get("x") or 0) for r in side[:1]] == [True]
    assert float(side[0].get("y") or 0) + float(side[0].get("height") or 0) == pytest.approx(
        float(side[1].get("y") or 0) + float(side[1].get("height") or 0)
    )
    stacked = report("stacked_bars", series)
    bars = svg_of(stacked).findall(f".//{SVG}g[@class='chart-bars']/{SVG}rect")
    assert bars[0].get("x") == bars[1].get("x")
    assert float(bars[1].get("y") or 0) + float(bars[1].get("height") or 0) == pytest.approx(
        float(bars[0].get("y") or 0)
    )
    legend = stacked.find("ul[@class='chart-legend']")
    assert legend is not None
    assert ["".join(li.itertext()) for li in legend] == ["A", "B"]


def test_a_report_line_breaks_where_a_value_is_missing() -> None:
    figure = report(
        "line",
        [("Average", [1, 2, None, 4, 5])],
        categories=["d1", "d2", "d3", "d4", "d5"],
    )
    svg = svg_of(figure)
    lines = svg.findall(f".//{SVG}polyline")
    assert [len((p.get("points") or "").split()) for p in lines] == [2, 2]
    points = svg.findall(f".//{SVG}g[@class='chart-points']/{SVG}circle")
    assert [c.findtext(f"{SVG}title") for c in points] == [
        "d1: Average 1",
        "d2: Average 2",
        "d4: Average 4",
        "d5: Average 5",
    ]


def test_a_funnel_shows_each_steps_share_of_the_first() -> None:
    figure = report(
        "funnel",
        [("Contacts", [200, 50, 10])],
        categories=["Loan calculator usage", "Loan application", "Contract signed"],
    )
    svg = svg_of(figure)
    rects = svg.findall(f".//{SVG}g[@class='chart-bars']/{SVG}rect")
    assert [r.findtext(f"{SVG}title") for r in rects] == [
        "Loan calculator usage: 200",
        "Loan application: 50 (25%)",
        "Contract signed: 10 (5%)",
    ]
    widths = [float(r.get("width") or 0) for r in rects]
    assert widths[0] == pytest.approx(4 * widths[1])


def test_an_empty_report_says_so_and_text_is_escaped() -> None:
    figure = report("bars", [("<b>Sum</b>", [None, 0, None])])
    texts = [t.text for t in svg_of(figure).iter(f"{SVG}text")]
    assert "Nothing in this range" in texts
    markup = str(
        report_figure(
            "x", "<script>", "bars", ["<i>"], [("<b>", [1])],
            summary="<s>", columns=["<th>"], rows=[["<td>", "=1+1"]],
        )
    )  # fmt: skip
    assert "<script>" not in markup
    assert "<i>" not in markup
    assert "<b>" not in markup
    assert "&lt;td&gt;" in markup


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "no value"), (3, "3"), (1234.0, "1,234"), (1234.5, "1,234.5"), (0.125, "0.12")],
)
def test_figure_values(value: float | None, text: str) -> None:
    assert figure_value(value) == text
