"""The image contract from YAML: the digits contract loads, and every mistake names its key."""

from pathlib import Path

import pytest
import yaml

from components.data.errors import ContractError
from components.images.contract import contract_kind, image_contract_from_dict, load_image_contract

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "name": "digits",
    "kind": "images",
    "image": {"width": 8, "height": 8, "mode": "L", "resize": "none"},
    "labels": {"from": "folder", "allowed": [str(d) for d in range(10)]},
    "min_per_class": 50,
    "max_class_ratio": 2.0,
    "severity": {"unreadable": "quarantine", "unknown_label": "block"},
    "max_quarantine_fraction": 0.05,
    "duplicates_across_splits": "block",
}


def test_the_digits_pipeline_contract_loads():
    contract = load_image_contract(ROOT / "pipelines" / "digits" / "contract.yaml")
    assert contract.name == "digits-classifier" and contract.labels == tuple(str(d) for d in range(10))
    assert (contract.width, contract.height, contract.mode, contract.resize) == (8, 8, "L", "none")
    assert contract.severity_of("wrong_size") == "quarantine" and contract.severity_of("unknown_label") == "block"
    assert contract.severity_of("min_per_class") == "block" and contract.task == "multiclass"


def test_labels_written_as_numbers_are_folder_names():
    contract = image_contract_from_dict(GOOD | {"labels": {"allowed": [0, 1, 2]}})
    assert contract.labels == ("0", "1", "2")


def _with(path: str, value):
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        ("kind", KeyError, "kind: missing"),
        ("kind", "table", "kind: 'table'"),
        ("colour", "red", "colour: unknown key"),
        ("image", KeyError, "image: missing required key"),
        ("image.width", KeyError, "image.width: missing"),
        ("image.width", 0, "image.width: expected a positive"),
        ("image.height", "8", "image.height: expected a positive"),
        ("image.mode", "grey", "image.mode: 'grey' is not a Pillow mode"),
        ("image.resize", "crop", "image.resize: 'crop'"),
        ("image.depth", 8, "image.depth: unknown key"),
        ("labels.from", "filename", "labels.from: 'filename'"),
        ("labels.allowed", [], "labels.allowed: expected a non-empty list"),
        ("labels.allowed", ["1", "1"], "labels.allowed: expected at least two distinct"),
        ("min_per_class", -1, "min_per_class: expected a whole number"),
        ("max_class_ratio", 0.5, "max_class_ratio: largest / smallest"),
        ("max_class_ratio", "2", "max_class_ratio: expected a number"),
        ("max_quarantine_fraction", 1.5, "max_quarantine_fraction: must be between 0 and 1"),
        ("duplicates_across_splits", "quarantine", "duplicates_across_splits: 'quarantine' must be block or warn"),
        ("severity.blurry", "warn", "severity.blurry: unknown key"),
        ("severity.unreadable", "ignore", "severity.unreadable: 'ignore' is not one of"),
        ("severity.min_per_class", "quarantine", "severity.min_per_class: quarantine is only valid for rules on"),
    ],
)
def test_errors_name_the_key(path, value, named):
    with pytest.raises(ContractError) as err:
        image_contract_from_dict(_with(path, value))
    assert named in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ContractError, match="contract file not found"):
        load_image_contract(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_image_contract(tmp_path / "bad.yaml")


def test_kind_tells_image_contracts_from_tables():
    assert contract_kind(GOOD) == "images" and contract_kind({"name": "t", "columns": {}}) == "table"
