import pandas as pd
import pytest

from components.data import DataNotFoundError, file_md5, ingest, load_dataset, read_source, split


def test_ingest_is_byte_stable_and_does_not_rewrite(tmp_path):
    out = tmp_path / "data" / "dataset.parquet"
    ingest("sklearn:breast_cancer", out)
    first, mtime = file_md5(out), out.stat().st_mtime_ns
    ingest("sklearn:breast_cancer", out)
    assert file_md5(out) == first
    assert out.stat().st_mtime_ns == mtime
    frame = load_dataset(out)
    assert frame.shape == (569, 31) and frame["target"].isin([0, 1]).all()


def test_ingest_from_csv(tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]}).to_csv(src, index=False)
    out = ingest(str(src), tmp_path / "out.parquet")
    assert load_dataset(out)["y"].tolist() == ["a", "b"]


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError, match="make run.*dvc pull"):
        load_dataset(tmp_path / "data" / "dataset.parquet")


def test_unknown_builtin_source():
    with pytest.raises(ValueError, match="known: sklearn:breast_cancer"):
        read_source("sklearn:iris2")


def test_split_is_seeded_stratified_and_disjoint():
    frame = pd.DataFrame({"x": range(200), "target": [0] * 150 + [1] * 50})
    a = split(frame, "target", 0.2, 0.25, seed=3)
    b = split(frame, "target", 0.2, 0.25, seed=3)
    assert a.sizes() == {"train": 120, "val": 40, "test": 40}
    pd.testing.assert_frame_equal(a.test, b.test)
    assert set(a.train.x).isdisjoint(a.test.x) and set(a.val.x).isdisjoint(a.test.x)
    assert a.test.target.mean() == pytest.approx(0.25)
    c = split(frame, "target", 0.2, 0.25, seed=4)
    assert set(c.test.x) != set(a.test.x)


def test_split_names_a_missing_target():
    with pytest.raises(KeyError, match="target column 'label'"):
        split(pd.DataFrame({"x": [1, 2]}), "label", 0.5, 0.5, 0)
