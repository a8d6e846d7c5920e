import os

from components.release import registry


def test_a_uri_we_exported_is_never_taken_for_the_users(tmp_path, monkeypatch):
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; a later project must not inherit it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a = registry.configure_tracking(tmp_path / "a")
    assert os.environ.get("MLFLOW_TRACKING_URI") == a  # what MLflow exported for us
    user = f"sqlite:///{tmp_path / 'user.db'}"
    with monkeypatch.context() as m:
        m.setenv("MLFLOW_TRACKING_URI", user)
        assert registry.configure_tracking(tmp_path / "b") == user  # the user's choice wins
    # the variable is back to the value exported for project a: still ours, not the user's
    c = registry.configure_tracking(tmp_path / "c")
    assert c == f"sqlite:///{(tmp_path / 'c').resolve() / 'mlflow.db'}"
