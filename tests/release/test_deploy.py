"""Kubernetes manifest and the `mlops serve` command (no cluster, no server)."""

import argparse
import shutil
from pathlib import Path

import pytest
import yaml

from components.release.deploy import write_k8s_manifest
from flows.cli import serve as cli_serve

ROOT = Path(__file__).resolve().parents[2]
TAG = "breast-cancer-classifier:abc123xyz"


def test_manifest_has_deployment_and_service_for_the_exact_tag(tmp_path):
    path = write_k8s_manifest(
        TAG, tmp_path / "deploy", replicas=3, cpu="250m", memory="512Mi", port=3100, api_key_secret="mlops-api-key"
    )
    assert path == tmp_path / "deploy" / "breast-cancer-classifier.yaml"
    deployment, service = yaml.safe_load_all(path.read_text())
    assert (deployment["kind"], service["kind"]) == ("Deployment", "Service")
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == TAG  # exact version, never latest
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
    assert container["resources"]["limits"] == {"cpu": "250m", "memory": "512Mi"}
    assert container["ports"] == [{"name": "http", "containerPort": 3100, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "mlops-api-key"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_manifest_image_registry_prefix(tmp_path):
    path = write_k8s_manifest(TAG, tmp_path, image_registry="registry.example.com/ml/")
    deployment, _ = yaml.safe_load_all(path.read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.example.com/ml/{TAG}"
    assert "env" not in deployment["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("tag", ["breast-cancer-classifier", "breast-cancer-classifier:latest", ":v1"])
def test_manifest_refuses_inexact_tags(tag, tmp_path):
    with pytest.raises(ValueError, match="exact bento tag"):
        write_k8s_manifest(tag, tmp_path)


@pytest.fixture
def params(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")  # the model is named after the contract
    return str(tmp_path / "params.yaml")


@pytest.fixture
def registry_stub(monkeypatch):
    """The registry as `mlops serve` sees it, without an MLflow store."""
    from types import SimpleNamespace

    from components.release import registry

    state = {"version": "7", "tags": {"bento_tag": TAG}}
    monkeypatch.setattr(registry, "configure_tracking", lambda root: "sqlite://")
    monkeypatch.setattr(registry, "alias_version", lambda name, alias: state["version"])
    client = SimpleNamespace(
        get_model_version=lambda name, v: SimpleNamespace(tags=state["tags"]),
        get_registered_model=lambda name: SimpleNamespace(name=name),  # the model exists; its champion may not
    )
    monkeypatch.setattr(registry, "client", lambda: client)
    return state


@pytest.fixture
def execs(monkeypatch):
    calls = []
    monkeypatch.setattr(cli_serve.os, "execvp", lambda file, argv: calls.append(argv))
    return calls


def _run(argv, params):
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default=params)
    cli_serve.add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--params", params, *argv])
    return args.func(args)


def test_serve_execs_the_champions_exact_bento(params, registry_stub, execs):
    assert _run(["serve", "--port", "3999"], params) == 0
    (argv,) = execs
    assert argv[-6:] == ["serve", TAG, "--host", "127.0.0.1", "--port", "3999"]
    assert Path(argv[0]).name == "bentoml"


def test_serve_without_champion_says_so(params, registry_stub, execs, capsys):
    registry_stub["version"] = None
    assert _run(["serve"], params) == cli_serve.EXIT_NOTHING
    assert "no 'champion' version" in capsys.readouterr().err and not execs


def test_serve_champion_without_bento_says_so(params, registry_stub, execs, capsys):
    registry_stub["tags"] = {}
    assert _run(["serve"], params) == cli_serve.EXIT_NOTHING
    assert "never packaged" in capsys.readouterr().err and not execs


def test_serve_refuses_latest(params, registry_stub, execs, capsys):
    assert _run(["serve", "--tag", "breast-cancer-classifier:latest"], params) == cli_serve.EXIT_CONFIG
    assert "exact bento tag" in capsys.readouterr().err and not execs
