"""The image report: the tabular page plus sample images per class and the files set aside, named."""

import base64
import io
import json
import re

from PIL import Image

from components.images.manifest import scan_images
from components.images.report import write_image_report
from components.images.validate import validate_images
from components.validation.report_html import report_header
from tests.images.conftest import digits_contract


def test_report_shows_samples_per_class_and_names_quarantined_files(spoiled, tmp_path):
    validation = validate_images(scan_images(spoiled), digits_contract(severity={"unknown_label": "quarantine"}))
    header = report_header(dataset="data/digits", md5="0123abcd.dir", contract="digits-classifier")
    path = write_image_report(validation, spoiled, tmp_path / "report", title="Digits", header=header,
                              samples_per_class=3)  # fmt: skip
    page = path.read_text(encoding="utf-8")

    # the tabular page is all there: header, rule tables, one document
    assert page.count("<html>") == 1 and page.rstrip().endswith("</body></html>")
    assert "0123abcd.dir" in page and "PASSED" in page and "Quarantine rules" in page
    # three samples for each of the ten classes, inline PNGs drawn as sharp pixels
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"[^>]*alt="([^"]+)"', page)
    labels = [alt.split("/")[0] for _, alt in images]
    assert sorted(labels) == sorted([str(d) for d in range(10)] * 3)
    assert "image-rendering:pixelated" in page
    with Image.open(io.BytesIO(base64.b64decode(images[0][0]))) as first:
        assert (first.size, first.mode) == ((8, 8), "L")
    # the quarantined files are never samples, and the page names each with why
    assert not {alt for _, alt in images} & {"3/truncated.png", "4/big.png", "x/stray.png"}
    for name in ("3/truncated.png", "5/notes.png", "4/big.png", "7/colour.png", "x/stray.png"):
        assert f"<code>{name}</code>" in page
    assert "16x16, expected 8x8" in page and "5 quarantined, 0 blocking the run" in page

    data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert data["header"]["dataset"] == "data/digits" and data["n_quarantined"] == 5
    assert {f["path"] for f in data["files"]} == {"3/truncated.png", "5/notes.png", "4/big.png", "7/colour.png",
                                                 "x/stray.png"}  # fmt: skip
    assert sorted(data["samples"]) == [str(d) for d in range(10)] and len(data["samples"]["3"]) == 3


def test_blocked_run_names_the_blocking_file(spoiled, tmp_path):
    validation = validate_images(scan_images(spoiled), digits_contract())
    page = write_image_report(validation, spoiled, tmp_path, title="Digits").read_text(encoding="utf-8")
    assert "REJECTED" in page and "4 quarantined, 1 blocking the run" in page
    assert "label &#x27;x&#x27; is not allowed" in page
