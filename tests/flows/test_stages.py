"""The DVC stage CLI (flows/stages.py) on tiny data, and dvc.yaml's declarations against it."""

import ast
import inspect
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from components.config import apply_overrides, load_raw
from flows import stages
from tests.conftest import ROOT, make_project

TINY = [
    "train.candidates.hgb.max_iter=15",
    "train.candidates.mlp.enabled=false",  # keeps torch out of the fast tests; e2e covers it
]


def _dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _params() -> dict:
    return load_raw(ROOT / "params.yaml")


def _lookup(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        node = node[part]
    return node


def _resolved_stages() -> dict[str, dict]:
    """dvc.yaml stages with foreach expanded and ${...} filled from params.yaml (enough for these checks)."""
    params, out = _params(), {}

    def fill(value, item=None):
        text = json.dumps(value)
        if item is not None:
            text = text.replace("${item}", item)
        text = re.sub(r"\$\{([\w.]+)\}", lambda m: str(_lookup(params, m.group(1))), text)
        return json.loads(text)

    for name, stage in _dvc_yaml()["stages"].items():
        if "foreach" in stage:
            for item in stage["foreach"]:
                out[f"{name}@{item}"] = fill(stage["do"], item)
        else:
            out[name] = fill(stage)
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("stages"), rows=150)
    raw = apply_overrides(load_raw(root / "params.yaml"), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


def run(project, *args, out="runs/dvc") -> int:
    return stages.main(["--params", str(project / "params.yaml"), "--out", str(project / out), *args])


@pytest.fixture(scope="module")
def pipeline(project):
    candidates = [["train", c] for c in load_raw(project / "params.yaml")["train"]["candidates"]]
    for args in (["ingest"], ["validate"], ["split"], *candidates, ["evaluate"]):
        assert run(project, *args) == 0, args
    return project / "runs" / "dvc"


def test_write_json_is_sorted_and_byte_stable(tmp_path):
    a = stages.write_json(tmp_path / "a.json", {"b": np.float64(0.5), "a": [np.int64(1)]})
    b = stages.write_json(tmp_path / "b.json", {"a": [1], "b": 0.5})
    assert a.read_bytes() == b.read_bytes() == b'{\n  "a": [\n    1\n  ],\n  "b": 0.5\n}\n'


def test_save_model_makes_equal_models_equal_bytes_and_still_loads(pipeline, tmp_path):
    from components.data.dataset import features_and_target
    from components.model.files import load_model, save_model
    from components.training.families import train_candidate

    X, y = features_and_target(pd.read_parquet(pipeline / "split" / "train.parquet"), "target")
    params = {"C": 1.0, "max_iter": 200}
    dirs = [save_model(train_candidate("c", "sklearn_logreg", params, X, y, seed=1), tmp_path / f"m{i}")
            for i in range(2)]  # fmt: skip
    assert (dirs[0] / "estimator.skops").read_bytes() == (dirs[1] / "estimator.skops").read_bytes()
    original = train_candidate("c", "sklearn_logreg", params, X, y, seed=1).predict_proba(X)
    np.testing.assert_array_equal(load_model(dirs[0]).predict_proba(X), original)


def test_stages_write_what_dvc_yaml_declares(pipeline):
    declared = []
    for name, stage in _resolved_stages().items():
        if name != "release":
            declared += stage.get("outs", []) + stage.get("metrics", [])
    for path in declared:
        assert (pipeline.parents[1] / path).exists(), path
    dataset = json.loads((pipeline / "ingest" / "dataset.json").read_text())
    assert dataset["rows"] == 150 and dataset["path"] == "data/dataset.parquet"


def test_train_and_evaluate_match_the_components_called_directly(pipeline, project):
    from components.evaluation.metrics import choose_best, evaluate
    from components.training.families import train_candidate

    train, val = (pd.read_parquet(pipeline / "split" / f"{p}.parquet") for p in ("train", "val"))
    spec = dict(_lookup(load_raw(project / "params.yaml"), "train.candidates.hgb"))
    model = train_candidate("hgb", spec["family"], spec, train.drop(columns="target"), train["target"], seed=42)
    direct = evaluate(model, val, "target", "val")
    assert json.loads((pipeline / "metrics" / "val" / "hgb.json").read_text()) == direct.metrics

    result = json.loads((pipeline / "evaluate" / "result.json").read_text())
    assert set(result["candidates"]) == {"logreg", "hgb", "rf", "lgbm"}  # mlp disabled, ridge regression-only
    assert (pipeline / "models" / "mlp" / "disabled.json").is_file()
    assert (pipeline / "models" / "ridge" / "disabled.json").is_file()
    assert result["candidates"]["hgb"] == direct.metrics
    others = [type(direct)(c, "val", len(val), m) for c, m in result["candidates"].items() if c != "hgb"]
    assert result["chosen"] == choose_best([*others, direct], "roc_auc").candidate
    assert json.loads((pipeline / "metrics" / "test.json").read_text()) == result["test_metrics"]


def test_rerunning_a_stage_gives_identical_bytes(pipeline, project):
    before = {p.name: p.read_bytes() for p in (pipeline / "models" / "hgb").iterdir()}
    before["metrics"] = (pipeline / "metrics" / "val" / "hgb.json").read_bytes()
    assert run(project, "train", "hgb") == 0
    after = {p.name: p.read_bytes() for p in (pipeline / "models" / "hgb").iterdir()}
    after["metrics"] = (pipeline / "metrics" / "val" / "hgb.json").read_bytes()
    assert after == before


def test_outputs_hold_no_absolute_paths(pipeline, project):
    for path in pipeline.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".html"):
            assert str(project) not in path.read_text(), path


def test_rejected_data_exits_4_with_a_report_and_no_accepted_rows(project, capsys):
    data = project / "data" / "dataset.parquet"
    original = data.read_bytes()
    bad = pd.read_parquet(data)
    bad.loc[:20, "mean radius"] = -5.0
    bad.to_parquet(data)
    try:
        assert run(project, "ingest", out="bad") == 0
        assert run(project, "validate", out="bad") == stages.EXIT_REJECTED
    finally:
        data.write_bytes(original)
    assert "mean radius" in capsys.readouterr().err
    assert (project / "bad" / "validate" / "report" / "validation_report.html").is_file()
    assert not (project / "bad" / "validate" / "accepted.parquet").exists()


def test_missing_data_and_bad_params_exit_with_the_cli_codes(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    assert stages.main(["--params", str(tmp_path / "params.yaml"), "ingest"]) == stages.EXIT_NO_DATA
    assert stages.main(["--params", str(tmp_path / "nope.yaml"), "ingest"]) == stages.EXIT_CONFIG
    assert stages.main(["--params", str(tmp_path / "params.yaml"), "train", "svm"]) == stages.EXIT_CONFIG


def test_params_listed_per_stage_exist_and_train_lists_only_its_own_keys():
    params = _params()
    resolved = _resolved_stages()
    for stage in resolved.values():
        for key in stage.get("params", []):
            _lookup(params, key)  # KeyError names a key dvc.yaml lists but params.yaml lacks
    candidates = list(params["train"]["candidates"])
    assert _dvc_yaml()["stages"]["train"]["foreach"] == candidates
    for cand in candidates:
        # train.parallel is left out on purpose: the engine never changes results, so it re-runs nothing
        assert set(resolved[f"train@{cand}"]["params"]) == {
            "data.target", "train.seed", "train.search", f"train.candidates.{cand}",
            "evaluate.decision_threshold", "evaluate.primary_metric"}  # fmt: skip
        assert f"train.candidates.{cand}.enabled" in resolved["evaluate"]["params"]
        assert f"runs/dvc/models/{cand}" in resolved["evaluate"]["deps"]
    assert resolved["release"].get("frozen") is True and "outs" not in resolved["release"]


def test_paths_are_relative_and_outputs_stay_under_runs_dvc():
    text = (ROOT / "dvc.yaml").read_text()
    assert "/work/" not in text and not re.search(r"^\s*-\s*/", text, re.M)
    for stage in _resolved_stages().values():
        for path in stage.get("outs", []) + stage.get("metrics", []):
            assert path.startswith("runs/dvc/"), path
        for path in stage.get("deps", []):
            assert path.startswith("runs/dvc/") or (ROOT / path).exists() or path == "data/dataset.parquet", path


def _component_imports(func) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(inspect.getsource(func).lstrip())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "components":
                names |= {f"components/{a.name}.py" for a in node.names}
            elif node.module.startswith("components."):
                base = node.module.replace(".", "/")
                if (ROOT / base).is_dir():  # `from components.data import dataset`: modules of a package
                    names |= {f"{base}/{a.name}.py" for a in node.names}
                else:
                    names.add(base + ".py")
    return names


@pytest.mark.parametrize("stage", ["ingest", "validate", "split", "train", "evaluate", "release"])
def test_each_stage_lists_the_component_modules_it_imports(stage):
    resolved = _resolved_stages()
    deps = set(resolved["train@hgb" if stage == "train" else stage]["deps"])
    missing = _component_imports(getattr(stages, stage)) - deps
    assert not missing, f"{stage} imports {missing} but dvc.yaml does not list them"
    assert "flows/stages.py" in deps


def declared_plots_found(out_root) -> list[str]:
    """Check every data plot of dvc.yaml whose file the run wrote (each task writes its own); their paths."""
    found = []
    for plot in _dvc_yaml()["plots"]:
        if isinstance(plot, str):  # image plots
            continue
        (spec,) = plot.values()
        ((path, y),) = spec["y"].items()
        file = out_root / path
        if not file.is_file():
            continue
        if file.suffix == ".json":
            (rows,) = json.loads(file.read_text()).values()
            fields = set(rows[0])
        else:
            fields = set(pd.read_csv(file).columns)
        assert {spec["x"], y} <= fields, path
        found.append(path)
    return found


def test_plot_fields_declared_in_dvc_yaml_are_in_the_plot_files(pipeline):
    found = declared_plots_found(pipeline.parents[1])
    assert {p.rsplit("/", 1)[1] for p in found} == {"roc.json", "pr.json", "confusion.csv"}
