"""The three UIs a user looks at, opened in headless Chromium: shared by the browser test and `make screenshots`.

``ui_stack`` runs one small training run against a real ``prefect server`` (UI included), then serves
the project's MLflow store with ``mlflow server`` and the run's bento with ``bentoml serve``, all on
127.0.0.1 and all stopped when the block exits. ``Browser`` drives Debian's ``chromium`` through
Playwright (its own browser download is never used), and the ``*_page`` functions open one UI each,
wait for what a user would look for, and return the page's rendered text.

    python -m tests.e2e.ui_pages docs/screenshots     # what `make screenshots` runs
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import NAMED_FITS, ROOT, make_project
from tests.e2e.test_prefect_server import background, clean_env, free_port, wait_healthy

BIN = Path(sys.executable).parent
MODEL = "breast-cancer-classifier"
VIEWPORT = {"width": 1200, "height": 800}
WAIT_MS = 60_000  # for one element of a page to appear: the single-page apps fetch after they load


# ---------------------------------------------------------------- chromium


def can_install_chromium() -> tuple[bool, str]:
    """Whether ``apt-get install chromium`` may run here (as the Makefile's ``chromium`` target does), and why not."""
    if shutil.which("apt-get") is None:
        return False, "no apt-get (not a Debian-based system)"
    if os.geteuid() == 0:
        return True, "root"
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return True, "passwordless sudo"
    return False, "not root and no passwordless sudo"


def ensure_chromium() -> tuple[str | None, str]:
    """Debian's ``chromium``: its path, installing it first when missing and installable; else None and why."""
    found = shutil.which("chromium")
    if found:
        return found, "on PATH"
    able, why = can_install_chromium()
    if not able:
        return None, f"chromium is not on PATH and cannot be installed with apt-get: {why}"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        try:
            proc = subprocess.run([*sudo, "env", "DEBIAN_FRONTEND=noninteractive", *cmd], capture_output=True,
                                  text=True, timeout=900, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            return None, f"chromium is not on PATH and `{' '.join(cmd)}` did not finish in 15 minutes"
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            return None, f"chromium is not on PATH and `{' '.join(cmd)}` failed: {' | '.join(tail)}"
    found = shutil.which("chromium")
    return (found, "installed") if found else (None, "apt-get installed chromium but it is not on PATH")


class Browser:
    """Headless Chromium (the system's binary) under Playwright; one page per ``page()`` block."""

    def __init__(self, executable: str):
        self.executable = executable

    def __enter__(self) -> Browser:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(executable_path=self.executable, headless=True)
        except Exception:
            self._playwright.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._browser.close()
        finally:
            self._playwright.stop()

    @contextmanager
    def page(self):
        context = self._browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            yield page
        finally:
            context.close()


def screenshot(page, path: Path) -> None:
    """The viewport (1200x800) as a PNG quantized to a palette: a UI has few colours, so the file shrinks
    several times and the text stays sharp (a JPEG would blur it). Pillow comes with matplotlib."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=False)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


# ---------------------------------------------------------------- servers and the training run


@dataclass(frozen=True)
class Stack:
    project: Path
    prefect_url: str  # the UI; its API under /api
    mlflow_url: str
    service_url: str
    flow_run_id: str
    experiment_id: str
    parent_run_id: str
    version: str
    bento_tag: str


@contextmanager
def prefect_server(tmp: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` with its UI on a free port; yields the UI's URL and the env that talks to it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_env(
        PREFECT_HOME=str(tmp / "prefect-home"),
        PREFECT_API_URL=f"{url}/api",
        PREFECT_UI_API_URL=f"{url}/api",  # else the UI in the browser calls :4200 (README "The UI on another port")
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        BENTOML_HOME=str(tmp / "bentoml"),
    )
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-scheduler"]
    with background(cmd, env, tmp, tmp / "prefect-server.log") as proc:
        wait_healthy(f"{url}/api/health", proc)
        yield url, env


@contextmanager
def mlflow_server(project: Path, tmp: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`mlflow server` on the project's SQLite store (what `make ui` runs), on a free port; not waited for."""
    port = free_port()
    cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{project / 'mlflow.db'}",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    with background(cmd, clean_env(), project, tmp / "mlflow-server.log") as proc:
        yield f"http://127.0.0.1:{port}", proc


def train(project: Path, env: dict[str, str], tmp: Path) -> None:
    """`mlops run` on the project, its flow run recorded by the Prefect server in ``env``."""
    cmd = [str(BIN / "mlops"), "--params", str(project / "params.yaml"), "run"]
    cmd += [arg for override in NAMED_FITS for arg in ("--set", override)]
    proc = subprocess.run(cmd, env=env, cwd=project, capture_output=True, text=True, timeout=600, check=False)
    (tmp / "mlops-run.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"mlops run failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}"


def training_flow_run_id(prefect_url: str) -> str:
    body = {"flows": {"name": {"any_": ["training-pipeline"]}}, "sort": "START_TIME_DESC", "limit": 1}
    (flow_run,) = httpx.post(f"{prefect_url}/api/flow_runs/filter", json=body, timeout=10).json()
    return flow_run["id"]


def champion_runs(project: Path) -> tuple[str, str, str, str]:
    """The champion's version, bento tag, and the experiment and id of the training run's parent run."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    run = client.get_run(champion.run_id)  # the chosen candidate's child run
    parent_id = run.data.tags.get("mlflow.parentRunId", run.info.run_id)
    parent = client.get_run(parent_id)
    return str(champion.version), champion.tags["bento_tag"], parent.info.experiment_id, parent_id


@contextmanager
def ui_stack(tmp: Path, rows: int = 200) -> Iterator[Stack]:
    """One training run on ``rows`` rows, then the three UIs served; everything stopped on exit."""
    from components.release.bento_server import serve_bento

    project = make_project(tmp / "project", rows=rows)
    with ExitStack() as stack:
        prefect_url, env = stack.enter_context(prefect_server(tmp))
        train(project, env, tmp)
        flow_run_id = training_flow_run_id(prefect_url)
        version, bento_tag, experiment_id, parent_run_id = champion_runs(project)
        mlflow_url, mlflow_proc = stack.enter_context(mlflow_server(project, tmp))  # starts while the bento does
        served = stack.enter_context(serve_bento(bento_tag, bentoml_home=env["BENTOML_HOME"], timeout_s=180))
        wait_healthy(f"{mlflow_url}/health", mlflow_proc)
        yield Stack(project=project, prefect_url=prefect_url, mlflow_url=mlflow_url, service_url=served.url,
                    flow_run_id=flow_run_id, experiment_id=experiment_id, parent_run_id=parent_run_id,
                    version=version, bento_tag=bento_tag)  # fmt: skip


# ---------------------------------------------------------------- the pages


# MLflow 3's UI opens its Assistant panel on a browser's first visit (keys of its own local storage): as if
# a user had closed it once, so the run fills the screenshot.
_MLFLOW_ASSISTANT_CLOSED = """
localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
"""


def mlflow_run_page(page, stack: Stack, shot: Path | None = None) -> dict[str, object]:
    """The parent run's Overview tab (description, tags) and its Artifacts tab with ``plots/`` opened and
    its first PNG previewed: the text of each, the PNGs listed under ``plots/`` and the preview's width."""
    page.add_init_script(_MLFLOW_ASSISTANT_CLOSED)
    base = f"{stack.mlflow_url}/#/experiments/{stack.experiment_id}/runs/{stack.parent_run_id}"
    page.goto(f"{base}?workflowType=machine_learning")  # the "Model training" view, not GenAI
    page.get_by_role("button", name="Edit tags").wait_for()  # the run and its tags have loaded
    page.get_by_role("button", name="Toggle sidebar").click()  # room for description and details side by side
    _settle(page)
    overview = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    if shot:
        screenshot(page, shot)
    page.goto(f"{base}/artifacts?workflowType=machine_learning")
    page.get_by_text("plots", exact=True).first.click()  # open the folder: its files are listed beneath it
    listed = page.get_by_text(re.compile(r"^[\w.-]+\.png$"))
    listed.first.wait_for()
    pngs = sorted(set(listed.all_inner_texts()))
    page.get_by_text(pngs[0], exact=True).first.click()
    preview = page.locator(f'img[alt="plots/{pngs[0]}"]').first
    preview.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    width = preview.evaluate("img => img.naturalWidth")
    return {"overview": overview, "artifacts": page.inner_text("body"), "pngs": pngs, "preview_width": width}


def prefect_flow_run_page(page, stack: Stack, shot: Path | None = None) -> list[str]:
    """The flow run's page: its graph (the screenshot), then the Task Runs tab; the lines of that tab's text."""
    page.goto(f"{stack.prefect_url}/runs/flow-run/{stack.flow_run_id}")
    page.get_by_text("Task Runs", exact=True).first.wait_for()
    if shot:
        page.locator("canvas").first.wait_for()
        _settle(page)
        page.wait_for_timeout(1000)  # the graph is drawn on the canvas after its data arrived: no element to wait for
        screenshot(page, shot)
    page.get_by_text("Task Runs", exact=True).first.click()
    page.wait_for_url(re.compile(r"tab=Task\+Runs"))
    page.get_by_text("load dataset.parquet", exact=True).first.wait_for()  # the list has loaded
    return [line.strip() for line in page.inner_text("body").splitlines() if line.strip()]


def swagger_page(page, stack: Stack, shot: Path | None = None) -> dict[str, str]:
    """Swagger UI at ``/``: the /predict operation expanded (its example value, then its schema opened all
    the way down), then "Try it out" and "Execute" with the example as it stands; the texts, and the live
    response's status code and text."""
    page.goto(f"{stack.service_url}/")
    path = page.locator(".opblock-summary-path").filter(has_text=re.compile(r"^/predict$"))
    operation = page.locator(".opblock").filter(has=path).first
    operation.locator(".opblock-summary").first.click()
    body = operation.locator(".opblock-section-request-body")
    body.wait_for()
    example = body.inner_text()
    body.get_by_text("Schema", exact=True).first.click()
    _expand_models(body)
    schema = body.inner_text()
    body.get_by_text("Example Value", exact=True).first.click()
    if shot:
        operation.scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -60)")
        screenshot(page, shot)
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    live = operation.locator(".live-responses-table tbody .response-col_status").first
    live.wait_for()
    response = operation.locator(".live-responses-table").first.inner_text()
    return {"example": example, "schema": schema, "status": live.inner_text().strip(), "response": response}


def _settle(page, timeout_ms: int = 15_000) -> None:
    """Wait until the page has made no request for 500 ms (the app's parts have their data), or ``timeout_ms``:
    a page that keeps polling is read as it stands."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with suppress(PlaywrightTimeout):
        page.wait_for_load_state("networkidle", timeout=timeout_ms)


def _expand_models(section, limit: int = 50) -> None:
    """Open the collapsed parts of a Swagger schema view (``records`` -> its items -> a record's fields)."""
    for _ in range(limit):
        collapsed = section.locator(".model-toggle.collapsed")
        if not collapsed.count():
            return
        collapsed.first.click()


def contract_features() -> list[str]:
    from components.data.contract import load_contract

    return load_contract(ROOT / "contracts" / "breast_cancer.yaml").feature_columns()


# ---------------------------------------------------------------- make screenshots


def main(argv: list[str]) -> int:
    from tests import conftest

    out = Path(argv[0] if argv else ROOT / "docs" / "screenshots").resolve()
    executable, why = ensure_chromium()
    if executable is None:
        print(why, file=sys.stderr)
        return 1
    try:
        with (
            tempfile.TemporaryDirectory(prefix="mlops-screenshots-") as tmp,
            ui_stack(Path(tmp)) as stack,
            Browser(executable) as browser,
        ):
            for name, open_page in (("mlflow_run", mlflow_run_page), ("prefect_flow_run", prefect_flow_run_page),
                                    ("swagger", swagger_page)):  # fmt: skip
                with browser.page() as page:
                    open_page(page, stack, shot=out / f"{name}.png")
                print(f"{name}.png: {(out / f'{name}.png').stat().st_size // 1024} KB")
    finally:
        shutil.rmtree(conftest._SESSION_TMP, ignore_errors=True)  # made when tests.conftest was imported
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
