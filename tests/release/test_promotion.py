"""Alias moves against a real MLflow SQLite registry (no models needed: versions point at a folder)."""

import multiprocessing as mp

import pytest

from components.release import registry
from components.release.promotion import (
    PromotionError,
    compare_and_set_champion,
    mark_challenger,
    promote_manually,
    rollback,
)


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory):
    """One SQLite store for the module: creating one runs migrations, seconds each."""
    return tmp_path_factory.mktemp("registry")


@pytest.fixture
def store(shared_root, request):
    """A fresh registered model (named after the test) with three versions."""
    name = request.node.name.replace("[", "-").replace("]", "")[:60]
    registry.configure_tracking(shared_root)
    c = registry.client()
    c.create_registered_model(name)
    src = (shared_root / "artifact").as_uri()
    versions = [str(c.create_model_version(name, src, tags={"candidate": f"c{i}"}).version) for i in range(3)]
    return shared_root, name, versions


def test_compare_and_set_promotes_and_keeps_previous(store):
    root, name, (v1, v2, _) = store
    lock = root / ".mlops"
    assert compare_and_set_champion(name, v1, expected=None, reason="first", lock_dir=lock).promoted
    out = compare_and_set_champion(name, v2, expected=v1, reason="better", lock_dir=lock)
    assert out.promoted and out.previous == v1
    assert registry.alias_version(name, "champion") == v2
    assert registry.alias_version(name, "previous-champion") == v1
    tags = registry.client().get_model_version(name, v2).tags
    assert tags["promotion.reason"] == "better" and tags["promotion.by"] and tags["promotion.at"]


def test_stale_expectation_does_not_promote_blindly(store):
    root, name, (v1, v2, v3) = store
    lock = root / ".mlops"
    compare_and_set_champion(name, v1, expected=None, reason="first", lock_dir=lock)
    compare_and_set_champion(name, v2, expected=v1, reason="second", lock_dir=lock)
    out = compare_and_set_champion(name, v3, expected=v1, reason="evaluated against v1", lock_dir=lock)
    assert not out.promoted and "champion changed during evaluation" in out.reason
    assert registry.alias_version(name, "champion") == v2
    assert "promotion.skipped" in registry.client().get_model_version(name, v3).tags


def _race(root: str, name: str, version: str, barrier, results) -> None:
    from pathlib import Path

    registry.configure_tracking(Path(root))
    barrier.wait()
    out = compare_and_set_champion(
        name, version, expected=None, reason=f"race {version}", lock_dir=Path(root) / ".mlops"
    )
    results[version] = (out.promoted, out.reason)


def test_two_processes_racing_end_with_exactly_one_champion(store):
    root, name, (v1, v2, _) = store
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier, results = manager.Barrier(2), manager.dict()
        procs = [ctx.Process(target=_race, args=(str(root), name, v, barrier, results)) for v in (v1, v2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert all(p.exitcode == 0 for p in procs)
        outcome = dict(results)
    winners = [v for v, (promoted, _) in outcome.items() if promoted]
    assert len(winners) == 1
    loser = next(v for v in outcome if v not in winners)
    assert "champion changed during evaluation" in outcome[loser][1]
    registry.configure_tracking(root)
    assert registry.alias_version(name, "champion") == winners[0]
    assert "promotion.skipped" in registry.client().get_model_version(name, loser).tags


def test_rollback_restores_previous_and_records_why(store):
    root, name, (v1, v2, _) = store
    lock = root / ".mlops"
    compare_and_set_champion(name, v1, expected=None, reason="first", lock_dir=lock)
    compare_and_set_champion(name, v2, expected=v1, reason="second", lock_dir=lock)
    out = rollback(name, reason="latency regression", lock_dir=lock)
    assert out.champion == v1 and registry.alias_version(name, "champion") == v1
    assert registry.alias_version(name, "previous-champion") is None
    assert registry.client().get_model_version(name, v2).tags["rolled_back.reason"] == "latency regression"


def test_rollback_without_previous_champion_fails_clearly(store):
    root, name, (v1, _, _) = store
    compare_and_set_champion(name, v1, expected=None, reason="first", lock_dir=root / ".mlops")
    with pytest.raises(PromotionError, match="no @previous-champion"):
        rollback(name, reason="x", lock_dir=root / ".mlops")
    assert registry.alias_version(name, "champion") == v1


def test_manual_promotion_needs_a_reason_and_an_existing_version(store):
    root, name, (v1, v2, _) = store
    lock = root / ".mlops"
    with pytest.raises(PromotionError, match="--reason"):
        promote_manually(name, v1, reason=" ", lock_dir=lock)
    with pytest.raises(PromotionError, match="no version 99"):
        promote_manually(name, "99", reason="x", lock_dir=lock)
    promote_manually(name, v1, reason="approved", lock_dir=lock)
    mark_challenger(name, v2, lock_dir=lock)
    out = promote_manually(name, v2, reason="hotfix", lock_dir=lock)
    assert out.previous == v1 and registry.alias_version(name, "previous-champion") == v1
    assert registry.alias_version(name, "challenger") is None  # the challenger became champion
    assert registry.client().get_model_version(name, v2).tags["manual_promotion.reason"] == "hotfix"
    with pytest.raises(PromotionError, match="already @champion"):
        promote_manually(name, v2, reason="again", lock_dir=lock)


def test_cli_rollback_without_previous_champion_exits_5_with_a_clear_message(tmp_path, capsys):
    from flows.cli.main import main
    from tests.conftest import make_project

    project = make_project(tmp_path / "p", rows=60)
    assert main(["--params", str(project / "params.yaml"), "rollback", "--reason", "test"]) == 5
    assert "no @previous-champion: nothing to roll back to" in capsys.readouterr().err


def test_only_the_version_holding_champion_says_promote(store):
    """A replaced champion says replaced, a rolled-back one rolled_back; a restored one promote again."""
    root, name, (v1, v2, v3) = store
    lock = root / ".mlops"

    def decisions() -> dict[str, str]:
        return {row["version"]: row["tags"].get("decision", "-") for row in registry.list_versions(name)}

    compare_and_set_champion(name, v1, expected=None, reason="first", lock_dir=lock)
    registry.set_version_tags(name, v1, {"decision": "promote"})  # as the release step does after the move
    compare_and_set_champion(name, v2, expected=v1, reason="better", lock_dir=lock)
    registry.set_version_tags(name, v2, {"decision": "promote"})
    assert decisions() == {v1: "replaced", v2: "promote", v3: "-"}
    assert registry.client().get_model_version(name, v1).tags["decision_reason"] == f"replaced by v{v2} as @champion"
    rollback(name, reason="latency regression", lock_dir=lock)
    assert decisions() == {v1: "promote", v2: "rolled_back", v3: "-"}
    promote_manually(name, v3, reason="hotfix", lock_dir=lock)
    assert decisions() == {v1: "replaced", v2: "rolled_back", v3: "promote"}
    assert registry.alias_version(name, "champion") == v3
