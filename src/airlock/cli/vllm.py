"""``airlock vllm ...``: check the vLLM setup, convert the bundled model, launch vLLM.

``airlock vllm launch`` starts vLLM's OpenAI server under the airlock launcher
(health wait with a progress display, restart with backoff, drain and stop on
Ctrl-C/SIGTERM). The engine flags come from the sizing planner (``--gpu`` ...) or are
given raw (``--engine-args``); request logging is off either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import shlex
import signal
from pathlib import Path

import typer

from airlock.deploy.launcher import SupervisorPolicy, VllmChildSpec, VllmProcess, spec_env_for_cpu
from airlock.deploy.launcher_flags import LaunchFlagError, build_command
from airlock.deploy.launcher_progress import RichLaunchDisplay
from airlock.deploy.vllm_env import (
    SETUP_HINT,
    VllmEnv,
    VllmSetupError,
    find_model_dir,
    find_repo_root,
    find_vllm_env,
    locate_smollm2_gguf,
    run_conversion,
    static_model_dir,
)
from airlock.errors import AirlockError

__all__ = ["register"]

_DEFAULT_CONVERTED = Path(".cache") / "smollm2-hf"


def _fail(exc: AirlockError, code: int) -> typer.Exit:
    typer.echo(f"airlock: {exc.message}", err=True)
    return typer.Exit(code)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check(
    venv: Path | None = typer.Option(None, help="vLLM virtualenv (default: .venv-vllm)."),
    model: Path | None = typer.Option(None, help="Converted model directory."),
    version: bool = typer.Option(False, "--version", help="Also ask vLLM for its version."),
) -> None:
    """Say whether vLLM and the converted model are ready to launch."""
    try:
        env = find_vllm_env(venv)
        model_dir = find_model_dir(model)
    except VllmSetupError as exc:
        raise _fail(exc, 2) from None
    typer.echo(f"vLLM venv:  {env.venv}")
    if version:
        try:
            typer.echo(f"vLLM:       {env.version()}")
        except VllmSetupError as exc:
            raise _fail(exc, 2) from None
    typer.echo(f"model dir:  {model_dir}")


def convert(
    gguf: Path | None = typer.Option(None, help="GGUF file (default: the bundled SmolLM2)."),
    out: Path | None = typer.Option(None, help="Output directory (default: .cache/smollm2-hf)."),
    venv: Path | None = typer.Option(None, help="vLLM virtualenv (default: .venv-vllm)."),
    force: bool = typer.Option(False, help="Convert even if the output is up to date."),
) -> None:
    """Convert a GGUF model into a Hugging Face directory vLLM can serve."""
    try:
        env = find_vllm_env(venv)
        source = gguf or locate_smollm2_gguf()
        target = out or find_repo_root() / _DEFAULT_CONVERTED
        result = run_conversion(env, source, target, force=force)
    except VllmSetupError as exc:
        raise _fail(exc, 2) from None
    typer.echo(f"converted {result.get('source_name')} -> {target} ({result.get('seconds')}s)")


def _planned_engine_args(
    catalog_model: str, gpu: str, gpus: int, dtype: str, max_model_len: int | None
) -> list[str]:
    # Imported lazily: the planner loads its catalogs.
    from airlock.deploy.planner import make_request, plan
    from airlock.deploy.vllm_flags import launch_spec_for

    request = make_request(model=catalog_model, gpu=gpu, gpus=gpus, dtype=dtype,
                           max_model_len=max_model_len)  # fmt: skip
    # model_path is replaced by the launcher with the real directory.
    return launch_spec_for(plan(request), model_path="-").argv()


def launch(
    model: Path = typer.Option(..., "--model", help="Hugging Face model directory to serve."),
    port: int = typer.Option(..., min=1, max=65535, help="Port for vLLM's OpenAI server."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (loopback by default)."),
    served_model_name: str = typer.Option("smollm2-135m-instruct", help="Model name clients send."),
    api_key_env: str = typer.Option(
        "VLLM_API_KEY", help="Environment variable holding the API key clients must send."
    ),
    engine_args: str = typer.Option(
        "", help='Raw vLLM engine flags, e.g. "--max-model-len 2048 --max-num-seqs 16".'
    ),
    catalog_model: str | None = typer.Option(
        None, help="Plan the engine flags for this catalog model (with --gpu)."
    ),
    gpu: str | None = typer.Option(None, help="GPU type to plan for (enables the planner)."),
    gpus: int = typer.Option(1, min=1, help="Number of GPUs to plan for."),
    dtype: str = typer.Option("bf16", help="Planned weight dtype: bf16, fp8 or int4-awq."),
    max_model_len: int | None = typer.Option(None, min=1, help="Planned context length."),
    log_file: Path | None = typer.Option(
        None, help="vLLM's log (default: $AIRLOCK_HOME/vllm/<name>-<port>.log)."
    ),
    venv: Path | None = typer.Option(None, help="vLLM virtualenv (default: .venv-vllm)."),
    cpu_kvcache_gb: int | None = typer.Option(
        None, min=1, help="CPU backend: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE)."
    ),
    cpu_threads_bind: str | None = typer.Option(
        None, help='CPU backend: cores for OpenMP threads, e.g. "0-3" (VLLM_CPU_OMP_THREADS_BIND).'
    ),
    health_timeout: float = typer.Option(900.0, min=1, help="Seconds to wait for /health."),
    drain_timeout: float = typer.Option(30.0, min=0, help="Seconds to drain on shutdown."),
    max_restarts: int | None = typer.Option(None, min=0, help="Give up after this many."),
    dry_run: bool = typer.Option(False, help="Print the command line and exit."),
) -> None:
    """Start vLLM's OpenAI server and keep it running until Ctrl-C or SIGTERM."""
    api_key = os.environ.get(api_key_env) or None
    if api_key is None and not _is_loopback(host):
        typer.echo(
            f"airlock: ${api_key_env} is not set; refusing to serve on {host} without an API key",
            err=True,
        )
        raise typer.Exit(2)
    try:
        env = find_vllm_env(venv)
        model_dir = find_model_dir(model)
        flags = shlex.split(engine_args)
        if gpu is not None or catalog_model is not None:
            if gpu is None or catalog_model is None:
                typer.echo("airlock: --catalog-model and --gpu go together", err=True)
                raise typer.Exit(2)
            flags = [*_planned_engine_args(catalog_model, gpu, gpus, dtype, max_model_len),
                     *flags]  # fmt: skip
        command = build_command(
            python=env.python, model_dir=model_dir, host=host, port=port,
            served_model_name=served_model_name, engine_args=flags, api_key=api_key,
        )  # fmt: skip
    except (VllmSetupError, LaunchFlagError) as exc:
        raise _fail(exc, 2) from None
    except AirlockError as exc:  # planner input errors
        raise _fail(exc, 2) from None
    if dry_run:
        typer.echo(shlex.join(command.argv))
        return
    home = Path(os.environ.get("AIRLOCK_HOME", ".airlock"))
    spec = VllmChildSpec(
        model=static_model_dir(model_dir),
        port=port,
        host=host,
        served_model_name=served_model_name,
        engine_args=tuple(flags),
        api_key=api_key,
        log_path=log_file or home / "vllm" / f"{served_model_name}-{port}.log",
        env=spec_env_for_cpu(kvcache_gb=cpu_kvcache_gb, threads_bind=cpu_threads_bind),
    )
    policy = SupervisorPolicy(
        health_timeout=health_timeout, drain_timeout=drain_timeout, max_restarts=max_restarts
    )
    if api_key is None:
        typer.echo(f"airlock: ${api_key_env} is not set; vLLM accepts requests without a key")
    typer.echo(f"airlock: vLLM log: {spec.log_path}")
    try:
        asyncio.run(_run(spec, policy, env=env))
    except AirlockError as exc:
        raise _fail(exc, 1) from None


async def _run(spec: VllmChildSpec, policy: SupervisorPolicy, *, env: VllmEnv) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with RichLaunchDisplay() as display:
        process = VllmProcess(spec, policy, env=env, on_event=display)
        start = asyncio.create_task(process.start())
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({start, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if start in done:
            start.result()  # raises VllmLaunchError when the launch failed
            typer.echo(f"airlock: vLLM serving {spec.served_model_name} at {process.base_url}")
            typer.echo(f"  register it as an upstream: base_url {process.base_url}")
            await waiter
        else:
            start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await start
        typer.echo("airlock: stopping vLLM (draining first)")
        await process.stop()


def register(app: typer.Typer) -> None:
    """Add ``airlock vllm check|convert|launch``."""
    group = typer.Typer(
        name="vllm",
        help=f"Run vLLM under airlock's supervision ({SETUP_HINT} first).",
        no_args_is_help=True,
    )
    group.command("check")(check)
    group.command("convert")(convert)
    group.command("launch")(launch)
    app.add_typer(group, name="vllm")
