"""A report's CSV: RFC 4180 quoting, numbers as numbers, and no cell a spreadsheet would run as
a formula."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.domain.report_csv import BOM, csv_filename, is_number, report_csv, safe_cell


def read(text: str) -> list[list[str]]:
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text[len(BOM) :], newline="")))


def test_header_then_rows_with_numbers_as_they_are() -> None:
    text = report_csv(
        ["Period", "Activities", "Sum"],
        [["2026-03-01", 12, "1500.25"], ["2026-03-02", 0, None], ["2026-03-03", 3, "-12.50"]],
    )
    assert text.endswith("\r\n")
    assert read(text) == [
        ["Period", "Activities", "Sum"],
        ["2026-03-01", "12", "1500.25"],
        ["2026-03-02", "0", ""],
        ["2026-03-03", "3", "-12.50"],
    ]


def test_quoting_keeps_commas_quotes_and_line_breaks_in_their_cell() -> None:
    value = 'Loans, "cheap"\nand fast'
    text = report_csv(["Value", "Activities"], [[value, 2]])
    assert '"Loans, ""cheap""\nand fast"' in text
    assert read(text)[1] == [value, "2"]


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        ("-12.50", "-12.50"),
        ("-7", "-7"),
        ("12", "12"),
        ("a=b", "a=b"),
        ("under 100", "under 100"),
        ("", ""),
    ],
)
def test_formulas_are_written_as_text(cell: str, written: str) -> None:
    assert safe_cell(cell) == written
    assert read(report_csv([cell], [[cell]]))[1] == [written]


def test_the_header_is_made_safe_too() -> None:
    assert read(report_csv(["=cmd"], []))[0] == ["'=cmd"]


@pytest.mark.parametrize(
    ("text", "number"),
    [("0", True), ("-0.5", True), ("10.25", True), ("1.", False), (".5", False), ("-", False),
     ("1e5", False), ("--1", False), ("1-2", False), ("١٢", False), ("", False)],
)  # fmt: skip
def test_what_counts_as_a_number(text: str, number: bool) -> None:
    assert is_number(text) is number


@given(st.text(max_size=30))
def test_no_text_cell_starts_like_a_formula_unless_it_is_a_number(text: str) -> None:
    cell = safe_cell(text)
    if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
        assert is_number(cell)
        assert cell == text
    assert cell in (text, "'" + text)


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("Deposits per day", "deposits-per-day.csv"),
        ("Loan terms: calculator (2026)", "loan-terms-calculator-2026.csv"),
        ("Žádosti o úvěr", "zadosti-o-uver.csv"),
        ("../../etc/passwd", "etc-passwd.csv"),
        ('"; rm -rf', "rm-rf.csv"),
        ("", "report.csv"),
        ("***", "report.csv"),
    ],
)
def test_file_names_are_plain(name: str, filename: str) -> None:
    assert csv_filename(name) == filename
