"""``airlock plan`` (GPU sizing + vLLM launch artefacts) and sealed weights:
``airlock keygen``, ``seal``, ``unseal``, ``keys-wrap``.

Thin commands: the work is in ``airlock.deploy``. Errors print one line to stderr and exit
1; ``plan`` exits 1 when the model does not fit (after printing why and what would).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from airlock.deploy import artefacts
from airlock.deploy.catalog import get_model
from airlock.deploy.plan_types import Plan
from airlock.deploy.planner import make_request, plan
from airlock.deploy.sealed import (
    DEFAULT_CHUNK_SIZE,
    Kek,
    KekSource,
    generate_kek_file,
    load_kek,
    rewrap,
    seal,
    unseal,
)
from airlock.deploy.sizing import GIB
from airlock.deploy.vllm_flags import VllmLaunchSpec, launch_spec_for, parse_lora
from airlock.errors import AirlockError

__all__ = ["register"]


class Emit(StrEnum):
    none = "none"
    command = "command"
    compose = "compose"
    kubernetes = "kubernetes"


def _fail(exc: AirlockError) -> typer.Exit:
    typer.echo(f"airlock: {exc.message}", err=True)
    return typer.Exit(1)


def _gib(n: int) -> str:
    return f"{n / GIB:,.2f} GiB"


def _render_plan(p: Plan, console: Console) -> None:
    head = Table(title=f"{p.model} on {p.gpus} x {p.gpu}", show_header=False)
    head.add_column("", style="bold")
    head.add_column("")
    head.add_row("fits", "[green]yes[/]" if p.fits else "[red]no[/]")
    head.add_row("dtype / KV cache", f"{p.dtype} / {p.kv_cache_dtype}")
    head.add_row("max model len", f"{p.max_model_len:,} tokens")
    head.add_row(
        "tensor / data parallel",
        f"{p.tensor_parallel_size} / {p.data_parallel_size}"
        + (f" ({p.unused_gpus} GPU unused)" if p.unused_gpus and p.fits else ""),
    )
    head.add_row("weights (whole model)", _gib(p.weights_bytes))
    head.add_row("KV cache per token (all layers)", f"{p.kv_cache_bytes_per_token:,} B")
    if p.kv_cache_bytes_per_token_beyond_window != p.kv_cache_bytes_per_token:
        head.add_row(
            "KV per token beyond window", f"{p.kv_cache_bytes_per_token_beyond_window:,} B"
        )
    head.add_row("KV per full-length sequence", _gib(p.kv_cache_bytes_per_sequence))
    head.add_row("max concurrent sequences at max len", f"{p.max_concurrent_sequences:,}")
    if p.context_at_concurrency is not None:
        head.add_row(
            f"context each at {p.concurrency} sequences", f"{p.context_at_concurrency:,} tokens"
        )
    head.add_row(
        "--max-num-seqs / batched tokens", f"{p.max_num_seqs} / {p.max_num_batched_tokens}"
    )
    console.print(head)

    m = p.memory_per_gpu
    mem = Table(title=f"memory per GPU (tensor parallel {p.tensor_parallel_size})")
    mem.add_column("item")
    mem.add_column("bytes", justify="right")
    for label, value in (
        ("total (driver)", m.total_bytes),
        (f"usable at {p.gpu_memory_utilization}", m.usable_bytes),
        ("weights shard", m.weights_bytes),
        ("activations (estimate)", m.activation_bytes),
        ("runtime overhead (assumed)", m.runtime_overhead_bytes),
        ("left for KV cache", m.kv_cache_bytes),
    ):
        mem.add_row(label, _gib(value))
    console.print(mem)

    if p.throughput is not None:
        t = p.throughput
        tp = Table(title=f"throughput - {t.label}")
        tp.add_column("metric")
        tp.add_column("value", justify="right")
        tp.add_row(
            f"decode tokens/s ({t.decode_batch_per_replica} seqs/replica at {t.avg_context} ctx)",
            f"{t.decode_tokens_per_second:,.0f} ({t.decode_bound})",
        )
        tp.add_row(
            "decode tokens/s per sequence", f"{t.decode_tokens_per_second_per_sequence:,.1f}"
        )
        tp.add_row("prefill tokens/s", f"{t.prefill_tokens_per_second:,.0f}")
        tp.add_row(
            "prefill of one max-length prompt", f"{t.prefill_seconds_at_max_model_len:,.2f} s"
        )
        if t.cost_per_million_output_tokens_usd is not None:
            tp.add_row(
                "cost per million output tokens", f"${t.cost_per_million_output_tokens_usd:,.3f}"
            )
        console.print(tp)  # fmt: skip

    for title, items in (
        ("why not", p.reasons),
        ("what would fit", p.suggestions),
        ("notes", p.notes),
    ):
        for item in items:
            console.print(f"[bold]{title}:[/] {item}")
    console.print("[dim]assumptions:[/]")
    for key, text in p.assumptions.items():
        console.print(f"[dim]  {key}: {text}[/]")


def _launch_payload(spec: VllmLaunchSpec, image: str) -> dict[str, Any]:
    return {
        "argv": spec.argv(),
        "command": artefacts.render_command(spec),
        "compose": artefacts.render_compose(spec, image=image),
        "kubernetes": artefacts.render_kubernetes(spec, image=image),
    }


def plan_command(
    model: str = typer.Option(..., "--model", help="Catalog model name."),
    gpu: str = typer.Option(..., "--gpu", help="Catalog GPU name."),
    gpus: int = typer.Option(1, "--gpus", help="Number of GPUs available."),
    dtype: str = typer.Option("bf16", "--dtype", help="Weights: bf16, fp8 or int4-awq."),
    kv_cache_dtype: str = typer.Option("auto", "--kv-cache-dtype", help="auto or fp8."),
    max_model_len: int | None = typer.Option(None, "--max-model-len", help="Context length."),
    concurrency: int | None = typer.Option(None, "--concurrency", help="Target sequences."),
    gpu_price_per_hour: float | None = typer.Option(
        None, "--gpu-price-per-hour", help="USD per GPU-hour, for cost per million tokens."
    ),
    gpu_memory_utilization: float = typer.Option(0.9, "--gpu-memory-utilization"),
    avg_context: int | None = typer.Option(
        None, "--avg-context", help="Average context for the throughput estimate (2048)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    emit: Emit = typer.Option(Emit.none, "--emit", help="Also print a launch artefact."),
    model_path: str | None = typer.Option(
        None, "--model-path", help="Model directory for the launch (default: the Hub id)."
    ),
    served_model_name: str | None = typer.Option(None, "--served-model-name"),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface vLLM binds on the host."),
    port: int = typer.Option(8000, "--port"),
    lora: list[str] | None = typer.Option(None, "--lora", help="LoRA adapter NAME=PATH (repeat)."),
    max_lora_rank: int | None = typer.Option(None, "--max-lora-rank"),
    image: str = typer.Option(artefacts.DEFAULT_IMAGE, "--image", help="vLLM container image."),
) -> None:
    """Size a vLLM deployment: memory, tensor parallelism, concurrency, throughput, cost."""
    try:
        request = make_request(
            model=model,
            gpu=gpu,
            gpus=gpus,
            dtype=dtype,
            kv_cache_dtype=kv_cache_dtype,
            max_model_len=max_model_len,
            concurrency=concurrency,
            gpu_price_per_hour=gpu_price_per_hour,
            gpu_memory_utilization=gpu_memory_utilization,
            avg_context=avg_context,
        )
        result = plan(request)
        spec = None
        if result.fits:
            spec = launch_spec_for(
                result,
                model_path=model_path or get_model(result.model).hf_repo,
                served_model_name=served_model_name,
                host=host,
                port=port,
                lora_modules=tuple(parse_lora(item) for item in lora or ()),
                max_lora_rank=max_lora_rank,
            )
    except AirlockError as exc:
        raise _fail(exc) from None
    if as_json:
        payload = result.model_dump(mode="json")
        payload["launch"] = _launch_payload(spec, image) if spec is not None else None
        typer.echo(json.dumps(payload, indent=2))
    else:
        _render_plan(result, Console())
        if spec is not None and emit is not Emit.none:
            text = {
                Emit.command: lambda: artefacts.render_command(spec),
                Emit.compose: lambda: artefacts.render_compose(spec, image=image),
                Emit.kubernetes: lambda: artefacts.render_kubernetes(spec, image=image),
            }[emit]()
            typer.echo(text, nl=False)
    if not result.fits:
        raise typer.Exit(1)


def _kek_source(
    key_file: Path | None, key_env: str | None, key_command: str | None, flag: str
) -> KekSource:
    given = []
    if key_file is not None:
        given.append(KekSource("file", str(key_file)))
    if key_env is not None:
        given.append(KekSource("env", key_env))
    if key_command is not None:
        given.append(KekSource("command", key_command))
    if len(given) != 1:
        raise typer.BadParameter(f"give exactly one of --{flag}file, --{flag}env, --{flag}command")
    return given[0]


def _load(
    key_file: Path | None, key_env: str | None, key_command: str | None, flag: str = "key-"
) -> Kek:
    return load_kek(_kek_source(key_file, key_env, key_command, flag))


_KEY_FILE = typer.Option(None, "--key-file", help="File holding the key-encryption key.")
_KEY_ENV = typer.Option(None, "--key-env", help="Environment variable holding the KEK.")
_KEY_CMD = typer.Option(None, "--key-command", help="Command printing the KEK (KMS hook).")


def keygen_command(
    path: Path = typer.Argument(..., help="Where to write the new key (mode 0600)."),
) -> None:
    """Write a new random 256-bit key-encryption key (base64). Prints its id, never the key."""
    try:
        kek = generate_kek_file(path)
    except AirlockError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote key-encryption key {kek.key_id} to {path}")


def seal_command(
    src: Path = typer.Argument(..., help="Model file or directory."),
    dst: Path = typer.Argument(..., help="Sealed file (or new directory)."),
    key_file: Path | None = _KEY_FILE,
    key_env: str | None = _KEY_ENV,
    key_command: str | None = _KEY_CMD,
    chunk_mib: int = typer.Option(DEFAULT_CHUNK_SIZE >> 20, "--chunk-mib", help="Chunk size, MiB."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
) -> None:
    """Encrypt model weights at rest (AES-256-GCM, streamed in chunks)."""
    try:
        kek = _load(key_file, key_env, key_command)
        count = seal(src, dst, kek, chunk_size=chunk_mib << 20, overwrite=force)
    except AirlockError as exc:
        raise _fail(exc) from None
    typer.echo(f"sealed {count} file(s) into {dst} under key {kek.key_id}")


def unseal_command(
    src: Path = typer.Argument(..., help="Sealed file or directory."),
    dst: Path = typer.Argument(..., help="Output file (or new directory)."),
    key_file: Path | None = _KEY_FILE,
    key_env: str | None = _KEY_ENV,
    key_command: str | None = _KEY_CMD,
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
) -> None:
    """Decrypt sealed weights; writes nothing unless every chunk authenticates."""
    try:
        kek = _load(key_file, key_env, key_command)
        count = unseal(src, dst, kek, overwrite=force)
    except AirlockError as exc:
        raise _fail(exc) from None
    typer.echo(f"unsealed {count} file(s) into {dst}")


def keys_wrap_command(
    src: Path = typer.Argument(..., help="Sealed file or directory."),
    dst: Path | None = typer.Argument(None, help="Output file (default: rewrite in place)."),
    key_file: Path | None = _KEY_FILE,
    key_env: str | None = _KEY_ENV,
    key_command: str | None = _KEY_CMD,
    new_key_file: Path | None = typer.Option(None, "--new-key-file"),
    new_key_env: str | None = typer.Option(None, "--new-key-env"),
    new_key_command: str | None = typer.Option(None, "--new-key-command"),
) -> None:
    """Rotate the key-encryption key: re-wrap data keys, leave the encrypted body as is."""
    try:
        old = _load(key_file, key_env, key_command)
        new = _load(new_key_file, new_key_env, new_key_command, "new-key-")
        count = rewrap(src, dst, old, new)
    except AirlockError as exc:
        raise _fail(exc) from None
    typer.echo(f"re-wrapped {count} file(s) under key {new.key_id}")


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_command)
    app.command("keygen")(keygen_command)
    app.command("seal")(seal_command)
    app.command("unseal")(unseal_command)
    app.command("keys-wrap")(keys_wrap_command)
