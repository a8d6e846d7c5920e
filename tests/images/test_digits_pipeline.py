"""The digits pipeline end to end, as a user runs it: `mlops ingest` (a real `dvc add`), `mlops run` (the
image flow on Prefect's temporary API, a real SQLite MLflow store, a real bento served for infra
validation), `mlops serve` with an uploaded PNG over HTTP, and `dvc repro` in the pipeline's folder.

The data is scikit-learn's bundled digits, plus a corrupt file and a wrong-sized one added the way a
user's folder gets them: the contract quarantines both and the report names them.
"""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image

from components.config import apply_overrides, load_raw
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", DVC_NO_ANALYTICS="true",
           GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
           GIT_COMMITTER_EMAIL="t@example.com", PREFECT_SERVER_ANALYTICS_ENABLED="false")  # fmt: skip
ENV.pop("MLFLOW_TRACKING_URI", None)
ENV.pop("PREFECT_API_URL", None)
ENV.pop("BENTOML_HOME", None)  # the pipeline's own store under pipelines/digits/.bentoml, as for a user
FAST = ["promote.n_resamples=200", "train.candidates.cnn.search=null"]  # written into the copy's params.yaml


def sh(cwd: Path, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900, check=False)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def mlops(repo: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return sh(repo, str(BIN / "mlops"), "--params", "pipelines/digits/params.yaml", *args, ok=ok)


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC repository holding the digits pipeline folder and the code its dvc.yaml depends on."""
    repo = tmp_path_factory.mktemp("digits-repo")
    written = shutil.ignore_patterns("data", "mlflow.db", "mlartifacts", ".bentoml", ".mlops", "runs")
    shutil.copytree(ROOT / "pipelines" / "digits", repo / "pipelines" / "digits", ignore=written)
    for code in ("components", "flows"):
        shutil.copytree(ROOT / code, repo / code, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "constraints.txt", repo / "constraints.txt")
    params = repo / "pipelines" / "digits" / "params.yaml"  # in the file, so `mlops run` and `dvc repro` agree
    params.write_text(yaml.safe_dump(apply_overrides(load_raw(params), FAST), sort_keys=False))
    sh(repo, "git", "init", "-q")
    sh(repo, str(BIN / "dvc"), "init", "-q")
    return repo


def test_ingest_writes_a_dvc_tracked_folder_of_pngs(repo):
    out = mlops(repo, "ingest").stdout
    folder = repo / "pipelines" / "digits" / "data" / "digits"
    tracked = yaml.safe_load((folder.parent / "digits.dvc").read_text())["outs"][0]
    assert tracked["md5"].endswith(".dir") and tracked["nfiles"] == 1797
    assert tracked["md5"] in out
    assert sorted(p.name for p in folder.iterdir()) == [str(d) for d in range(10)]
    assert Image.open(next((folder / "3").iterdir())).size == (8, 8)
    again = mlops(repo, "ingest").stdout  # deterministic bytes: the same version
    assert tracked["md5"] in again


def test_run_quarantines_bad_files_trains_gates_and_promotes(repo):
    folder = repo / "pipelines" / "digits" / "data" / "digits"
    (folder / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "5" / "too-big.png").write_bytes(png(np.full((16, 16), 128)))
    sh(folder.parent, str(BIN / "dvc"), "add", "-q", "digits")  # the user versions the folder they changed
    md5 = yaml.safe_load((folder.parent / "digits.dvc").read_text())["outs"][0]["md5"]

    out = mlops(repo, "run").stdout
    assert "registered: `digits-classifier` version 1 (@champion)" in out, out[-3000:]

    import mlflow

    store = repo / "pipelines" / "digits" / "mlflow.db"
    client = mlflow.MlflowClient(f"sqlite:///{store}", registry_uri=f"sqlite:///{store}")
    version = client.get_model_version("digits-classifier", "1")
    assert version.tags["dataset_md5"] == md5  # DVC's directory hash is the lineage
    assert version.tags["task"] == "multiclass"
    assert version.tags["decision"] == "promote"
    assert "50 images: labels equal" in version.tags["infra_validation"]  # one by one and batched, as the pyfunc
    parent = client.get_run(version.tags["pipeline_run_id"])
    report = Path(client.download_artifacts(parent.info.run_id, "validation/validation_report.json", str(repo)))
    files = json.loads(report.read_text())["files"]
    flagged = {(f["path"], f["rule"], f["severity"]) for f in files}
    assert ("3/broken.png", "unreadable", "quarantine") in flagged
    assert ("5/too-big.png", "wrong_size", "quarantine") in flagged
    decision = json.loads(Path(client.download_artifacts(parent.info.run_id, "promotion_decision.json",
                                                          str(repo))).read_text())  # fmt: skip
    assert set(decision["behaviour"]) == {"brighter_by_0.1", "one_pixel_moves", "golden_digits"}
    assert all(test["passed"] for test in decision["behaviour"].values())
    slices = json.loads(Path(client.download_artifacts(version.run_id, "slices.json", str(repo))).read_text())
    assert set(slices) == {f"label={d}" for d in range(10)}  # one slice per class, on the version's run
    assert 0.5 < client.get_run(version.run_id).data.metrics["test_recall.label_3"] <= 1.0

    again = mlops(repo, "run").stdout  # nothing changed: no new version, the champion named
    assert "nothing changed" in again.lower() and "v1" in again
    assert [str(v.version) for v in client.search_model_versions("name='digits-classifier'")] == ["1"]


def test_serve_answers_an_uploaded_png_and_refuses_a_corrupt_one(repo):
    from components.release.bento_server import free_port

    port = free_port()
    serve = [str(BIN / "mlops"), "--params", "pipelines/digits/params.yaml", "serve", "--port", str(port)]
    proc = subprocess.Popen(serve, cwd=repo, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        three = (repo / "pipelines" / "digits" / "golden" / "three.png").read_bytes()
        answer = httpx.post(f"{url}/predict_image", files={"image": ("three.png", three, "image/png")}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["label"] == "3" and body["model_version"] == "1"
        assert set(body["probabilities"]) == {str(d) for d in range(10)}
        bad = httpx.post(f"{url}/predict_image", files={"image": ("x.png", b"not an image", "image/png")}, timeout=30)
        assert bad.status_code == 400
        assert bad.json()["field"] == "image"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def test_dvc_repro_in_the_pipeline_folder_runs_the_same_pipeline(repo):
    folder = repo / "pipelines" / "digits"
    out = sh(folder, str(BIN / "dvc"), "repro").stdout
    assert "Running stage 'pipeline'" in out
    assert "nothing changed" in out.lower()  # the same inputs as the last `mlops run`: no second version
    assert (folder / "dvc.lock").is_file()
    out = sh(folder, str(BIN / "dvc"), "repro").stdout
    assert "Running stage" not in out


def test_search_on_dask_the_fit_cache_and_quantization_carry_images(repo):
    search = ["--set", "train.candidates.cnn.search={lr: {low: 0.001, high: 0.01, log: true}}",
              "--set", "train.search.n_trials=2", "--set", "train.parallel.engine=dask",
              "--set", "package.quantize=true"]  # fmt: skip
    out = mlops(repo, "run", *search).stdout
    trained, cached = map(int, re.search(r"fits: (\d+) trained, (\d+) from Prefect's cache", out).groups())
    assert (trained, trained + cached) in ((2, 3), (3, 3))  # two new CNN trials on Dask; the baseline maybe cached
    assert "quantized model accepted" in out or "quantized model refused" in out
    again = mlops(repo, "run", *search, "--set", "train.candidates.pixels_logreg.C=0.5").stdout
    assert "fits: 1 trained, 2 from Prefect's cache" in again  # only the changed candidate is fitted again
