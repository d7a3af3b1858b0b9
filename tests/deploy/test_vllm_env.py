"""Finding the vLLM venv and model directory; the conversion's bookkeeping."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from airlock.deploy import convert
from airlock.deploy.vllm_env import (
    SETUP_HINT,
    SMOLLM2_GGUF_NAME,
    VllmSetupError,
    find_model_dir,
    find_repo_root,
    find_vllm_env,
    locate_smollm2_gguf,
    run_conversion,
    static_model_dir,
)


def make_venv(root: Path, *, with_vllm: bool = True, with_python: bool = True) -> Path:
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    if with_python:
        python = venv / "bin" / "python"
        python.write_text("#!/bin/sh\nexit 0\n")
        python.chmod(python.stat().st_mode | stat.S_IXUSR)
    if with_vllm:
        server = venv / "lib/python3.11/site-packages/vllm/entrypoints/openai/api_server.py"
        server.parent.mkdir(parents=True)
        server.write_text("")
    return venv


def make_model(root: Path) -> Path:
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"\0")
    return model


def test_a_complete_venv_is_found(tmp_path: Path) -> None:
    venv = make_venv(tmp_path)
    env = find_vllm_env(venv)
    assert env.venv == venv
    assert env.python == venv / "bin" / "python"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"with_python": False}, "has no bin/python"),
        ({"with_vllm": False}, "vLLM is not installed"),
    ],
)
def test_an_incomplete_venv_says_what_is_wrong_and_how_to_fix_it(
    tmp_path: Path, kwargs: dict[str, bool], problem: str
) -> None:
    venv = make_venv(tmp_path, **kwargs)
    with pytest.raises(VllmSetupError, match=problem) as err:
        find_vllm_env(venv)
    assert SETUP_HINT in err.value.message


def test_a_missing_venv_points_to_the_setup_script(tmp_path: Path) -> None:
    with pytest.raises(VllmSetupError, match="not found") as err:
        find_vllm_env(tmp_path / "nope")
    assert SETUP_HINT in err.value.message
    assert err.value.status_code == 503


def test_venv_and_model_come_from_the_environment_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = make_venv(tmp_path)
    model = make_model(tmp_path)
    monkeypatch.setenv("AIRLOCK_VLLM_VENV", str(venv))
    monkeypatch.setenv("AIRLOCK_VLLM_MODEL", str(model))
    assert find_vllm_env().venv == venv
    assert find_model_dir() == model


def test_defaults_are_relative_to_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRLOCK_VLLM_VENV", raising=False)
    monkeypatch.delenv("AIRLOCK_VLLM_MODEL", raising=False)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup-vllm.sh").write_text("")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert find_repo_root() == tmp_path
    with pytest.raises(VllmSetupError, match=str(tmp_path / ".venv-vllm")):
        find_vllm_env()
    with pytest.raises(VllmSetupError, match=str(tmp_path / ".cache" / "smollm2-hf")):
        find_model_dir()


def test_model_dir_checks(tmp_path: Path) -> None:
    model = make_model(tmp_path)
    assert find_model_dir(model) == model
    (model / "model.safetensors").unlink()
    with pytest.raises(VllmSetupError, match="no weight files"):
        find_model_dir(model)
    (model / "config.json").unlink()
    with pytest.raises(VllmSetupError, match=r"no config\.json"):
        find_model_dir(model)
    with pytest.raises(VllmSetupError, match="not found"):
        find_model_dir(tmp_path / "missing")


def test_static_model_dir_yields_the_path_each_time(tmp_path: Path) -> None:
    source = static_model_dir(tmp_path)
    for _ in range(2):
        with source() as path:
            assert path == tmp_path


def test_the_bundled_gguf_is_located_without_importing_its_package() -> None:
    path = locate_smollm2_gguf()
    assert path.name == SMOLLM2_GGUF_NAME
    assert path.stat().st_size > 50_000_000


def test_conversion_failure_is_reported_with_its_exit_code(tmp_path: Path) -> None:
    venv = make_venv(tmp_path)
    failing = venv / "bin" / "python"
    failing.write_text("#!/bin/sh\necho 'something broke' >&2\nexit 7\n")
    with pytest.raises(VllmSetupError, match="exit 7") as err:
        run_conversion(find_vllm_env(venv), tmp_path / "x.gguf", tmp_path / "out")
    assert "something broke" in err.value.message


# --- convert.py's bookkeeping (the transformers part is exercised by the vllm tier) -----


def write_marker(out: Path, gguf: Path, dtype: str = "bfloat16") -> None:
    out.mkdir()
    (out / "config.json").write_text("{}")
    marker = {
        "source_size": gguf.stat().st_size,
        "source_sha256": convert._sha256(gguf),
        "dtype": dtype,
    }
    (out / convert.MARKER_NAME).write_text(json.dumps(marker))


def test_is_converted_checks_marker_source_and_dtype(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" + b"\1" * 100)
    out = tmp_path / "out"
    assert not convert.is_converted(out, gguf)
    write_marker(out, gguf)
    assert convert.is_converted(out, gguf)
    assert convert.is_converted(out, gguf, "bfloat16")
    assert not convert.is_converted(out, gguf, "float32")
    gguf.write_bytes(b"GGUF" + b"\2" * 100)  # same size, other content
    assert not convert.is_converted(out, gguf)
    assert not convert.is_converted(out, tmp_path / "gone.gguf")
    (out / convert.MARKER_NAME).write_text("not json")
    assert not convert.is_converted(out)


def test_an_up_to_date_conversion_is_not_redone(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    out = tmp_path / "out"
    write_marker(out, gguf)
    # transformers is not installed in airlock's venv, so reaching the conversion would fail.
    assert convert.convert_gguf(gguf, out)["dtype"] == "bfloat16"


def test_convert_refuses_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(convert.ConversionError, match="not found"):
        convert.convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(convert.ConversionError, match="dtype must be one of"):
        convert.convert_gguf(gguf, tmp_path / "out", dtype="int3")


def test_convert_main_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = convert.main(["--gguf", str(tmp_path / "missing.gguf"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "GGUF file not found" in capsys.readouterr().err
