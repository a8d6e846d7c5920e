"""The served bento's OpenAPI document tells the truth: Schemathesis with every check, the example, the page.

Reuses test_serving's bento (a breast-cancer model whose contract has a `patient_id` column that is not a
feature, with held-out rows for the example), built and served once more for this module.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_serving import MAX_BATCH, built, client, holdout, records, server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def test_schemathesis_with_all_checks_finds_the_document_truthful(server, tmp_path):  # noqa: F811
    """No 5xx, no answer outside the declared schemas, nothing valid refused, nothing invalid accepted."""
    st = Path(sys.executable).with_name("st")
    if not st.is_file():
        pytest.skip("schemathesis is a dev extra: pip install -e '.[dev]'")
    cmd = [str(st), "run", f"{server.url}/docs.json", "--checks", "all", "--max-examples", "60", "--seed", "17",
           "--generation-database", "none", "--no-color", "--report-dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "No issues found" in proc.stdout


def test_the_documents_example_is_a_held_out_row_the_service_answers(client, built, holdout):  # noqa: F811
    doc = client.get("/docs.json").json()
    body = doc["paths"]["/predict"]["post"]["requestBody"]
    example = body["content"]["application/json"]["schema"]["example"]
    [record] = example["records"]
    features = [f["name"] for f in built["schema"]["features"]]
    assert list(record) == features and record in holdout[features].to_dict("records")
    resp = client.post("/predict", json=example)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["predictions"]) == 1


def test_the_document_lists_every_feature_with_its_type_bounds_and_the_batch_limits(client, built):  # noqa: F811
    doc = client.get("/docs.json").json()
    schema = doc["paths"]["/batch_predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    batch = schema["properties"]["records"]
    assert (batch["minItems"], batch["maxItems"]) == (1, MAX_BATCH)
    item = batch["items"]
    assert item["additionalProperties"] is False
    for spec in built["schema"]["features"]:
        prop = item["properties"][spec["name"]]
        assert prop["type"] == "number" and (prop["minimum"], prop["maximum"]) == (spec["min"], spec["max"])
    assert set(item["required"]) == {f["name"] for f in built["schema"]["features"]}
    assert {"patient_id", "target"} <= set(item["properties"]) - set(item["required"])  # accepted, ignored
    # the answer names the classes
    assert doc["components"]["schemas"]["Probabilities"]["properties"].keys() == {"0", "1"}


def test_the_page_describes_the_model_not_bentoml(client, built):  # noqa: F811
    info = client.get("/docs.json").json()["info"]
    assert info["title"] == "clf · version 1" and info["version"] == "1"
    for fact in ("`clf` version `1`", "binary", "`e2e-md5`", "`e2e-commit`", "promote", built["tag"]):
        assert fact in info["description"], fact
    assert "BentoML" not in info["description"]
    assert client.get("/").status_code == 200  # the Swagger page itself is BentoML's, unchanged


def test_every_prediction_4xx_is_declared_in_one_format(client):  # noqa: F811
    doc = client.get("/docs.json").json()
    for path in ("/predict", "/batch_predict"):
        responses = doc["paths"][path]["post"]["responses"]
        assert {"400", "411", "413", "415"} <= set(responses)
        assert {
            r["content"]["application/json"]["schema"]["$ref"] for s, r in responses.items() if s.startswith("4")
        } == {"#/components/schemas/Error"}
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert wrong_method.json() == {"error": "GET /predict: send POST", "field": None, "status": 405}


def test_an_exported_row_with_an_id_column_is_accepted_and_an_unknown_column_is_refused(client, records):  # noqa: F811
    exported = [{**r, "patient_id": 1000 + i, "target": 1} for i, r in enumerate(records[:3])]
    plain = client.post("/predict", json={"records": records[:3]})
    with_ids = client.post("/predict", json={"records": exported})
    assert with_ids.status_code == 200, with_ids.text
    assert with_ids.json() == plain.json()  # the id and the target change nothing
    unknown = client.post("/predict", json={"records": [{**records[0], "patient_ref": "p-1"}]})
    assert unknown.status_code == 400
    assert unknown.json() == {"error": "records[0]: unknown field 'patient_ref'", "field": "patient_ref", "status": 400}
