"""Deployment artefacts for a bento: a Kubernetes manifest and the bento's Dockerfile.

The image is named after the exact bento tag (``bentoml containerize name:version``
tags it ``name:version``), never ``latest``, so a manifest always says which model
version it runs. Probes use BentoML's own ``/healthz`` and ``/readyz``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.release.bento_server import check_exact_tag


def _k8s_name(value: str) -> str:
    """Kubernetes object names: lowercase alphanumerics and '-'."""
    return "".join(c if c.isalnum() else "-" for c in value.lower()).strip("-")[:63]


def k8s_manifest(
    bento_tag: str,
    *,
    replicas: int = 2,
    cpu: str = "500m",
    memory: str = "1Gi",
    port: int = 3000,
    image_registry: str | None = None,
    api_key_secret: str | None = None,
) -> list[dict[str, Any]]:
    """A Deployment and a Service for ``bento_tag`` as plain dicts."""
    check_exact_tag(bento_tag)
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    name, version = bento_tag.split(":", 1)
    app = _k8s_name(name)
    image = f"{image_registry.rstrip('/')}/{bento_tag}" if image_registry else bento_tag
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/version": _k8s_name(version)}
    env = []
    if api_key_secret:
        secret_ref = {"secretKeyRef": {"name": api_key_secret, "key": "MLOPS_API_KEY"}}
        env.append({"name": "MLOPS_API_KEY", "valueFrom": secret_ref})

    def probe(path: str, delay: int, period: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "initialDelaySeconds": delay,
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        }

    container = {
        "name": app,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["serve", "--port", str(port)],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        **({"env": env} if env else {}),
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu, "memory": memory}},
        "livenessProbe": probe("/healthz", 10, 10),
        "readinessProbe": probe("/readyz", 5, 5),
        "startupProbe": {**probe("/readyz", 0, 5), "failureThreshold": 36},  # up to 3 min to load
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": labels, "annotations": {"bentoml.com/bento": bento_tag}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/path": "/metrics",
                        "prometheus.io/port": str(port),
                    },
                },
                "spec": {"containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [deployment, service]


def write_k8s_manifest(
    bento_tag: str,
    out_dir: str | Path,
    *,
    replicas: int = 2,
    cpu: str = "500m",
    memory: str = "1Gi",
    port: int = 3000,
    image_registry: str | None = None,
    api_key_secret: str | None = None,
) -> Path:
    """Write ``<out_dir>/<service>.yaml`` (Deployment + Service); return its path."""
    docs = k8s_manifest(
        bento_tag,
        replicas=replicas,
        cpu=cpu,
        memory=memory,
        port=port,
        image_registry=image_registry,
        api_key_secret=api_key_secret,
    )
    out = Path(out_dir) / f"{docs[0]['metadata']['name']}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Generated for bento {bento_tag}; build the image with: bentoml containerize {bento_tag}\n"
    out.write_text(header + yaml.safe_dump_all(docs, sort_keys=False))
    return out


def bento_dockerfile_path(bento_tag: str) -> Path:
    """The Dockerfile BentoML 1.4 writes into the bento at build time (``env/docker/Dockerfile``).

    Reads the store selected by ``BENTOML_HOME`` (set it before bentoml is imported).
    ``bentoml containerize`` builds from this file; no Docker is needed to read it.
    """
    import bentoml

    check_exact_tag(bento_tag)
    path = Path(bentoml.bentos.get(bento_tag).path_of("env/docker/Dockerfile"))
    if not path.is_file():
        raise FileNotFoundError(f"bento {bento_tag} has no env/docker/Dockerfile (built by an older BentoML?)")
    return path
