from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from components.data.dataset import DataNotFoundError, file_md5, ingest, load_dataset, read_source, split


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


def test_mlops_ingest_reads_a_csv_source_with_the_contracts_reading_options(tmp_path):
    """`data.source` a ';'-separated export with decimal commas, `validate.contract` saying so: stored as numbers."""
    import yaml

    from components.data.contract import load_contract
    from components.data.contract_yaml import save_contract
    from flows.cli.main import main
    from tests.conftest import make_project

    project = make_project(tmp_path / "project")
    frame = read_source("sklearn:breast_cancer").head(50)
    frame.to_csv(project / "export.csv", index=False, sep=";", decimal=",")
    contract = load_contract(project / "contracts" / "breast_cancer.yaml")
    save_contract(replace(contract, reading=replace(contract.reading, delimiter=";", decimal=",")),
                  project / "contracts" / "breast_cancer.yaml")  # fmt: skip
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = "export.csv"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    assert main(["--params", str(project / "params.yaml"), "ingest"]) == 0

    pd.testing.assert_frame_equal(load_dataset(project / "data" / "dataset.parquet"), frame)


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


@pytest.mark.parametrize("labels", [[0, 1], ["no", "yes"], [0.0, 1.0]])
def test_split_equals_splitting_the_frame_twice(labels):
    """Splitting row positions gives the same parts as train_test_split on the frame, then on the rest."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(0)
    y = np.where(rng.random(300) < 0.3, labels[1], labels[0])
    frame = pd.DataFrame({"x": rng.normal(size=300), "target": y}, index=np.arange(300)[::-1] * 2)
    frame["target"] = frame["target"].astype("str") if isinstance(labels[0], str) else frame["target"]
    rest, test = train_test_split(frame, test_size=0.2, random_state=7, stratify=frame["target"])
    train, val = train_test_split(rest, test_size=0.25, random_state=7, stratify=rest["target"])
    got = split(frame, "target", 0.2, 0.25, seed=7)
    for part, expected in (("train", train), ("val", val), ("test", test)):
        pd.testing.assert_frame_equal(getattr(got, part), expected.reset_index(drop=True))
