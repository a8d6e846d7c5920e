"""Image serving throughput, and the float CNN against its dynamic int8 quantization.

    .venv/bin/python benchmarks/images.py [--images 256] [--clients 4] [--epochs 8]

Trains the digits CNN (bundled sklearn digits, no network), logs and registers it in a temporary MLflow
store, builds its image bento in a temporary BENTOML_HOME and serves it on a free loopback port. Then:

- throughput: images/s served one per request (``/predict_image``, ``--clients`` concurrent clients),
  served 64 per request (``/predict_images``), and in process (``ImageModel.predict_proba`` on the same
  PNG bytes: the ceiling, decoding included);
- float vs quantized: accuracy on the held-out images, state_dict bytes, median latency per batch and
  per image (``quantize.quantization_report``).

Prints the tables only (it does not write benchmarks/RESULTS.md). A short run: seconds of training, a
few seconds of serving; latencies on a shared machine are noisy, read them as orders of magnitude.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
log = logging.getLogger("bench.images")
BATCH = 64


def _digits():
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X, y = (data.images / 16.0).astype(np.float32)[:, None], data.target.astype(str)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=0.2, random_state=0, stratify=y_rest)
    return (X_train, y_train), (X_val, y_val), (X_test, y_test)


def _png(pixels) -> bytes:
    import numpy as np
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray((pixels[0] * 255).round().astype(np.uint8), "L").save(out, "PNG")
    return out.getvalue()


def _single(url: str, images: list[bytes], clients: int) -> tuple[float, list[float]]:
    """(images/s, per-request ms) with one image per request over ``clients`` concurrent connections."""
    import httpx

    def send(part: list[bytes]) -> list[float]:
        times = []
        with httpx.Client(base_url=url, timeout=30) as client:
            for data in part:
                t0 = time.perf_counter()
                resp = client.post("/predict_image", files={"image": ("x.png", data, "image/png")})
                times.append((time.perf_counter() - t0) * 1000)
                resp.raise_for_status()
        return times

    parts = [images[i::clients] for i in range(clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [ms for times in pool.map(send, parts) for ms in times]
    return len(images) / (time.perf_counter() - start), latencies


def _batched(url: str, images: list[bytes]) -> tuple[float, list[float]]:
    """(images/s, per-request ms) with ``BATCH`` images per ``/predict_images`` request, one client."""
    import httpx

    latencies = []
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(0, len(images), BATCH):
            files = [("images", (f"{j}.png", d, "image/png")) for j, d in enumerate(images[i : i + BATCH])]
            t0 = time.perf_counter()
            client.post("/predict_images", files=files).raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)
    return len(images) / (time.perf_counter() - start), latencies


def _in_process(model, images: list[bytes]) -> float:
    model.predict_proba(images[:BATCH])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(images), BATCH):
        model.predict_proba(images[i : i + BATCH])
    return len(images) / (time.perf_counter() - start)


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images sent per measurement")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for one-image requests")
    parser.add_argument("--epochs", type=int, default=8, help="CNN training epochs (accuracy, not speed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        return _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, tmp: Path) -> int:
    os.environ.update({"BENTOML_HOME": str(tmp / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
                       "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})  # fmt: skip
    os.environ.pop("MLFLOW_TRACKING_URI", None)

    import mlflow
    import pandas as pd

    from components.images.bento import build_image_bento
    from components.images.image_model import TORCH_CNN, train_image_candidate
    from components.images.pyfunc import log_image_model
    from components.images.quantize import quantization_report, quantize_dynamic_int8
    from components.release import registry
    from components.release.bento_server import serve_bento

    (X, y), (X_val, y_val), (X_test, y_test) = _digits()
    model = train_image_candidate("cnn", TORCH_CNN, {"epochs": args.epochs}, X, y, X_val, y_val, seed=0)
    report = quantization_report(model, quantize_dynamic_int8(model), X_test, y_test, repeats=3)
    pngs = [_png(X_test[i % len(X_test)]) for i in range(args.images)]

    registry.configure_tracking(tmp, experiment="bench-images")
    with mlflow.start_run() as run:
        uri = log_image_model(model, pd.DataFrame({"image": pngs[:5]}))
    version = registry.register(uri, "digits-bench", run.info.run_id, {}).version
    tag = build_image_bento(registered_model="digits-bench", version=version, service_name="digits-bench",
                            metadata={}, constraints=ROOT / "constraints.txt", max_batch=BATCH,
                            classes=model.classes, image=model.image)  # fmt: skip
    with serve_bento(tag, timeout_s=180) as served:
        _single(served.url, pngs[: args.clients * 4], args.clients)  # warm-up
        single_rate, single_ms = _single(served.url, pngs, args.clients)
        batch_rate, batch_ms = _batched(served.url, pngs)
    local_rate = _in_process(model, pngs)

    print(f"\nImage serving, digits CNN, {args.images} PNG images of 8x8 ({tag})\n")
    print("| path | images/s | p50 ms/request | p95 ms/request |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| /predict_image, {args.clients} clients | {single_rate:,.0f} | {_p(single_ms, 50):.1f} | "
          f"{_p(single_ms, 95):.1f} |")  # fmt: skip
    print(f"| /predict_images, {BATCH} per request | {batch_rate:,.0f} | {_p(batch_ms, 50):.1f} | "
          f"{_p(batch_ms, 95):.1f} |")  # fmt: skip
    print(f"| in-process predict_proba, {BATCH} per call | {local_rate:,.0f} | - | - |")
    r = report
    print(f"\nFloat vs dynamic int8 CNN, {r['n_rows']} held-out images, median of {r['repeats']} rounds\n")
    print("| model | accuracy | state_dict bytes | ms per batch | ms per image |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind in ("float", "quantized"):
        batch_ms, row_ms = (1000 * r[f"latency_{what}_seconds_{kind}"] for what in ("batch", "row"))
        print(f"| {kind} | {r[f'accuracy_{kind}']:.4f} | {r[f'size_bytes_{kind}']:,} | {batch_ms:.2f} | {row_ms:.3f} |")
    print(f"\nagreement {r['agreement']:.4f}, size ratio {r['size_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
