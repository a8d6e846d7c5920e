"""The HTML validation report on messy data, validated for real (GX runs): header, bounds, blanks, drift, folds."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from components.data.contract import ColumnRule, Contract
from components.validation.report_html import render_html, report_header, write_report
from components.validation.validate import validate_frame

CITIES = [f"city{i:02d}" for i in range(20)]
HEADER = {
    "dataset": "/data/messy <v2>.csv",
    "md5": "0123456789abcdef0123456789abcdef",
    "contract": "messy (contracts/messy.yaml)",
    "drift reference": "champion v3's dataset (md5 fedcba98)",
}


def _contract() -> Contract:
    columns = (
        ColumnRule("age", dtype="float", min=0, max=120),
        ColumnRule("color", dtype="category", allowed=["red", "green", "blue"], on_unseen="quarantine"),
        ColumnRule("city", dtype="category", nullable=True, max_null_fraction=0.5, allowed=CITIES),
        ColumnRule("label", dtype="category", feature=False),
    )
    return Contract(name="messy", columns=columns, target="label", labels=["no", "yes"], max_quarantine_fraction=0.5)


def _clean(n: int = 200, seed: int = 0, cities: list[str] = CITIES[:15]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.uniform(18, 90, n).round(1),
            "color": rng.choice(["red", "green", "blue"], n),
            "city": rng.choice(cities, n),
            "label": rng.choice(["no", "yes"], n),
        }
    )


def _messy() -> pd.DataFrame:
    frame = _clean(seed=1)
    frame.loc[:59, "color"] = "purple"  # an unseen level: quarantined, and drift's new categories
    frame.loc[3, "age"] = 999.0  # out of range: blocks
    frame.loc[10:30, "city"] = np.nan  # blanks, within the allowed null share
    frame.loc[100:139, "city"] = "city19"  # allowed, but never seen in the reference: drift's new category
    return frame


class _Page(HTMLParser):
    """Table cells (text, whether inside <details>, the row's class), <dl> pairs and ids."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.rows: list[tuple[str, bool, list[str]]] = []
        self.header: dict[str, str] = {}
        self.ids: list[str] = []
        self._details = 0
        self._cell: list[str] | None = None
        self._row: tuple[str, bool, list[str]] | None = None
        self._dt: str | None = None
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "details":
            self._details += 1
        elif tag == "tr":
            self._row = (attrs.get("class") or "", self._details > 0, [])
        elif tag in ("td", "dt", "dd"):
            self._cell, self._in = [], tag

    def handle_endtag(self, tag):
        if tag == "details":
            self._details -= 1
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag in ("td", "dt", "dd") and self._cell is not None:
            text = "".join(self._cell).strip()
            if tag == "td":
                self.cells.append(text)
                if self._row is not None:
                    self._row[2].append(text)
            elif tag == "dt":
                self._dt = text
            else:
                self.header[self._dt or ""] = text
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def rejected():
    report, _ = validate_frame(_messy(), _contract(), reference=_clean())
    assert not report.success and report.drift is not None
    return report


def test_header_bounds_allowed_sets_and_blank_cells(rejected, tmp_path):
    path = write_report(rejected, tmp_path, title="Validation of <messy>", header=HEADER)
    page = path.read_text()
    parsed = _parse(page)
    for label, value in HEADER.items():
        assert parsed.header[label] == value
    assert "/data/messy &lt;v2&gt;.csv" in page and "<v2>" not in page  # escaped
    assert parsed.header["time (UTC)"][:2] == "20"  # filled in
    rows = {(cells[0], cells[1]): cells for _, _, cells in parsed.rows if len(cells) > 4}
    assert rows[("range", "age")][4] == "between 0 and 120"
    assert rows[("allowed", "color")][4] == 'one of "red", "green", "blue"'
    city = rows[("allowed", "city")][4]
    assert city.startswith('one of "city00", "city01"') and city.endswith("(+8 more)") and "city19" not in city
    assert rows[("null_fraction", "city")][4] == "non-null share at least 0.5"
    assert rows[("labels", "label")][4] == 'one of "no", "yes"'
    assert rows[("dtype", "age")][4] == "dtype float"
    assert not {"[]", "{}", "None", "nan", "NaN", "null", "<NA>"} & set(parsed.cells)
    data = json.loads((tmp_path / "validation_report.json").read_text())
    assert data["header"] == HEADER
    by_rule = {(r["rule"], r["column"]): r for r in data["results"]}
    assert by_rule[("range", "age")]["expected"] == {"min": 0, "max": 120}
    assert by_rule[("allowed", "color")]["expected"] == {"allowed": ["red", "green", "blue"]}


def test_drift_is_shown_once_and_kept_on_a_rejected_report(rejected):
    page = render_html(rejected, title="t", header=HEADER)
    parsed = _parse(page)
    assert "REJECTED" in page and parsed.ids.count("drift") == 1 and page.count("<h2") == page.count("</h2>")
    assert page.count(">Drift</h2>") == 1
    assert not [cells for _, _, cells in parsed.rows if cells and cells[0] == "drift"]  # not in the rule tables
    drift_rows = {cells[0]: cells for _, _, cells in parsed.rows if len(cells) == 7}
    assert drift_rows["city"][4].endswith('%: "city19"')  # its share of the kept rows, then the level
    assert drift_rows["age"][4] == ""  # a numeric column has no new categories: blank, not []
    assert "champion v3" in page.split('id="drift"')[1]  # the reference named in the section


def test_passed_rules_fold_and_failed_ones_do_not(rejected):
    parsed = _parse(render_html(rejected, title="t"))
    passed = [inside for cls, inside, _ in parsed.rows if cls == "passed"]
    failed = [inside for cls, inside, _ in parsed.rows if cls == "failed"]
    assert passed and all(passed)
    assert failed and not any(failed)


def test_without_header_or_drift_the_page_still_says_when_and_what(tmp_path):
    report, _ = validate_frame(_messy(), _contract())  # no reference: no drift
    parsed = _parse(write_report(report, tmp_path, title="t").read_text())
    assert set(parsed.header) == {"time (UTC)", "contract"} and parsed.header["contract"] == "messy"
    assert parsed.ids.count("drift") == 1
    assert "header" not in json.loads((tmp_path / "validation_report.json").read_text())


def test_a_batch_stopped_by_its_first_chunk_still_reports_drift(tmp_path):
    """The failing chunk is never scored, so the scored-row sample is empty: its kept rows stand in."""
    from components.inference.validation import BatchChecks, prepare_chunk

    checks = BatchChecks(_contract(), _clean(), tmp_path / "quarantine.csv")
    _, failures = checks.check(prepare_chunk(_messy(), checks.contract))
    assert [(r.rule, r.column) for r in failures] == [("range", "age")]
    report = checks.report(stopped_early=True, sample=None)
    assert not report.success and report.drift is not None and "city" in report.drift["drifted"]
    page = render_html(report, title="batch", header=HEADER)
    assert page.count(">Drift</h2>") == 1 and "No drift computed" not in page and "&quot;city19&quot;" in page


def test_report_header_builds_the_usual_labels():
    header = report_header(dataset="/d/x.csv", md5="ab", contract="messy", contract_source="contracts/messy.yaml",
                           drift_reference="champion v3's dataset (md5 fedcba98)")  # fmt: skip
    assert list(header) == ["dataset", "md5", "contract", "drift reference"]
    assert header["contract"] == "messy (contracts/messy.yaml)"
    assert report_header(contract="basic", md5="") == {"contract": "basic"}
