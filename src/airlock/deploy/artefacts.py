"""Render a :class:`VllmLaunchSpec` as a shell command, a docker-compose service and a
Kubernetes Deployment + Service (+ NetworkPolicy). All three take the flags from
``spec.argv()``; only the envelope differs.

Compliance defaults in every artefact: request logging off (in the flags), API key from a
secret into ``VLLM_API_KEY`` (never argv), usage telemetry off, Hub access off
(``HF_HUB_OFFLINE=1``; weights come from a read-only local mount), bound to loopback on the
host (compose publishes on ``publish_host`` only) or reachable only from airlock pods
(Kubernetes ClusterIP Service + NetworkPolicy that also denies all egress).
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from airlock.deploy.vllm_flags import API_KEY_ENV, VLLM_MODULE, VllmLaunchSpec, telemetry_off_env

__all__ = [
    "CONTAINER_MODEL_DIR",
    "DEFAULT_IMAGE",
    "render_command",
    "render_compose",
    "render_kubernetes",
]

# Pin by digest in production; the tag is a placeholder the operator replaces.
DEFAULT_IMAGE = "vllm/vllm-openai:latest"
CONTAINER_MODEL_DIR = "/models"
_SECRET_FILE = "/run/secrets/vllm_api_key"  # noqa: S105 - a path, not a secret
_SHM = "16gb"
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - inside the container only; see _container_spec


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared sub-objects out in full: manifests are read by people and kubectl."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _offline_env() -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _slug(name: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return out[:50] or "model"


def render_command(spec: VllmLaunchSpec, *, api_key_file: str = _SECRET_FILE) -> str:
    """A POSIX shell command line; the key is read from ``api_key_file`` at start."""
    env = {**telemetry_off_env()}
    lines = [
        "# vLLM OpenAI server planned by `airlock plan`. The API key is read from a secret file",
        "# into VLLM_API_KEY (never a flag: argv is visible to every local user via ps).",
        f'{API_KEY_ENV}="$(cat {shlex.quote(api_key_file)})" '
        + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        + " \\",
        f"  python -m {VLLM_MODULE} \\",
    ]
    argv = spec.argv()
    # One flag (with its values) per line for review.
    groups: list[list[str]] = []
    for arg in argv:
        if arg.startswith("--") or not groups:
            groups.append([arg])
        else:
            groups[-1].append(arg)
    for i, group in enumerate(groups):
        tail = " \\" if i < len(groups) - 1 else ""
        lines.append("    " + " ".join(shlex.quote(a) for a in group) + tail)
    return "\n".join(lines) + "\n"


def _container_spec(spec: VllmLaunchSpec) -> VllmLaunchSpec:
    # Inside a container the server listens on all of the container's interfaces; what is
    # reachable from outside is decided by the port publishing / Service below.
    return spec.model_copy(
        update={
            "host": _ALL_INTERFACES,
            "model": f"{CONTAINER_MODEL_DIR}/{_slug(spec.served_model_name)}",
        }
    )


def render_compose(
    spec: VllmLaunchSpec,
    *,
    image: str = DEFAULT_IMAGE,
    publish_host: str | None = None,
    model_dir_variable: str = "MODEL_DIR",
    api_key_file: str = "./secrets/vllm_api_key",
) -> str:
    """A docker-compose file with one ``vllm`` service and its API-key secret."""
    inner = _container_spec(spec)
    bind = publish_host or (spec.host if spec.host != _ALL_INTERFACES else "127.0.0.1")
    gpus = spec.tensor_parallel_size * spec.data_parallel_size
    service: dict[str, Any] = {
        "image": image,
        # Load the key from the mounted secret, then exec vLLM with the planned flags.
        "entrypoint": [
            "/bin/sh",
            "-c",
            f'{API_KEY_ENV}="$(cat {_SECRET_FILE})" exec python3 -m {VLLM_MODULE} "$@"',
            "vllm",
        ],
        "command": inner.argv(),
        "environment": {**telemetry_off_env(), **_offline_env()},
        "secrets": ["vllm_api_key"],
        "ports": [f"{bind}:{spec.port}:{spec.port}"],
        "volumes": [
            f"${{{model_dir_variable}:?set {model_dir_variable} to the model directory}}"
            f":{inner.model}:ro"
        ],
        "shm_size": _SHM,
        "security_opt": ["no-new-privileges:true"],
        "cap_drop": ["ALL"],
        "restart": "unless-stopped",
        "healthcheck": {
            "test": ["CMD", "python3", "-c",
                     f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{spec.port}/health')"],
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": "600s",
        },
        "deploy": {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "count": gpus, "capabilities": ["gpu"]}]
                }
            }
        },
    }  # fmt: skip
    doc = {
        "services": {"vllm": service},
        "secrets": {"vllm_api_key": {"file": api_key_file}},
    }
    return yaml.dump(doc, Dumper=_NoAliasDumper, sort_keys=False, width=1000)


def render_kubernetes(
    spec: VllmLaunchSpec,
    *,
    image: str = DEFAULT_IMAGE,
    namespace: str | None = None,
    secret_name: str = "vllm-api-key",  # noqa: S107 - the Secret's name, not its value
    model_claim: str = "model-weights",
    gateway_selector: dict[str, str] | None = None,
) -> str:
    """Deployment (one pod per data-parallel replica, TP GPUs each), ClusterIP Service and a
    NetworkPolicy admitting only airlock gateway pods and denying all egress."""
    inner = _container_spec(spec)
    name = f"vllm-{_slug(spec.served_model_name)}"
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "airlock"}
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    env: list[dict[str, Any]] = [
        {"name": k, "value": v} for k, v in {**telemetry_off_env(), **_offline_env()}.items()
    ]
    env.append(
        {
            "name": API_KEY_ENV,
            "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "api-key"}},
        }
    )
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10}
    container: dict[str, Any] = {
        "name": "vllm",
        "image": image,
        "command": ["python3", "-m", VLLM_MODULE],
        # Replicas are pods here, so vLLM's own data parallelism is not used.
        "args": inner.argv(include_data_parallel=False),
        "env": env,
        "ports": [{"name": "http", "containerPort": spec.port}],
        "resources": {"limits": {"nvidia.com/gpu": spec.tensor_parallel_size}},
        "startupProbe": {**probe, "failureThreshold": 90},
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {**probe, "failureThreshold": 6},
        "volumeMounts": [
            {"name": "model", "mountPath": inner.model, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108 - NCCL shared memory
        ],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": spec.data_parallel_size,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "model",
                            "persistentVolumeClaim": {"claimName": model_claim, "readOnly": True},
                        },
                        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": {"app.kubernetes.io/name": name},
            "ports": [{"name": "http", "port": spec.port, "targetPort": "http"}],
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchLabels": gateway_selector
                                or {"app.kubernetes.io/name": "airlock"}
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": spec.port}],
                }
            ],
            "egress": [],
        },
    }
    return yaml.dump_all(
        [deployment, service, policy], Dumper=_NoAliasDumper, sort_keys=False, width=1000
    )
