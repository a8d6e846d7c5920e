"""The built bento served for real: API, validation, API key, metrics, fuzzing, load, infra validation.

One module-scoped bento: a tiny model trained on 200 breast-cancer rows, registered in a
temporary SQLite store, packaged into a temporary BENTOML_HOME (in a subprocess, so
bentoml is imported with that home), served with `bentoml serve` on a free port.
"""

import json
from pathlib import Path

import httpx
import pytest

from components.release.bento_server import serve_bento
from components.release.infra_validation import validate_bento
from tests.conftest import build_in_subprocess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MAX_BATCH = 300
API_KEY = "e2e-secret-key"

BUILD = """
import dataclasses, json, sys
from pathlib import Path
import mlflow
from components.release import registry
from components.data.contract import ColumnRule, load_contract
from components.data.dataset import read_source
from components.release.deploy import bento_dockerfile_path
from components.release.package import build_bento
from components.serving.request_schema import schema_from_contract
from components.training.families import train_candidate

root, home, max_batch = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
registry.configure_tracking(home, experiment="tests")
full = read_source("sklearn:breast_cancer")
frame = full.sample(200, random_state=0)
X, y = frame.drop(columns="target"), frame["target"]
good = train_candidate("logreg", "sklearn_logreg", {"C": 1.0, "max_iter": 500}, X, y, seed=0)
other = train_candidate("hgb", "sklearn_hgb", {"learning_rate": 0.3, "max_iter": 5, "max_leaf_nodes": 4}, X, y, seed=0)
uris = {}
for name, model in (("good", good), ("other", other)):
    with mlflow.start_run() as run:
        uris[name] = registry.log_model(model, X)
        if name == "good":
            version = registry.register(uris[name], "clf", run.info.run_id, {}).version
contract = load_contract(root / "contracts" / "breast_cancer.yaml")
# an id column that is not a feature, as exports carry them: requests may send it, the service ignores it
patient_id = ColumnRule(name="patient_id", dtype="int", feature=False)
contract = dataclasses.replace(contract, columns=[*contract.columns, patient_id])
schema = schema_from_contract(contract, good.feature_columns)
held_out = full.drop(index=frame.index)
meta = {"model_version": version, "dataset_md5": "e2e-md5", "git_commit": "e2e-commit", "decision": "promote"}
tag = build_bento(registered_model="clf", version=version, service_name="e2e-clf", metadata=meta, schema=schema,
                  constraints=root / "constraints.txt", max_batch=max_batch, example_rows=held_out)
local = {k: mlflow.artifacts.download_artifacts(u, dst_path=str(home / k)) for k, u in uris.items()}
print(json.dumps({"tag": tag, "good": local["good"], "other": local["other"], "schema": schema,
                  "dockerfile": str(bento_dockerfile_path(tag))}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("serving")
    return {**build_in_subprocess(BUILD, home, str(MAX_BATCH)), "home": str(home / "bentoml")}


# Expire idle connections before uvicorn's 5 s keep-alive does, so no request races a close.
LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=1.0)


@pytest.fixture(scope="module")
def server(built):
    """Two workers: metrics must add up over processes."""
    env = {"MLOPS_SERVE_WORKERS": "2"}
    with serve_bento(built["tag"], bentoml_home=built["home"], timeout_s=180, env=env) as served:
        yield served


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30, limits=LIMITS) as c:
        yield c


@pytest.fixture(scope="module")
def holdout():
    from components.data.dataset import read_source

    frame = read_source("sklearn:breast_cancer")
    return frame.drop(index=frame.sample(200, random_state=0).index).drop(columns="target").head(60)


@pytest.fixture(scope="module")
def records(holdout):
    from components.release.infra_validation import frame_to_records

    return frame_to_records(holdout)


def _metric(client, name, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_predict_returns_label_probability_and_version(client, records):
    resp = client.post("/predict", json={"records": records[:3]})
    assert resp.status_code == 200, resp.text
    predictions = resp.json()["predictions"]
    assert len(predictions) == 3
    for p in predictions:
        assert p["label"] in (0, 1) and 0.0 <= p["probability"] <= 1.0 and p["model_version"] == "1"
        assert p["label"] == int(p["probability"] >= 0.5)


def test_answers_are_plain_json_and_the_server_runs_uvloop_and_httptools(client, server, built, records):
    resp = client.post("/batch_predict", json={"records": records})
    assert resp.text == json.dumps(resp.json(), ensure_ascii=False)  # what json would write, byte for byte
    import psutil

    workers = psutil.Process(server.pid).children(recursive=True)
    libraries = {m.path for w in workers for m in w.memory_maps()}
    for name in ("uvloop", "httptools"):  # uvicorn's "auto" picks them when the bento installs them
        assert any(f"/{name}/" in path for path in libraries), name
    name, version = built["tag"].split(":")
    pins = (Path(built["home"]) / "bentos" / name / version / "env" / "python" / "requirements.txt").read_text()
    assert {"uvloop", "httptools"} <= {line.split("==")[0] for line in pins.splitlines()}


def test_batch_predict_agrees_with_single_predictions(client, records):
    batch = client.post("/batch_predict", json={"records": records}).json()["predictions"]
    singles = [client.post("/predict", json={"records": [r]}).json()["predictions"][0] for r in records[:5]]
    assert len(batch) == len(records)
    assert [b["label"] for b in batch[:5]] == [s["label"] for s in singles]
    assert [b["probability"] for b in batch[:5]] == pytest.approx([s["probability"] for s in singles], abs=1e-12)


def test_metadata_health_and_probes(client, built):
    meta = client.get("/metadata").json()
    assert meta["bento_tag"] == built["tag"]
    assert (meta["model_version"], meta["dataset_md5"], meta["git_commit"], meta["decision"]) == (
        "1",
        "e2e-md5",
        "e2e-commit",
        "promote",
    )
    assert client.get("/health").json() == {"status": "ok", "model_version": "1"}
    for probe in ("/healthz", "/livez", "/readyz"):
        assert client.get(probe).status_code == 200


def test_metrics_count_predictions_by_label_low_confidence_and_rejections(client, records):
    before = {label: _metric(client, "mlops_predictions_total", label=label) for label in ("0", "1")}
    rejected = _metric(client, "mlops_rejected_requests_total", endpoint="/predict", reason="invalid")
    answers = client.post("/predict", json={"records": records}).json()["predictions"]
    assert client.post("/predict", json={"records": [{"oops": 1}]}).status_code == 400
    for label in ("0", "1"):
        expected = sum(1 for a in answers if str(a["label"]) == label)
        assert _metric(client, "mlops_predictions_total", label=label) - before[label] == expected
    assert _metric(client, "mlops_rejected_requests_total", endpoint="/predict", reason="invalid") == rejected + 1
    text = client.get("/metrics").text
    assert "mlops_low_confidence_predictions_total" in text
    assert 'mlops_request_latency_seconds_bucket{endpoint="/predict"' in text
    assert "bentoml_service_request_total" in text  # BentoML's own series are still there


def _bad_bodies(record):
    huge = json.dumps({"records": [record]}).replace(json.dumps(record["mean radius"]), "1e400", 1)
    big_int = json.dumps({"records": [record]}).replace(json.dumps(record["mean radius"]), "9" * 400, 1)
    nan = json.dumps({"records": [record]}).replace(json.dumps(record["mean radius"]), "NaN", 1)
    return {
        "missing field": (
            json.dumps({"records": [{k: v for k, v in record.items() if k != "mean area"}]}),
            "mean area",
        ),
        "unknown field": (json.dumps({"records": [{**record, "colour": 1}]}), "colour"),
        "unicode key": (json.dumps({"records": [{**record, "ключ✓": 1}]}), "ключ✓"),
        "wrong type": (json.dumps({"records": [{**record, "mean texture": "high"}]}), "mean texture"),
        "nested object": (json.dumps({"records": [{**record, "mean texture": {"v": 1}}]}), "mean texture"),
        "boolean": (json.dumps({"records": [{**record, "mean texture": True}]}), "mean texture"),
        "null": (json.dumps({"records": [{**record, "mean texture": None}]}), "mean texture"),
        "out of range": (json.dumps({"records": [{**record, "mean radius": 1000.0}]}), "mean radius"),
        "infinity": (huge, "mean radius"),
        "huge integer": (big_int, "mean radius"),
        "NaN token": (nan, "mean radius"),
        "empty batch": (json.dumps({"records": []}), "records"),
        "oversized batch": (json.dumps({"records": [record] * (MAX_BATCH + 1)}), "records"),
        "records not a list": (json.dumps({"records": {"a": 1}}), "records"),
        "record not an object": (json.dumps({"records": [1, 2]}), "records"),
        "no records key": (json.dumps({"rows": [record]}), "records"),
        "top-level list": (json.dumps([record]), None),
        "malformed JSON": ('{"records": [', None),
        "empty body": ("", "records"),
        "huge body": (json.dumps({"records": [record] * 5000}), "records"),
    }


def test_bad_requests_are_4xx_and_name_the_field(client, records):
    for case, (body, field) in _bad_bodies(records[0]).items():
        for route in ("/predict", "/batch_predict"):
            resp = client.post(route, content=body, headers={"content-type": "application/json"})
            assert 400 <= resp.status_code < 500, f"{case} on {route}: {resp.status_code} {resp.text[:300]}"
            answer = resp.json()  # one error format for every 4xx (tests/e2e/test_openapi.py checks the document)
            assert set(answer) == {"error", "field", "status"} and answer["status"] == resp.status_code, (case, answer)
            if field is not None:
                assert field in resp.text, f"{case} on {route}: field {field!r} not named in {resp.text[:300]}"


def test_only_json_with_a_length_is_read(client, records):
    body = json.dumps({"records": records[:1]}).encode()
    for media_type in ("multipart/form-data; boundary=x", "text/plain", "application/vnd.bentoml+pickle"):
        resp = client.post("/predict", content=body, headers={"content-type": media_type})
        assert resp.status_code == 415 and resp.json()["field"] == "content-type", media_type
    chunked = client.post("/predict", content=iter([body]), headers={"content-type": "application/json"})
    assert chunked.status_code == 411 and chunked.json()["field"] == "content-length"
    ok = client.post("/predict", content=body, headers={"content-type": "Application/JSON; charset=utf-8"})
    assert ok.status_code == 200


def test_api_key_guards_everything_but_health(built, records):
    with (
        serve_bento(built["tag"], bentoml_home=built["home"], env={"MLOPS_API_KEY": API_KEY}) as served,
        httpx.Client(base_url=served.url, timeout=30, limits=LIMITS) as c,
    ):
        body = {"records": records[:1]}
        assert c.post("/predict", json=body).status_code == 401
        assert c.post("/predict", json=body, headers={"x-api-key": "wrong"}).status_code == 401
        assert c.post("/predict", json=body, headers={"x-api-key": API_KEY}).status_code == 200
        for path in ("/metadata", "/metrics", "/docs.json"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"x-api-key": API_KEY}).status_code == 200, path
        assert c.post("/batch_predict", json=body).status_code == 401
        for path in ("/health", "/healthz", "/readyz"):
            assert c.get(path).status_code == 200, path
        metrics = c.get("/metrics", headers={"x-api-key": API_KEY}).text
        assert 'mlops_rejected_requests_total{endpoint="/predict",reason="unauthorized"} 2.0' in metrics


def test_fuzzed_feature_values_never_cause_a_server_error(client, records):
    pytest.importorskip("hypothesis")  # comes with the schemathesis test extra
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    names = list(records[0])
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=5,
    )

    @given(field=st.sampled_from(names), value=json_values, n=st.integers(1, 3))
    @settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(field, value, n):
        body = json.dumps({"records": [{**records[0], field: value}] * n})  # may hold NaN / Infinity tokens
        resp = client.post("/predict", content=body, headers={"content-type": "application/json"})
        assert resp.status_code < 500, resp.text

    check()


def test_ten_thousand_requests_without_an_error(server, records):
    """32 keep-alive connections; http.client in threads costs the client ~20x less CPU than httpx."""
    import http.client
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    total, connections = 10_000, 32
    bodies = [json.dumps({"records": [r]}).encode() for r in records]

    def worker(k: int) -> Counter:
        seen: Counter = Counter()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            for i in range(k, total, connections):
                try:
                    conn.request("POST", "/predict", bodies[i % len(bodies)], {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    seen[resp.status] += 1
                except (OSError, http.client.HTTPException) as err:
                    seen[type(err).__name__] += 1
                    conn.close()
        finally:
            conn.close()
        return seen

    with ThreadPoolExecutor(connections) as pool:
        outcomes = sum(pool.map(worker, range(connections)), Counter())
    assert outcomes == Counter({200: total})


def test_infra_validation_passes_for_the_bento_it_serves(built, holdout):
    """Starts and stops its own server."""
    good = validate_bento(built["tag"], holdout, built["good"], p95_budget_ms=1000, bentoml_home=built["home"])
    assert good.passed, good.reason
    assert (good.label_mismatches, good.errors, good.n_rows) == (0, 0, len(holdout))
    assert good.max_prob_diff <= 1e-6 and good.p95_ms <= 1000 and good.port > 0


def test_infra_validation_fails_with_a_reason(built, holdout, server):
    """Against the running module server (same bento), to save two server starts."""
    other = validate_bento(built["tag"], holdout, built["other"], p95_budget_ms=1000, url=server.url)
    assert not other.passed and "differ" in other.reason and other.label_mismatches + other.max_prob_diff > 0

    slow = validate_bento(built["tag"], holdout, built["good"], p95_budget_ms=0.001, url=server.url)
    assert not slow.passed and "p95 latency" in slow.reason and slow.label_mismatches == 0

    wrong = validate_bento("e2e-clf:not-this-one", holdout, built["good"], p95_budget_ms=1000, url=server.url)
    assert not wrong.passed and "not 'e2e-clf:not-this-one'" in wrong.reason


def test_bento_carries_its_generated_dockerfile(built):
    dockerfile = Path(built["dockerfile"])
    assert dockerfile.name == "Dockerfile" and dockerfile.is_relative_to(built["home"])
    assert "ENTRYPOINT" in dockerfile.read_text()
