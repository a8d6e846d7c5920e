"""The service's ASGI middleware in front of a stand-in app (no bentoml import, no server)."""

import ast
import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import prometheus_client
import pytest

from components.serving.gatekeeper import Gatekeeper, refuse_body

SERVING = Path(__file__).resolve().parents[2] / "components" / "serving"
KEY = "test-key"


async def inner_app(scope, receive, send):
    """Answers 422 on /batch_predict, 200 elsewhere."""
    status = 422 if scope["path"] == "/batch_predict" else 200
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"inner"})


class Client:
    """Just enough of an HTTP client to drive an ASGI app in-process."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method, path, *, json_body=None, content=None, headers=None):
        body = content if content is not None else b"" if json_body is None else json.dumps(json_body).encode()
        raw = {"content-length": str(len(body)), **(headers or {})}
        if json_body is not None:
            raw.setdefault("content-type", "application/json")
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in raw.items()],
        }
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        asyncio.run(self.app(scope, receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        text = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()
        return SimpleNamespace(status_code=start["status"], text=text, json=lambda: json.loads(text))

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setenv("MLOPS_API_KEY", KEY)
    app = Gatekeeper(inner_app, api_paths={"/predict", "/batch_predict"}, open_paths={"/health"}, max_body_bytes=100)
    return Client(app)


def _count(name, **labels):
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def test_refuse_body_wants_json_with_a_length_within_the_limit():
    assert refuse_body({b"content-type": b"text/csv", b"content-length": b"3"}, 10)[0] == 415
    assert refuse_body({b"content-type": b"application/json; charset=utf-8"}, 10)[0] == 411
    status, body = refuse_body({b"content-length": b"11"}, 10)
    assert (status, body) == (413, {"error": "records: request body exceeds 10 bytes", "field": "records"})
    assert refuse_body({b"content-length": b"10"}, 10) is None  # JSON is the default content type


def test_without_the_key_only_the_open_paths_answer(client):
    before = _count("mlops_rejected_requests_total", endpoint="/predict", reason="unauthorized")
    response = client.post("/predict", json_body=[])
    assert response.status_code == 401
    assert response.json() == {"error": "missing or wrong x-api-key header", "field": "x-api-key", "status": 401}
    assert client.get("/metadata", headers={"x-api-key": "wrong"}).status_code == 401
    assert client.get("/health").text == "inner"
    assert _count("mlops_rejected_requests_total", endpoint="/predict", reason="unauthorized") == before + 1


def test_with_the_key_api_calls_are_size_checked_and_measured(client):
    headers = {"x-api-key": KEY}
    before = _count("mlops_request_latency_seconds_count", endpoint="/predict")
    too_large = _count("mlops_rejected_requests_total", endpoint="/predict", reason="too_large")
    assert client.post("/predict", json_body=[], headers=headers).text == "inner"
    response = client.post("/predict", content=b"[" + b"0," * 60 + b"0]", headers=headers)
    assert response.status_code == 413 and response.json()["field"] == "records"
    assert response.json()["status"] == 413
    assert _count("mlops_request_latency_seconds_count", endpoint="/predict") == before + 1  # refusals not timed
    assert _count("mlops_rejected_requests_total", endpoint="/predict", reason="too_large") == too_large + 1


def test_other_methods_on_the_prediction_routes_get_405_in_the_error_format(client):
    before = _count("mlops_rejected_requests_total", endpoint="/predict", reason="405")
    response = client.get("/predict", headers={"x-api-key": KEY})
    assert (response.status_code, response.json()) == (405, {"error": "GET /predict: send POST", "field": None,
                                                             "status": 405})  # fmt: skip
    assert client.get("/metadata", headers={"x-api-key": KEY}).text == "inner"  # other routes: the app decides
    assert _count("mlops_rejected_requests_total", endpoint="/predict", reason="405") == before + 1


def test_4xx_answers_from_the_app_are_counted_as_rejections(client):
    before = _count("mlops_rejected_requests_total", endpoint="/batch_predict", reason="422")
    assert client.post("/batch_predict", json_body=[], headers={"x-api-key": KEY}).status_code == 422
    assert _count("mlops_rejected_requests_total", endpoint="/batch_predict", reason="422") == before + 1


def test_without_a_key_configured_nothing_is_asked(monkeypatch):
    monkeypatch.delenv("MLOPS_API_KEY", raising=False)
    app = Gatekeeper(inner_app, api_paths={"/predict"}, open_paths=(), max_body_bytes=100)
    assert Client(app).post("/predict", json_body=[]).text == "inner"


def test_every_flat_import_of_the_service_is_a_module_shipped_beside_it():
    """The bento gets every module of components/serving (package.py); service.py must need no other."""
    shipped = {p.stem for p in SERVING.glob("*.py")} - {"__init__", "service"}
    tree = ast.parse((SERVING / "service.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert {"request_schema", "micro_batching", "gatekeeper"} <= imported & shipped
    assert not any(m.startswith("components") for m in imported)  # the project is not inside a bento
