"""Image models as MLflow pyfuncs and as bentos: the pyfunc round trip, and the bento served for real (slow).

The served part builds one bento in a subprocess (its own BENTOML_HOME and SQLite store): a small CNN
trained on the bundled digits, logged, registered and packaged, then served with `bentoml serve` on a
free loopback port.
"""

import ast
import io
import re
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.images.pyfunc import IMAGE_MODULES, log_image_model
from tests.conftest import build_in_subprocess

ROOT = Path(__file__).resolve().parents[2]
SERVING = ROOT / "components" / "serving"


def png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    """One (1, H, W) image in [0, 1] as encoded bytes."""
    out = io.BytesIO()
    Image.fromarray((pixels[0] * 255).round().astype(np.uint8), "L").save(out, fmt)
    return out.getvalue()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    return found | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_shipped_image_modules_import_nothing_else_of_the_project():
    """A logged model carries components/model and IMAGE_MODULES only: they must be all it imports."""
    for name in IMAGE_MODULES:
        ours = {m for m in _imports(ROOT / "components" / "images" / f"{name}.py") if m.startswith("components")}
        outside = {m for m in ours if not m.startswith("components.model")} - {
            f"components.images.{n}" for n in IMAGE_MODULES
        }
        assert not outside, f"components/images/{name}.py imports {outside}, which a logged model lacks"


def test_the_image_service_imports_only_modules_shipped_beside_it():
    shipped = {p.stem for p in SERVING.glob("*.py")} - {"__init__"}
    for name in ("image_service", "image_requests"):
        imported = _imports(SERVING / f"{name}.py")
        assert not any(m.startswith("components") for m in imported)
        assert {"gatekeeper"} <= imported & shipped


@pytest.fixture(scope="module")
def logged(cnn, digits, tmp_path_factory):
    """The CNN logged in a temporary store; test images as files, bytes and arrays."""
    import mlflow

    from components.release import registry

    home = tmp_path_factory.mktemp("image-pyfunc")
    registry.configure_tracking(home, experiment="image-tests")
    X, y = digits["test"]
    X, y = X[:12], y[:12]
    paths = []
    for i, pixels in enumerate(X):
        paths.append(home / f"{i}.png")
        paths[-1].write_bytes(png(pixels))
    with mlflow.start_run():
        uri = log_image_model(cnn, pd.DataFrame({"image": [str(p) for p in paths]}))
    return {"uri": uri, "paths": paths, "X": X, "y": y, "pyfunc": mlflow.pyfunc.load_model(uri)}


def test_paths_bytes_and_arrays_give_the_in_process_answer(logged, cnn):
    expected = cnn.predict_frame(logged["X"])
    # the PNGs hold the pixels rounded to 8 bits: compare each way with the in-process model on the same input
    by_path = logged["pyfunc"].predict(pd.DataFrame({"image": [str(p) for p in logged["paths"]]}))
    by_bytes = logged["pyfunc"].predict(pd.DataFrame({"image": [p.read_bytes() for p in logged["paths"]]}))
    by_array = logged["pyfunc"].predict(pd.DataFrame({"image": list(logged["X"])}))
    pd.testing.assert_frame_equal(by_path, by_bytes)
    pd.testing.assert_frame_equal(by_path, cnn.predict_frame([str(p) for p in logged["paths"]]))
    pd.testing.assert_frame_equal(by_array, expected)
    assert list(by_path.columns) == ["label", "probability", *(f"proba_{c}" for c in cnn.classes)]


def test_extra_columns_are_ignored_and_rows_keep_their_index(logged):
    frame = pd.DataFrame({"image": list(logged["X"][:3]), "label": logged["y"][:3], "sha256": ["a", "b", "c"]},
                         index=[10, 11, 12])  # fmt: skip
    out = logged["pyfunc"].predict(frame)
    assert list(out.index) == [10, 11, 12]
    assert out["label"].tolist() == logged["pyfunc"].predict(frame[["image"]])["label"].tolist()


def test_champion_scores_read_the_image_pyfunc(logged, cnn):
    from components.evaluation.assess import champion_scores

    test = pd.DataFrame({"image": [str(p) for p in logged["paths"]], "label": logged["y"]})
    scores = champion_scores(logged["uri"], test, "label", task="multiclass", classes=cnn.classes)
    assert scores.shape == (len(test), len(cnn.classes))
    np.testing.assert_allclose(scores, cnn.predict_proba(test["image"].tolist()), atol=1e-7)


def test_the_logged_model_holds_no_pickle(logged):
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(logged["uri"]))
    names = {p.name for p in local.rglob("*") if p.is_file()}
    assert "image_model.json" in names and "MLmodel" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".cloudpickle"))]


def test_an_example_the_model_cannot_read_stops_logging_naming_it(cnn, tmp_path):
    with pytest.raises(ValueError, match="image"):
        log_image_model(cnn, pd.DataFrame({"path": ["x.png"]}))
    with pytest.raises(ValueError, match="not an image"):
        log_image_model(cnn, pd.DataFrame({"image": [b"garbage"]}))


def test_the_bento_config_must_agree_with_the_model():
    from components.images.bento import image_serving_config
    from components.images.pixels import ImageSpec

    spec = ImageSpec(8, 8)
    own = {"kind": "image", "classes": ["0", "1"], "image": spec.to_dict(), "task": "binary"}
    assert image_serving_config(own, ["0", "1"], spec, 10, 100)["classes"] == ["0", "1"]
    with pytest.raises(ValueError, match="^classes:"):
        image_serving_config(own, ["1", "0"], spec, 10, 100)
    with pytest.raises(ValueError, match="^image:"):
        image_serving_config(own, ["0", "1"], ImageSpec(16, 16), 10, 100)
    with pytest.raises(ValueError, match="^max_batch:"):
        image_serving_config(own, ["0", "1"], spec, 0, 100)
    with pytest.raises(ValueError, match="^model:"):
        image_serving_config({"task": "binary"}, ["0", "1"], spec, 10, 100)


def test_uploads_must_be_multipart_within_the_limit(monkeypatch):
    monkeypatch.syspath_prepend(str(SERVING))  # the module imports its neighbours flat, as inside a bento
    from image_requests import refuse_upload

    multipart = b"multipart/form-data; boundary=x"
    assert refuse_upload({b"content-type": multipart, b"content-length": b"100"}, 100, "image") is None
    assert refuse_upload({b"content-type": multipart, b"content-length": b"101"}, 100, "image")[:1] == (413,)
    assert refuse_upload({b"content-type": multipart}, 100, "image")[0] == 411
    status, error, field = refuse_upload({b"content-type": b"application/json"}, 100, "image")
    assert (status, field) == (415, "image") and "multipart/form-data" in error


# ---- the bento, served for real ------------------------------------------------------------------

MAX_BATCH, MAX_IMAGE_BYTES, API_KEY = 16, 20_000, "image-e2e-key"

BUILD = """
import json, sys, io
from pathlib import Path
import mlflow, numpy as np, pandas as pd
from PIL import Image
from sklearn.datasets import load_digits
from components.images.bento import build_image_bento
from components.images.image_model import TORCH_CNN, train_image_candidate
from components.images.pyfunc import log_image_model
from components.release import registry

root, home, max_batch, max_bytes = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = load_digits()
X, y = (data.images / 16.0).astype(np.float32)[:, None], data.target.astype(str)
model = train_image_candidate("cnn", TORCH_CNN, {"epochs": 4}, X[:1200], y[:1200], X[1200:1500], y[1200:1500], seed=0)
images = home / "images"
images.mkdir()
paths = []
for i, pixels in enumerate(X[1500:1540]):
    fmt = "JPEG" if i == 0 else "PNG"
    paths.append(images / f"{i}.{fmt.lower()}")
    Image.fromarray((pixels[0] * 255).round().astype(np.uint8), "L").save(paths[-1], fmt)
registry.configure_tracking(home, experiment="image-tests")
with mlflow.start_run() as run:
    uri = log_image_model(model, pd.DataFrame({"image": [str(p) for p in paths]}))
version = registry.register(uri, "digits", run.info.run_id, {}).version
tag = build_image_bento(registered_model="digits", version=version, service_name="digits-e2e",
                        metadata={"dataset_md5": "e2e-md5"}, constraints=root / "constraints.txt",
                        max_batch=max_batch, classes=model.classes, image=model.image, max_image_bytes=max_bytes)
local = mlflow.artifacts.download_artifacts(uri, dst_path=str(home / "model"))
print(json.dumps({"tag": tag, "model": local, "paths": [str(p) for p in paths]}))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("image-bento")
    out = build_in_subprocess(BUILD, home, str(MAX_BATCH), str(MAX_IMAGE_BYTES))
    return {**out, "home": str(home / "bentoml")}


@pytest.fixture(scope="module")
def reference(built):
    """The registered pyfunc's answers on the files, by path."""
    import mlflow

    frame = pd.DataFrame({"image": built["paths"]})
    return mlflow.pyfunc.load_model(built["model"]).predict(frame)


@pytest.fixture(scope="module")
def client(built):
    from components.release.bento_server import serve_bento

    with (
        serve_bento(built["tag"], bentoml_home=built["home"], timeout_s=180, env={"MLOPS_API_KEY": API_KEY}) as served,
        httpx.Client(base_url=served.url, timeout=30, headers={"x-api-key": API_KEY}) as c,
    ):
        yield c


def _upload(path: str, field: str = "image") -> tuple[str, tuple[str, bytes, str]]:
    kind = "image/jpeg" if path.endswith(".jpeg") else "image/png"
    return field, (Path(path).name, Path(path).read_bytes(), kind)


def _agrees(answer: dict, row: pd.Series) -> None:
    assert answer["label"] == row["label"]
    for name, p in answer["probabilities"].items():
        assert p == pytest.approx(row[f"proba_{name}"], abs=1e-5)


@pytest.mark.slow
def test_a_png_and_a_jpeg_get_the_pyfuncs_answer(client, built, reference):
    for i in (1, 0):  # file 0 is the JPEG
        resp = client.post("/predict_image", files=[_upload(built["paths"][i])])
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model_version"] == "1" and set(body["probabilities"]) == {str(d) for d in range(10)}
        _agrees(body, reference.iloc[i])


@pytest.mark.slow
def test_the_batch_endpoint_answers_every_image_in_order(client, built, reference):
    files = [_upload(p, "images") for p in built["paths"][:MAX_BATCH]]
    resp = client.post("/predict_images", files=files)
    assert resp.status_code == 200, resp.text
    predictions = resp.json()["predictions"]
    assert len(predictions) == MAX_BATCH
    for i, answer in enumerate(predictions):
        _agrees(answer, reference.iloc[i])
    too_many = client.post("/predict_images", files=[*files, files[0]])
    assert too_many.status_code == 413 and too_many.json()["field"] == "images"


def _bomb() -> bytes:
    """A 3000 x 3000 black PNG: a few KB that would decode to 9 megapixels."""
    out = io.BytesIO()
    Image.new("L", (3000, 3000)).save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("files", "status", "error"),
    [
        ({"image": ("bad.png", b"not an image at all", "image/png")}, 400, r"^image: not an image"),
        ({"image": ("cut.png", None, "image/png")}, 400, r"^image: "),
        ({"image": ("empty.png", b"", "image/png")}, 400, r"^image: empty"),
        ({"file": ("a.png", None, "image/png")}, 400, r"^image: missing.*'file'"),
        ({"image": ("big.png", b"\x89PNG" + b"0" * MAX_IMAGE_BYTES, "image/png")}, 413, r"^image: .*over the limit"),
        ({"image": ("huge.png", b"0" * 200_000, "image/png")}, 413, r"^image: request body .* exceeds"),
        ({"image": ("bomb.png", "bomb", "image/png")}, 413, r"^image: too many pixels"),
    ],
)
def test_bad_uploads_are_4xx_naming_the_problem(client, built, files, status, error):
    (field, (name, data, kind)), = files.items()  # fmt: skip
    good = Path(built["paths"][1]).read_bytes()
    data = {None: good[: len(good) // 2] if name == "cut.png" else good, "bomb": _bomb()}.get(data, data)
    resp = client.post("/predict_image", files={field: (name, data, kind)})
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status"] == status and body["field"] == "image" and re.search(error, body["error"]), body


@pytest.mark.slow
def test_key_probes_metadata_and_metrics(client, built):
    url = str(client.base_url).rstrip("/")
    unkeyed = httpx.post(f"{url}/predict_image", files=[_upload(built["paths"][1])])
    assert unkeyed.status_code == 401 and unkeyed.json()["field"] == "x-api-key"
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    meta = client.get("/metadata").json()
    assert meta["bento_tag"] == built["tag"] and meta["model_version"] == "1" and meta["registered_model"] == "digits"
    assert meta["classes"] == [str(d) for d in range(10)] and meta["image"]["width"] == 8
    client.post("/predict_image", files=[_upload(built["paths"][2])])
    client.post("/predict_image", files={"image": ("bad.png", b"nope", "image/png")})
    text = client.get("/metrics").text
    for series in (
        r'mlops_predictions_total\{label="\d",model_version="1"\} [1-9]',
        r'mlops_request_latency_seconds_count\{endpoint="/predict_image"\} [1-9]',
        r'mlops_rejected_requests_total\{endpoint="/predict_image",reason="invalid"\} [1-9]',
        r"mlops_model_batch_rows_count [1-9]",
        r'mlops_low_confidence_predictions_total\{model_version="1"\}',
    ):
        assert re.search(series, text), series


@pytest.mark.slow
def test_infra_validation_of_the_image_bento_passes(built):
    from components.images.infra import validate_image_bento

    rows = pd.DataFrame({"image": built["paths"], "label": ["?"] * len(built["paths"])})
    report = validate_image_bento(built["tag"], rows, built["model"], p95_budget_ms=2000,
                                  bentoml_home=built["home"], timeout_s=180)  # fmt: skip
    assert report.passed, report.reason
    assert report.n_rows == len(rows) and report.label_mismatches == 0 and report.max_prob_diff <= 1e-5
    assert report.n_requests == len(rows) + -(-len(rows) // MAX_BATCH)
