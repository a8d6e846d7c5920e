"""`mlops run` validates while Prefect's temporary API starts; the flow takes it only for its own inputs
(flows/early_validation.py)."""

import psutil
import pytest

from components.validation.report import DataRejectedError
from flows import early_validation, steps, validation_cache
from flows.completed_run import run_context
from tests.conftest import make_project


@pytest.fixture
def root(tmp_path):
    return make_project(tmp_path / "project", rows=120)


def _flow_ctx(root, overrides=None, data_path=None):
    """The context the flow resolves for itself: the same inputs, a run folder of its own."""
    ctx = steps.resolve(root / "params.yaml", overrides, data_path)
    return steps.fingerprinted(ctx, steps.load(ctx)[1])


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_the_flow_takes_the_validation_started_for_its_inputs(root):
    ahead_ctx = run_context(str(root / "params.yaml"))
    with early_validation.ahead(ahead_ctx, force=False):
        flow_ctx = _flow_ctx(root)
        assert flow_ctx.out_dir != ahead_ctx.out_dir
        taken = early_validation.take(flow_ctx)
        assert taken is not None and taken.out_dir == ahead_ctx.out_dir  # the flow adopts its run folder
        assert early_validation.take(flow_ctx) is None  # taken once
        report, kept, html, _, note = taken.result(flow_ctx, taken.out_dir)
    assert report.success and len(kept) == 120 and "no champion" in note
    assert (ahead_ctx.out_dir / "validation_report.html").is_file()  # a taken validation's report stays


def test_other_inputs_are_not_taken_and_an_untaken_validation_is_stopped_and_removed(root):
    ahead_ctx = run_context(str(root / "params.yaml"))
    before = _children()
    with early_validation.ahead(ahead_ctx, force=False):
        started = _children() - before
        assert started  # the validation child runs from here on
        assert early_validation.take(_flow_ctx(root, ["validate.max_null_fraction=0.01"])) is None
        copy = root / "data" / "copy.parquet"
        copy.write_bytes(ahead_ctx.data_path.read_bytes())
        assert early_validation.take(_flow_ctx(root, data_path=str(copy))) is None  # same bytes, another file
    assert not ahead_ctx.out_dir.exists()
    assert not [pid for pid in started if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def test_a_rejection_is_raised_where_the_flow_takes_it(root):
    import pandas as pd

    bad = pd.read_parquet(root / "data" / "dataset.parquet")
    bad.loc[bad.index[:10], "mean radius"] = -5.0
    bad.to_parquet(root / "data" / "bad.parquet")
    ahead_ctx = run_context(str(root / "params.yaml"), data_path=str(root / "data" / "bad.parquet"))
    with early_validation.ahead(ahead_ctx, force=True):
        taken = early_validation.take(_flow_ctx(root, data_path=str(root / "data" / "bad.parquet")))
        with pytest.raises(DataRejectedError, match="mean radius"):
            taken.result(ahead_ctx, taken.out_dir)
    assert (ahead_ctx.out_dir / "validation_report.html").is_file()  # the report the error names


class _Child:
    started: list[str] = []

    def __init__(self, warm=()):
        pass

    def submit(self, fn, ctx, out_dir):
        _Child.started.append(ctx.data_path.name)

    def close(self):
        pass


def test_not_started_for_a_kept_validation_unless_forced(root, monkeypatch):
    monkeypatch.setattr(early_validation, "ChildProcess", _Child)
    monkeypatch.setattr(validation_cache, "current_key", lambda ctx: ("k", True))
    _Child.started.clear()
    ctx = run_context(str(root / "params.yaml"))
    with early_validation.ahead(ctx, force=False):
        assert early_validation.take(ctx) is None  # the flow reuses the kept one instead
    with early_validation.ahead(ctx, force=True):  # --force validates afresh
        assert early_validation.take(ctx) is not None
    with early_validation.ahead(None, force=True):  # a Prefect server: the flow validates as before
        pass
    assert _Child.started == ["dataset.parquet"]
