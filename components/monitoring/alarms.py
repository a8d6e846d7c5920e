"""When monitoring raises an alarm, and how an alarm becomes one `mlops.model.drift` Prefect event.

An alarm is either a drift report whose share of drifted columns is over ``monitor.drift_share``
(:func:`drift_alarm`) or a realized metric worse than the version's test metric by more than
``monitor.max_metric_drop`` (:func:`metric_alarm`). :func:`raise_alarm` turns an alarm into the
event a deployment trigger listens to (it starts the retraining), at most once per model within
``monitor.cooldown_hours``: the time of the last event is a tag of the registered model in MLflow,
so every process that raises alarms (a nightly flow run, `mlops monitor`) shares one cooldown.
Every alarm, emitted or suppressed, is recorded on the model version it concerns.

This is the monitoring step whose job is Prefect events, so it imports Prefect (lazily).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from components.vocabulary import higher_is_better

log = logging.getLogger(__name__)

EVENT = "mlops.model.drift"
RESOURCE_PREFIX = "mlops.model."  # the event's resource: mlops.model.<registered model name>
TAG_LAST_EVENT = "monitor.last_drift_event"  # registered-model tag: "<ISO time>|<event id>|<batch>"
TAG_LAST_ALARM = "monitor.last_alarm"  # model-version tag: JSON of the last alarm on that version
KINDS = ("drift", "metric", "served")
# Error metrics with no upper bound: their drop is relative to the expected value (0.05 = 5% worse),
# since an absolute 0.05 means nothing in the target's units. Bounded scores drop in absolute points.
RELATIVE_DROP = frozenset({"rmse", "mae", "mape", "log_loss"})


def drift_alarm(report: dict[str, Any]) -> str | None:
    """Why ``report`` (components.monitoring.drift_report) is an alarm, or None when it is not.

    An alarm when the share of drifted columns is over the report's ``drift_share`` threshold.
    """
    share, limit = float(report["share_drifted"]), float(report["drift_share"])
    if share <= limit:
        return None
    drifted = [c["column"] for c in report.get("columns", []) if c.get("drifted")]
    shown = ", ".join(drifted[:8]) + (f" and {len(drifted) - 8} more" if len(drifted) > 8 else "")
    n_columns = report.get("n_columns", len(report.get("columns", [])))
    return f"drift in {len(drifted)} of {n_columns} columns ({share:.0%} > drift_share {limit:.0%}): {shown}"


def metric_drop(metric: str, realized: float, expected: float) -> float:
    """How much worse ``realized`` is than ``expected`` (negative: better), in the metric's direction.

    Absolute for bounded scores (roc_auc, f1, accuracy, r2, brier, ...), relative to ``expected`` for
    unbounded error metrics (:data:`RELATIVE_DROP`).
    """
    drop = expected - realized if higher_is_better(metric) else realized - expected
    if metric in RELATIVE_DROP:
        return drop / abs(expected) if expected else (float("inf") if drop > 0 else 0.0)
    return drop


def metric_alarm(realized: dict[str, float], expected: dict[str, float], max_drop: float) -> str | None:
    """Why ``realized`` metrics are an alarm against ``expected`` (the version's test metrics), or None.

    Only metrics in both are compared; the reason names every metric that dropped by more than
    ``max_drop`` (see :func:`metric_drop`), worst first.
    """
    drops = {m: metric_drop(m, realized[m], expected[m]) for m in realized if m in expected}
    over = sorted((m for m, d in drops.items() if d > max_drop), key=lambda m: -drops[m])
    if not over:
        return None

    def unit(m: str) -> str:
        return f"{drops[m]:.1%} worse" if m in RELATIVE_DROP else f"drop {drops[m]:.4f}"

    parts = [f"{m} {realized[m]:.4f} vs test {expected[m]:.4f} ({unit(m)})" for m in over]
    return f"realized {'; '.join(parts)}: more than max_metric_drop {max_drop}"


def drift_statistics(report: dict[str, Any]) -> dict[str, Any]:
    """The small summary of a drift report an event payload carries (the full report is a file)."""
    prediction = report.get("prediction") or {}
    return {
        "share_drifted": report["share_drifted"],
        "drift_share": report["drift_share"],
        "n_columns": report.get("n_columns"),
        "n_drifted": report.get("n_drifted"),
        "drifted": [c["column"] for c in report.get("columns", []) if c.get("drifted")],
        "prediction_drift": prediction.get("drifted"),
    }


def _prefect_server() -> str | None:
    """The Prefect API events go to; None under Prefect's temporary API, which no automation watches."""
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


NO_SERVER = "no Prefect server (PREFECT_API_URL unset): no automation could hear the event"


def _emit(name: str, payload: dict[str, Any], event_id: UUID) -> bool:
    """Send the event; False when this process has no Prefect API to send events to."""
    from prefect.events import emit_event

    event = emit_event(
        event=EVENT, resource={"prefect.resource.id": f"{RESOURCE_PREFIX}{name}", "prefect.resource.name": name},
        payload=payload, id=event_id,
    )  # fmt: skip
    return event is not None


def last_event(name: str) -> tuple[datetime, str, str] | None:
    """When the last `mlops.model.drift` event of ``name`` was emitted, for which batch, and the raw tag
    (None: never)."""
    from components.release import registry

    raw = registry.client().get_registered_model(name).tags.get(TAG_LAST_EVENT)
    if not raw:
        return None
    when, _, rest = raw.partition("|")
    try:
        return datetime.fromisoformat(when), rest.partition("|")[2], raw
    except ValueError:  # a hand-edited tag: treat as no cooldown rather than never alarming again
        log.warning("ignoring the unreadable %s tag of %s: %r", TAG_LAST_EVENT, name, raw)
        return None


def describe_sending(result: dict | None) -> str:
    """What became of an alarm's event, in one phrase (for logs and the command line)."""
    if result is None:
        return "not sent"
    if result["emitted"]:
        return f"event {EVENT} emitted (id {result['event_id']})"
    if result.get("suppressed_by"):
        return f"no event: cooldown since the event of {result['suppressed_by']} (monitor.cooldown_hours)"
    return f"no event: {result.get('not_sent') or 'this process has no Prefect API to send it to'}"


def raise_alarm(
    name: str,
    version: str,
    batch: str,
    kind: str,
    reason: str,
    statistics: dict,
    *,
    cooldown_hours: float,
    now: datetime | None = None,
) -> dict:
    """Emit `mlops.model.drift` for ``name`` unless an earlier event is within ``cooldown_hours``.

    Returns ``{"emitted", "reason", "event_id", "suppressed_by"}`` (``suppressed_by``: the ISO time
    of the event that holds the cooldown), plus ``not_sent`` when no Prefect server is configured.
    The alarm is recorded on version ``version`` as the tag
    ``monitor.last_alarm`` either way; the cooldown tag moves only when an event was emitted.
    """
    from components.release import registry

    if kind not in KINDS:
        raise ValueError(f"alarm kind {kind!r} is not one of {', '.join(KINDS)}")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    earlier = last_event(name)
    window = timedelta(hours=cooldown_hours)
    # An event stamped in the future (another machine's clock) holds the cooldown too, until it is past.
    held = earlier is not None and now - earlier[0] < window
    result: dict[str, Any] = {"emitted": False, "reason": reason, "event_id": None, "suppressed_by": None}
    if _prefect_server() is None:  # an event to the temporary API is lost: keep the cooldown for a real one
        result["not_sent"] = NO_SERVER
        log.warning("alarm on %s v%s recorded, not sent: %s", name, version, NO_SERVER)
    elif held:
        result["suppressed_by"] = earlier[0].isoformat(timespec="seconds")
        log.info("alarm on %s v%s suppressed: event of %s (batch %s) is within the %sh cooldown",
                 name, version, result["suppressed_by"], earlier[1], cooldown_hours)  # fmt: skip
    else:
        # Claim the cooldown before sending, then read it back: of two processes alarming at once, the
        # one whose claim was overwritten stands down (the retraining deployment's concurrency limit
        # and its fingerprint check cover the milliseconds left).
        event_id = uuid4()
        stamp = f"{now.isoformat(timespec='seconds')}|{event_id}|{batch}"[:5000]
        client = registry.client()
        client.set_registered_model_tag(name, TAG_LAST_EVENT, stamp)
        if client.get_registered_model(name).tags.get(TAG_LAST_EVENT) != stamp:
            result["suppressed_by"] = now.isoformat(timespec="seconds")
        else:
            payload = {"version": str(version), "batch": batch, "kind": kind, "reason": reason,
                       "statistics": statistics}  # fmt: skip
            if _emit(name, payload, event_id):
                result |= {"emitted": True, "event_id": str(event_id)}
            else:  # nothing was sent: give the cooldown back
                if earlier is None:
                    client.delete_registered_model_tag(name, TAG_LAST_EVENT)
                else:
                    client.set_registered_model_tag(name, TAG_LAST_EVENT, earlier[2])
                log.warning("alarm on %s v%s not sent: this process has no Prefect API for events", name, version)
    record = {"time": now.isoformat(timespec="seconds"), "kind": kind, "batch": batch, "reason": reason[:1000]}
    record |= {k: result[k] for k in ("emitted", "event_id", "suppressed_by", "not_sent") if k in result}
    registry.client().set_model_version_tag(name, str(version), TAG_LAST_ALARM, json.dumps(record)[:5000])
    return result


def alarm_on_drift(
    report: dict[str, Any], *, name: str, version: str, batch: str, cooldown_hours: float, kind: str = "drift"
) -> dict[str, Any] | None:
    """:func:`raise_alarm` for a drift report over its threshold; None when the report is no alarm.

    What a flow calls after writing a drift report (the batch flow, `mlops monitor --served`).
    """
    reason = drift_alarm(report)
    if reason is None:
        return None
    context = report.get("context") or {}
    statistics = drift_statistics(report) | {k: context[k] for k in ("batch_md5",) if context.get(k)}
    return raise_alarm(name, str(version), batch, kind, reason, statistics, cooldown_hours=cooldown_hours)
