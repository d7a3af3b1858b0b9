"""The typed vLLM flag list and the three artefacts rendered from it."""

from __future__ import annotations

import shlex

import pytest
import yaml

from airlock.deploy.artefacts import render_command, render_compose, render_kubernetes
from airlock.deploy.errors import PlanInputError
from airlock.deploy.planner import make_request, plan
from airlock.deploy.vllm_flags import (
    VLLM_MODULE,
    LoraModule,
    VllmLaunchSpec,
    launch_spec_for,
    parse_lora,
    vllm_argv,
)


def _spec(**overrides: object) -> VllmLaunchSpec:
    fields: dict[str, object] = {
        "model": "llama-3.3-70b-instruct",
        "gpu": "h100-80gb",
        "gpus": 2,
        "dtype": "fp8",
        "max_model_len": 32768,
        "concurrency": 256,
    }
    fields.update(overrides)
    return launch_spec_for(plan(make_request(**fields)), model_path="/srv/models/llama-70b")


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_argv_carries_the_plan() -> None:
    argv = vllm_argv(_spec())
    assert _flag(argv, "--model") == "/srv/models/llama-70b"
    assert _flag(argv, "--served-model-name") == "llama-3.3-70b-instruct"
    assert _flag(argv, "--host") == "127.0.0.1"
    assert _flag(argv, "--max-model-len") == "32768"
    assert _flag(argv, "--max-num-seqs") == "256"
    assert _flag(argv, "--tensor-parallel-size") == "2"
    assert _flag(argv, "--quantization") == "fp8"
    assert _flag(argv, "--dtype") == "bfloat16"
    assert _flag(argv, "--kv-cache-dtype") == "auto"
    assert _flag(argv, "--gpu-memory-utilization") == "0.9"
    for flag in ("--enable-chunked-prefill", "--enable-prefix-caching"):
        assert flag in argv
    assert "--data-parallel-size" not in argv


def test_compliance_flags_are_always_there() -> None:
    for spec in (_spec(), _spec(dtype="bf16", model="llama-3.1-8b-instruct", gpus=1)):
        argv = spec.argv()
        assert "--no-enable-log-requests" in argv
        assert "--disable-uvicorn-access-log" in argv
        assert not any(a.startswith("--api-key") for a in argv)
        assert "--enable-log-requests" not in argv


@pytest.mark.parametrize(
    ("dtype", "quantization", "act_dtype"),
    [("bf16", None, "bfloat16"), ("fp8", "fp8", "bfloat16"), ("int4-awq", "awq_marlin", "float16")],
)
def test_dtype_maps_to_vllm_flags(dtype: str, quantization: str | None, act_dtype: str) -> None:
    argv = _spec(model="llama-3.1-8b-instruct", gpus=1, dtype=dtype, concurrency=None).argv()
    assert _flag(argv, "--dtype") == act_dtype
    if quantization is None:
        assert "--quantization" not in argv
    else:
        assert _flag(argv, "--quantization") == quantization


def test_data_parallel_and_lora_flags() -> None:
    p = plan(
        make_request(model="llama-3.1-8b-instruct", gpu="h100-80gb", gpus=4, max_model_len=8192)
    )
    spec = launch_spec_for(
        p,
        model_path="/m",
        lora_modules=(parse_lora("legal=/adapters/legal"), parse_lora("med=/adapters/med")),
        max_lora_rank=32,
    )
    argv = spec.argv()
    assert _flag(argv, "--data-parallel-size") == "4"
    assert "--data-parallel-size" not in spec.argv(include_data_parallel=False)
    assert "--enable-lora" in argv
    assert _flag(argv, "--max-loras") == "2"
    assert _flag(argv, "--max-lora-rank") == "32"
    i = argv.index("--lora-modules")
    assert argv[i + 1 : i + 3] == ["legal=/adapters/legal", "med=/adapters/med"]
    assert spec.command()[:3] == ["python", "-m", VLLM_MODULE]


def test_bad_launch_inputs() -> None:
    with pytest.raises(PlanInputError, match="NAME=PATH"):
        parse_lora("no-equals-sign")
    with pytest.raises(PlanInputError, match="invalid LoRA adapter name"):
        parse_lora("bad name=/x")
    with pytest.raises(ValueError, match="LoRA name"):
        LoraModule(name="", path="/x")
    unfit = plan(make_request(model="llama-3.3-70b-instruct", gpu="l4-24gb"))
    with pytest.raises(PlanInputError, match="does not fit"):
        launch_spec_for(unfit, model_path="/m")
    fit = plan(make_request(model="smollm2-135m-instruct", gpu="l4-24gb"))
    with pytest.raises(PlanInputError, match="invalid launch setting"):
        launch_spec_for(fit, model_path="/m", served_model_name="has spaces")
    with pytest.raises(PlanInputError, match="invalid launch setting"):
        launch_spec_for(fit, model_path="/m", port=70000)


def test_command_line_runs_the_same_argv_with_the_key_from_a_file() -> None:
    spec = _spec()
    text = render_command(spec)
    body = " ".join(line for line in text.splitlines() if not line.startswith("#"))
    tokens = shlex.split(body.replace("\\", " "))
    assert tokens[0] == "VLLM_API_KEY=$(cat /run/secrets/vllm_api_key)"
    assert "VLLM_NO_USAGE_STATS=1" in tokens
    start = tokens.index("-m") + 2
    assert tokens[tokens.index("-m") + 1] == VLLM_MODULE
    assert tokens[start:] == spec.argv()


def test_compose_service() -> None:
    spec = _spec()
    doc = yaml.safe_load(render_compose(spec, image="vllm/vllm-openai:v0.1"))
    svc = doc["services"]["vllm"]
    assert svc["image"] == "vllm/vllm-openai:v0.1"
    # Inside the container vLLM listens on all interfaces and reads the mounted model;
    # on the host the port is published on loopback only.
    expected = spec.model_copy(
        update={"host": "0.0.0.0", "model": "/models/llama-3-3-70b-instruct"}
    ).argv()
    assert svc["command"] == expected
    assert svc["ports"] == ["127.0.0.1:8000:8000"]
    assert "cat /run/secrets/vllm_api_key" in svc["entrypoint"][2]
    assert svc["secrets"] == ["vllm_api_key"]
    assert doc["secrets"]["vllm_api_key"]["file"]
    assert svc["environment"]["VLLM_NO_USAGE_STATS"] == "1"
    assert svc["environment"]["HF_HUB_OFFLINE"] == "1"
    assert "VLLM_API_KEY" not in svc["environment"]
    assert svc["volumes"][0].endswith(":/models/llama-3-3-70b-instruct:ro")
    assert svc["deploy"]["resources"]["reservations"]["devices"][0]["count"] == 2


def test_kubernetes_manifests() -> None:
    p = plan(
        make_request(model="llama-3.1-8b-instruct", gpu="h100-80gb", gpus=4, max_model_len=8192)
    )
    spec = launch_spec_for(p, model_path="/m")
    docs = list(yaml.safe_load_all(render_kubernetes(spec, namespace="llm")))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "NetworkPolicy"]
    deployment, service, policy = docs
    assert deployment["metadata"]["namespace"] == "llm"
    assert deployment["spec"]["replicas"] == 4  # data-parallel replicas become pods
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["command"] == ["python3", "-m", VLLM_MODULE]
    assert "--data-parallel-size" not in container["args"]
    assert container["args"][container["args"].index("--host") + 1] == "0.0.0.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e for e in container["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "vllm-api-key"
    assert "value" not in env["VLLM_API_KEY"]
    assert env["DO_NOT_TRACK"]["value"] == "1"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert service["spec"]["type"] == "ClusterIP"
    assert policy["spec"]["egress"] == []
    assert policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "airlock"
    }
