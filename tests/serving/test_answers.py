"""What the service answers per task: the JSON it writes, the schema it documents, the series it counts
(no server, no bentoml import; the served bentos: tests/serving/test_served_tasks.py)."""

import json

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Histogram

from components.serving.answers import (
    AnswerWriter,
    arrays_from_frame,
    check_task,
    low_confidence_count,
    observe_values,
    response_models,
)

DUMPS = json.JSONEncoder(ensure_ascii=False).encode  # what json.dumps writes


def _multiclass_scores(n: int, k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), n)


def test_binary_answer_is_todays_plus_the_probabilities_object():
    proba = np.array([0.1, 0.9, 0.5, 1 / 3])
    labels = np.where(proba >= 0.5, "yes", "no")
    body = AnswerWriter("binary", ["no", "yes"], "7")(labels, proba)
    predictions = json.loads(body)["predictions"]
    assert body == DUMPS({"predictions": predictions})  # byte for byte what json.dumps writes
    assert [list(p) for p in predictions] == [["label", "probability", "probabilities", "model_version"]] * 4
    assert [p["label"] for p in predictions] == ["no", "yes", "yes", "no"]
    assert [p["probability"] for p in predictions] == proba.tolist()  # full precision: 1/3 survives
    assert [p["probabilities"] for p in predictions] == [{"no": 1.0 - p, "yes": p} for p in proba.tolist()]
    assert {p["model_version"] for p in predictions} == {"7"}


def test_binary_integer_classes_are_keyed_as_text():
    body = AnswerWriter("binary", [0, 1], "1")(np.array([1]), np.array([0.75]))
    assert (
        body == '{"predictions": [{"label": 1, "probability": 0.75, "probabilities": {"0": 0.25, "1": 0.75}, '
        '"model_version": "1"}]}'
    )


@pytest.mark.parametrize("classes", [["setosa", "versicolor", "virginica", "ünïcode"], [3, 7, 11]])
def test_multiclass_answer_has_the_labels_probability_and_every_class(classes):
    scores = _multiclass_scores(200, len(classes))
    labels = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
    body = AnswerWriter("multiclass", classes, "2")(labels, scores)
    predictions = json.loads(body)["predictions"]
    assert body == DUMPS({"predictions": predictions})
    for p, row, label in zip(predictions, scores.tolist(), labels.tolist(), strict=True):
        assert p["label"] == label and list(p["probabilities"]) == [str(c) for c in classes]
        assert list(p["probabilities"].values()) == row
        assert p["probability"] == p["probabilities"][str(label)] == max(row)
        assert sum(row) == pytest.approx(1.0)


def test_multiclass_probability_follows_the_models_label_not_the_argmax():
    scores = np.array([[0.3, 0.3, 0.4]])
    body = AnswerWriter("multiclass", ["a", "b", "c"], "1")(np.array(["a"], dtype=object), scores)
    assert json.loads(body)["predictions"][0]["probability"] == 0.3


def test_numpy_labels_in_an_object_array_are_written_as_json_numbers():
    labels = np.array([np.int64(3), np.int64(7)], dtype=object)
    body = AnswerWriter("multiclass", [3, 7, 11], "1")(labels, np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1]]))
    assert [p["label"] for p in json.loads(body)["predictions"]] == [3, 7]


def test_a_label_outside_the_classes_is_an_error_naming_it():
    with pytest.raises(ValueError, match="label 'z', not one of the classes"):
        AnswerWriter("multiclass", ["a", "b", "c"], "1")(np.array(["z"], dtype=object), np.array([[0.2, 0.3, 0.5]]))


def test_regression_answer_is_the_value():
    values = np.array([1.5, -2e10, 1 / 3, 0.0])
    body = AnswerWriter("regression", [], "4")(values, values)
    assert body == DUMPS({"predictions": [{"value": v, "model_version": "4"} for v in values.tolist()]})


@pytest.mark.parametrize(
    ("task", "classes", "answers", "scores"),
    [
        ("binary", [0, 1], np.array([0, 1]), np.array([np.nan, 0.9])),
        (
            "multiclass",
            ["a", "b", "c"],
            np.array(["a", "b"], dtype=object),
            np.array([[0.5, 0.2, 0.3], [0, np.inf, 0]]),
        ),
        ("regression", [], np.array([np.nan, 1.0]), np.array([np.nan, 1.0])),
    ],
)
def test_non_finite_numbers_fall_back_to_what_json_dumps_writes(task, classes, answers, scores):
    writer = AnswerWriter(task, classes, "1")
    assert writer(answers, scores) == DUMPS({"predictions": writer.records(answers, scores)})
    assert "NaN" in writer(answers, scores) or "Infinity" in writer(answers, scores)


@pytest.mark.parametrize(
    ("task", "classes", "message"),
    [
        ("ranking", [], "task: 'ranking' is not one of"),
        ("binary", None, r"classes: a binary model needs \[negative, positive\]"),
        ("multiclass", ["a", "b"], "3 or more classes"),
        ("regression", ["a"], "a regression model has no classes"),
        ("multiclass", [1, "1", 2], "share a name as text"),
    ],
)
def test_a_config_that_does_not_fit_its_task_names_the_key(task, classes, message):
    with pytest.raises(ValueError, match=message):
        check_task(task, classes)


def _schema(task, classes):
    prediction, predictions = response_models(task, classes)
    schema = predictions.model_json_schema()
    return schema, schema["$defs"]


def test_openapi_models_describe_each_tasks_fields():
    schema, defs = _schema("multiclass", ["setosa", "<=50K", "0"])
    fields = defs["Prediction"]["properties"]
    assert list(fields) == ["label", "probability", "probabilities", "model_version"]
    assert fields["label"]["enum"] == ["setosa", "<=50K", "0"]
    assert list(defs["Probabilities"]["properties"]) == ["setosa", "<=50K", "0"]  # named even when not identifiers
    assert "of the predicted label" in fields["probability"]["description"]

    _, defs = _schema("binary", [0, 1])
    assert defs["Prediction"]["properties"]["label"]["enum"] == [0, 1]
    assert "positive class '1'" in defs["Prediction"]["properties"]["probability"]["description"]

    schema, defs = _schema("regression", [])
    assert list(defs["Prediction"]["properties"]) == ["value", "model_version"]
    assert "Probabilities" not in defs and schema["properties"]["predictions"]["type"] == "array"

    _, defs = _schema("multiclass", [0.5, 1.5, 2.5])  # floats cannot be a Literal: any label
    assert "enum" not in defs["Prediction"]["properties"]["label"]


def test_the_models_validate_a_written_answer():
    prediction, predictions = response_models("multiclass", ["a", "b", "c"])
    body = AnswerWriter("multiclass", ["a", "b", "c"], "1")(np.array(["c"], dtype=object), np.array([[0.1, 0.2, 0.7]]))
    parsed = predictions.model_validate_json(body)
    assert parsed.predictions[0].label == "c"
    assert json.loads(parsed.model_dump_json())["predictions"][0]["probabilities"] == {"a": 0.1, "b": 0.2, "c": 0.7}


def test_low_confidence_per_task():
    assert low_confidence_count("binary", np.array([0.5, 0.45, 0.3, 0.9]), 0.6) == 2  # max(p, 1-p) 0.5, 0.55
    assert low_confidence_count("multiclass", np.array([[0.4, 0.3, 0.3], [0.7, 0.2, 0.1]]), 0.6) == 1
    assert low_confidence_count("regression", np.array([0.1, 0.2]), 0.6) == 0


def _samples(registry: CollectorRegistry) -> dict:
    return {
        (s.name, s.labels.get("le")): s.value for m in registry.collect() for s in m.samples if "_created" not in s.name
    }


def test_observe_values_equals_one_observe_per_value():
    values = np.array([-5.0, 0.0, 0.5, 1.0, 1.0, 3.0, 99.0, 1e9, np.nan])
    bulk, one_by_one = CollectorRegistry(), CollectorRegistry()
    h_bulk = Histogram("v", "v", ["model_version"], buckets=(0.0, 1.0, 10.0), registry=bulk).labels("1")
    h_one = Histogram("v", "v", ["model_version"], buckets=(0.0, 1.0, 10.0), registry=one_by_one).labels("1")
    observe_values(h_bulk, values)
    for value in values[~np.isnan(values)]:  # NaN is left out: it would poison the sum for good
        h_one.observe(float(value))
    assert _samples(bulk) == _samples(one_by_one)
    assert _samples(bulk)[("v_bucket", "1.0")] == 5 and _samples(bulk)[("v_count", None)] == 8


def test_arrays_from_the_pyfunc_frame_per_task():
    frame = pd.DataFrame({"label": ["b"], "probability": [0.6], "proba_a": [0.1], "proba_b": [0.6], "proba_c": [0.3]})
    answers, scores = arrays_from_frame("multiclass", ["a", "b", "c"])(frame)
    assert answers.tolist() == ["b"] and scores.tolist() == [[0.1, 0.6, 0.3]]
    with pytest.raises(KeyError, match="proba_d"):
        arrays_from_frame("multiclass", ["a", "b", "d"])(frame)
    answers, scores = arrays_from_frame("binary", [0, 1])(pd.DataFrame({"label": [1], "probability": [0.7]}))
    assert answers.tolist() == [1] and scores.tolist() == [0.7]
    answers, scores = arrays_from_frame("regression", [])(pd.DataFrame({"value": [2.5]}))
    assert answers.tolist() == scores.tolist() == [2.5]
