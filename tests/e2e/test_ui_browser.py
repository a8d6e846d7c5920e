"""The three UIs as a user sees them, in headless Chromium: MLflow's run page, Prefect's flow-run page and
the service's Swagger page, after one small training run (helpers and servers: tests/e2e/ui_pages.py).

Everything is read from the rendered DOM, after the single-page apps fetched their data. Debian's
`chromium` is installed by `make test` (or here) when missing; the module skips only when it cannot be.
"""

import re
from pathlib import Path

import httpx
import pytest

from tests.e2e import ui_pages

pytestmark = pytest.mark.slow
SHOT_MAX_BYTES = 200 * 1024


@pytest.fixture(scope="module")
def chromium() -> str:
    executable, why = ui_pages.ensure_chromium()
    if executable is None:
        pytest.skip(why)
    return executable


@pytest.fixture(scope="module")
def stack(chromium, tmp_path_factory):
    with ui_pages.ui_stack(tmp_path_factory.mktemp("ui-browser")) as started:
        yield started


@pytest.fixture(scope="module")
def browser(chromium):
    with ui_pages.Browser(chromium) as started:
        yield started


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def _opened(browser, open_page, stack, shot: Path):
    with browser.page() as page:
        return open_page(page, stack, shot=shot)


@pytest.fixture(scope="module")
def mlflow_page(browser, stack, shots):
    return _opened(browser, ui_pages.mlflow_run_page, stack, shots / "mlflow_run.png")


@pytest.fixture(scope="module")
def prefect_page(browser, stack, shots):
    return _opened(browser, ui_pages.prefect_flow_run_page, stack, shots / "prefect_flow_run.png")


@pytest.fixture(scope="module")
def swagger(browser, stack, shots):
    return _opened(browser, ui_pages.swagger_page, stack, shots / "swagger.png")


def _words(text: str) -> str:
    return " ".join(text.split())


def test_mlflow_run_page_shows_the_gate_verdict(mlflow_page):
    """The parent run's Overview: its tags hold the gate's decision (the first model always promotes: no
    champion to beat), and its description (``mlflow.note.content``) is the run's summary."""
    overview = _words(mlflow_page["overview"])
    assert re.search(r"gate\.decision ?: promote\b", overview), overview
    assert "gate.reason" in overview, overview
    assert "No description" not in overview, overview


def test_mlflow_run_page_lists_and_previews_the_plots(mlflow_page, stack):
    from mlflow import MlflowClient

    uri = f"sqlite:///{stack.project / 'mlflow.db'}"
    stored = MlflowClient(tracking_uri=uri).list_artifacts(stack.parent_run_id, "plots")
    pngs = sorted(Path(f.path).name for f in stored if f.path.endswith(".png"))
    assert pngs and mlflow_page["pngs"] == pngs  # every PNG under plots/, as the store has them
    assert mlflow_page["preview_width"] > 0  # and the first one renders in the preview pane


def test_prefect_flow_run_page_lists_the_named_fits(prefect_page, stack):
    lines = set(prefect_page)
    assert {"fit logreg", "fit hgb · trial 0", "fit hgb · trial 1", "log logreg", "log hgb"} <= lines, prefect_page
    assert not [line for line in lines if line.startswith(("fit-candidate-", "log-candidate-"))], prefect_page
    body = {"flow_runs": {"id": {"any_": [stack.flow_run_id]}}}
    task_runs = httpx.post(f"{stack.prefect_url}/api/task_runs/filter", json=body, timeout=10).json()
    assert task_runs and {run["name"] for run in task_runs} <= lines  # the tab lists every task run


def test_swagger_shows_every_contract_feature(swagger):
    """/predict expanded: the request schema names each of the contract's features, and so does the example."""
    features = ui_pages.contract_features()
    assert len(features) == 30
    missing_in_schema = [name for name in features if name not in swagger["schema"]]
    assert not missing_in_schema, f"not in the rendered request schema: {missing_in_schema}\n{swagger['schema']}"
    missing_in_example = [name for name in features if f'"{name}":' not in swagger["example"]]
    assert not missing_in_example, f"not in the example value: {missing_in_example}\n{swagger['example']}"


def test_swagger_example_executes_with_200(swagger):
    """ "Try it out" then "Execute", the example left as the document gives it: the service answers 200."""
    assert swagger["status"] == "200", swagger["response"]
    assert '"predictions"' in swagger["response"], swagger["response"]


def test_screenshots_are_small(mlflow_page, prefect_page, swagger, shots):
    from PIL import Image

    for name in ("mlflow_run", "prefect_flow_run", "swagger"):
        path = shots / f"{name}.png"
        with Image.open(path) as image:
            assert image.size == (ui_pages.VIEWPORT["width"], ui_pages.VIEWPORT["height"]), name
        assert 5_000 < path.stat().st_size < SHOT_MAX_BYTES, (name, path.stat().st_size)
