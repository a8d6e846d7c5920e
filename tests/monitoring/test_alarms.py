"""Alarm rules and the cooldown: a real MLflow registry on SQLite holds the cooldown; the Prefect send is
replaced (what is under test is when we send, not Prefect's client, which the e2e loop test covers)."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from components.monitoring import alarms
from components.release import registry

T0 = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)


def report(share: float, limit: float = 0.5, n: int = 4) -> dict:
    drifted = round(share * n)
    columns = [{"column": f"c{i}", "drifted": i < drifted} for i in range(n)]
    return {"columns": columns, "n_columns": n, "n_drifted": drifted, "share_drifted": share, "drift_share": limit,
            "prediction": {"drifted": True}, "context": {"batch_md5": "ab" * 16}}  # fmt: skip


def test_drift_alarm_only_over_the_share():
    assert alarms.drift_alarm(report(0.5, limit=0.5)) is None  # at the threshold: not over it
    assert alarms.drift_alarm(report(0.25)) is None
    reason = alarms.drift_alarm(report(0.75))
    assert reason.startswith("drift in 3 of 4 columns (75% > drift_share 50%)") and "c0, c1, c2" in reason


@pytest.mark.parametrize(
    ("metric", "realized", "expected", "alarm"),
    [
        ("roc_auc", 0.90, 0.96, True),  # higher is better: 0.06 lower
        ("roc_auc", 0.92, 0.96, False),  # 0.04 lower: within 0.05
        ("roc_auc", 0.99, 0.96, False),  # better
        ("brier", 0.20, 0.12, True),  # lower is better, bounded: 0.08 higher
        ("brier", 0.05, 0.12, False),  # lower is better, and lower: better
        ("rmse", 52.0, 48.0, True),  # unbounded error: 8.3% worse
        ("rmse", 50.0, 48.0, False),  # 4.2% worse
        ("rmse", 30.0, 48.0, False),
        ("r2", 0.30, 0.40, True),
    ],
)
def test_metric_alarm_in_both_directions(metric, realized, expected, alarm):
    reason = alarms.metric_alarm({metric: realized}, {metric: expected}, max_drop=0.05)
    assert (reason is not None) == alarm
    if alarm:
        assert reason.startswith(f"realized {metric} {realized:.4f} vs test {expected:.4f}")


def test_metric_alarm_names_every_dropped_metric_worst_first_and_skips_unknown_ones():
    realized = {"accuracy": 0.70, "f1": 0.80, "log_loss": 0.30, "not_tested": 0.0}
    expected = {"accuracy": 0.90, "f1": 0.88, "log_loss": 0.29}
    reason = alarms.metric_alarm(realized, expected, max_drop=0.05)
    assert reason.index("accuracy") < reason.index("f1") and "log_loss" not in reason and "not_tested" not in reason


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """One SQLite store for the module (creating one costs seconds); each test registers its own model."""
    registry.configure_tracking(tmp_path_factory.mktemp("alarms"))


@dataclass
class Store:
    model: str
    sent: list[dict] = field(default_factory=list)  # the payloads that would have gone to Prefect

    def alarm(self, at: datetime, batch: str = "incoming/a.parquet", version: str = "1", hours: float = 24) -> dict:
        return alarms.raise_alarm(self.model, version, batch, "drift", "drift in 3 of 4 columns",
                                  {"share_drifted": 0.75}, cooldown_hours=hours, now=at)  # fmt: skip


@pytest.fixture
def store(tracking, monkeypatch, request):
    """A registered model of the test's own with two versions."""
    out = Store(model=f"churn-{request.node.name}")
    client = registry.client()
    client.create_registered_model(out.model)
    for _ in range(2):
        client.create_model_version(out.model, source="file:///nowhere/model")
    monkeypatch.setattr(
        alarms, "_emit", lambda name, payload, event_id: out.sent.append(payload | {"to": name}) or True
    )
    monkeypatch.setattr(alarms, "_prefect_server", lambda: "http://127.0.0.1:4200/api")
    return out


def test_without_a_prefect_server_the_alarm_is_recorded_and_keeps_the_cooldown_free(store, monkeypatch):
    monkeypatch.setattr(alarms, "_prefect_server", lambda: None)  # Prefect's temporary API only
    result = store.alarm(T0)
    assert not result["emitted"] and result["not_sent"] == alarms.NO_SERVER and not store.sent
    assert "no Prefect server" in alarms.describe_sending(result)
    assert alarms.last_event(store.model) is None  # a later alarm with a server is not held back
    recorded = json.loads(registry.client().get_model_version(store.model, "1").tags[alarms.TAG_LAST_ALARM])
    assert recorded["not_sent"] == alarms.NO_SERVER
    monkeypatch.setattr(alarms, "_prefect_server", lambda: "http://127.0.0.1:4200/api")
    assert store.alarm(T0 + timedelta(minutes=5))["emitted"]


def test_first_alarm_emits_and_starts_the_cooldown(store):
    result = store.alarm(T0)
    assert result["emitted"] and result["event_id"] and result["suppressed_by"] is None
    [payload] = store.sent
    assert payload == {"version": "1", "batch": "incoming/a.parquet", "kind": "drift", "to": store.model,
                       "reason": "drift in 3 of 4 columns", "statistics": {"share_drifted": 0.75}}  # fmt: skip
    when, batch, _ = alarms.last_event(store.model)
    assert when == T0 and batch == "incoming/a.parquet"


def test_an_alarm_inside_the_cooldown_is_suppressed_but_recorded(store):
    first = store.alarm(T0)
    second = store.alarm(T0 + timedelta(hours=23, minutes=59), batch="incoming/b.parquet", version="2")
    assert not second["emitted"] and second["event_id"] is None
    assert second["suppressed_by"] == T0.isoformat(timespec="seconds")
    assert len(store.sent) == 1
    recorded = json.loads(registry.client().get_model_version(store.model, "2").tags[alarms.TAG_LAST_ALARM])
    assert recorded["batch"] == "incoming/b.parquet" and recorded["emitted"] is False
    assert recorded["suppressed_by"] == second["suppressed_by"]
    first_record = json.loads(registry.client().get_model_version(store.model, "1").tags[alarms.TAG_LAST_ALARM])
    assert first_record["event_id"] == first["event_id"] and first_record["emitted"] is True
    assert alarms.last_event(store.model)[0] == T0  # a suppressed alarm does not extend the window


def test_an_alarm_after_the_cooldown_emits_again(store):
    store.alarm(T0)
    later = store.alarm(T0 + timedelta(hours=24, seconds=1), batch="incoming/c.parquet")
    assert later["emitted"] and len(store.sent) == 2
    assert alarms.last_event(store.model)[1] == "incoming/c.parquet"


def test_no_cooldown_emits_every_alarm(store):
    assert all(store.alarm(T0 + timedelta(minutes=i), hours=0)["emitted"] for i in range(3))
    assert len(store.sent) == 3


def test_an_alarm_that_could_not_be_sent_leaves_no_cooldown(store, monkeypatch):
    monkeypatch.setattr(alarms, "_emit", lambda *a: False)  # no Prefect API in this process
    result = store.alarm(T0)
    assert not result["emitted"] and result["suppressed_by"] is None
    assert alarms.last_event(store.model) is None


def test_alarm_on_drift_raises_only_over_the_share(store):
    assert alarms.alarm_on_drift(report(0.25), name=store.model, version="1", batch="b", cooldown_hours=24) is None
    result = alarms.alarm_on_drift(report(0.75), name=store.model, version="1", batch="b", cooldown_hours=24)
    assert result["emitted"]
    assert store.sent[0]["statistics"] == {"share_drifted": 0.75, "drift_share": 0.5, "n_columns": 4, "n_drifted": 3,
                                      "drifted": ["c0", "c1", "c2"], "prediction_drift": True,
                                      "batch_md5": "ab" * 16}  # fmt: skip


def test_an_unknown_kind_is_an_error(store):
    with pytest.raises(ValueError, match="'weather'"):
        alarms.raise_alarm(store.model, "1", "b", "weather", "r", {}, cooldown_hours=1)
