"""``airlock classify`` and ``airlock route explain``, run as the real CLI in a subprocess.

Every run has a network guard (a ``sitecustomize`` that records and refuses any socket
connect or DNS lookup) and points its upstreams at a loopback socket that listens but is
never accepted from: the commands must work with nothing started and no network call.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from airlock.config import RoutingConfig
from airlock.routing.scorer import ComplexityScorer

REPO = Path(__file__).resolve().parents[2]
AIRLOCK = REPO / ".venv" / "bin" / "airlock"

LOCAL = "local-llama"
FRONTIER = "gpt-frontier"

# Packaged-weight scores (measured when written): MC ~0.15, the others 0.27-0.33.
SIMPLE = "Which of the following is a fruit?\nA. apple\nB. car\nC. rock\nD. stone"
COMPLEX = (
    "Prove that there are infinitely many prime numbers, then derive the prime number "
    "theorem step by step and explain each step."
)
SENSITIVE = "Patient John Smith, SSN 536-22-1234, has diabetes"
SENSITIVE_VALUES = ("John Smith", "536-22-1234", "diabetes")

# Non-ASCII before every entity: precomposed and combining accents, astral-plane emoji
# (one code point, two UTF-16 units), a flag (two code points), CJK, math letters.
UNICODE_CASES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Grüße aus Köln 😀🇪🇺 — 日本語テキスト — cafe\u0301: please email "
        "jane.doe@acme-corp.de about card 4111 1111 1111 1111.",
        [("EMAIL_ADDRESS", "jane.doe@acme-corp.de"), ("CREDIT_CARD", "4111 1111 1111 1111")],
    ),
    (
        "Ünïcødé 𝔘𝔫𝔦 — My SSN is 536-22-1234 and IBAN DE89 3704 0044 0532 0130 00, "
        "phone +44 20 7946 0958.",
        [
            ("US_SSN", "536-22-1234"),
            ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"),
            ("PHONE_NUMBER", "+44 20 7946 0958"),
        ],
    ),
    (
        SENSITIVE,
        [("PERSON", "John Smith"), ("US_SSN", "536-22-1234"), ("MEDICAL_CONDITION", "diabetes")],
    ),
]

_GUARD = """
import os
import socket

_LOG = os.environ.get("AIRLOCK_TEST_NET_LOG")


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as f:
        f.write(what + "\\n")
    raise ConnectionRefusedError("network disabled by the test's guard")


if _LOG:
    def _connect(self, address):
        _refuse(f"connect {self.family!r} {address!r}")

    def _connect_ex(self, address):
        _refuse(f"connect_ex {self.family!r} {address!r}")

    def _getaddrinfo(host, *args, **kwargs):
        _refuse(f"getaddrinfo {host!r}")

    socket.socket.connect = _connect
    socket.socket.connect_ex = _connect_ex
    socket.getaddrinfo = _getaddrinfo
"""


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]


@dataclass
class Cli:
    tmp: Path
    guard_dir: Path
    listener: socket.socket

    @property
    def upstream(self) -> str:
        port = self.listener.getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    @property
    def net_log(self) -> Path:
        return self.tmp / "net.log"

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"AIRLOCK_CONFIG", "AIRLOCK_MASTER_KEY", "AIRLOCK_DATABASE_URL"}
        }
        env.update(
            AIRLOCK_HOME=str(self.home),
            AIRLOCK_TEST_NET_LOG=str(self.net_log),
            PYTHONPATH=str(self.guard_dir),
        )
        env.update(extra)
        return env

    def run(self, args: list[str], stdin: bytes = b"", **extra_env: str) -> Run:
        done = subprocess.run(
            [str(AIRLOCK), *args],
            input=stdin,
            capture_output=True,
            env=self.env(**extra_env),
            timeout=180,
            check=False,
        )
        return Run(
            done.returncode,
            done.stdout.decode("utf-8"),
            done.stderr.decode("utf-8", errors="replace"),
        )

    def assert_offline(self) -> None:
        attempts = self.net_log.read_text() if self.net_log.exists() else ""
        assert attempts == "", f"network calls attempted:\n{attempts}"
        self.listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            self.listener.accept()
        # Nothing is started, so nothing is written to the data directory either.
        assert not self.home.exists()

    def config(
        self,
        *,
        default_policy: str = "self-hosted-only",
        frontier_policy: str | None = None,
        threshold: float | None = None,
    ) -> Path:
        frontier: dict[str, Any] = {
            "name": FRONTIER,
            "tier": "frontier",
            "quality": 0.9,
            "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
            "deployments": [
                {
                    "provider": "openai-compatible",
                    "base_url": self.upstream,
                    "api_key_env": "AIRLOCK_TEST_UNSET_KEY",
                    "region": "us",
                }
            ],
        }
        if frontier_policy is not None:
            frontier["privacy_policy"] = frontier_policy
        auto: dict[str, Any] = {"candidates": [LOCAL, FRONTIER]}
        if threshold is not None:
            auto["threshold"] = threshold
        doc = {
            "models": [
                {
                    "name": LOCAL,
                    "tier": "self-hosted",
                    "quality": 0.6,
                    "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
                    "deployments": [
                        {"provider": "openai-compatible", "base_url": self.upstream, "region": "eu"}
                    ],
                },
                frontier,
            ],
            "routing": {"auto": auto},
            "privacy": {"default_policy": default_policy},
        }
        path = self.tmp / f"airlock-{default_policy}-{frontier_policy}-{threshold}.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        return path


@pytest.fixture(scope="module")
def guard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("netguard")
    (path / "sitecustomize.py").write_text(_GUARD, encoding="utf-8")
    return path


@pytest.fixture
def cli(tmp_path: Path, guard_dir: Path) -> Iterator[Cli]:
    assert AIRLOCK.exists(), f"{AIRLOCK} missing: run scripts/bootstrap.sh"
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield Cli(tmp_path, guard_dir, listener)
    finally:
        listener.close()


@pytest.fixture(scope="module")
def scorer() -> ComplexityScorer:
    return ComplexityScorer.load()


@pytest.fixture(scope="module")
def threshold(scorer: ComplexityScorer) -> float:
    """A threshold between the simple prompt and the complex ones, from the real scores."""
    low = scorer.score(SIMPLE)
    high = min(scorer.score(COMPLEX), scorer.score(SENSITIVE))
    assert low < high, "the packaged scorer no longer ranks the complex prompts above SIMPLE"
    return round((low + high) / 2, 6)


def _jsonl(*items: object) -> bytes:
    return b"".join(json.dumps(i, ensure_ascii=False).encode("utf-8") + b"\n" for i in items)


def test_network_guard_records_and_refuses(cli: Cli) -> None:
    """The guard the other tests rely on does catch a connection attempt."""
    port = cli.listener.getsockname()[1]
    code = f"import socket; socket.socket().connect(('127.0.0.1', {port}))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=cli.env(), capture_output=True, check=False
    )
    assert done.returncode != 0
    assert b"network disabled by the test's guard" in done.stderr
    assert cli.net_log.read_text().startswith("connect ")


@pytest.mark.parametrize("stdio_encoding", ["utf-8", "latin-1"])
def test_classify_contract_and_offsets(cli: Cli, stdio_encoding: str) -> None:
    """One line out per line in, in order; offsets are code points into the prompt, also
    when the locale's encoding is not UTF-8 (JSON lines are UTF-8 whatever the locale)."""
    items: list[dict[str, Any]] = [
        {"id": i, "prompt": prompt} for i, (prompt, _) in enumerate(UNICODE_CASES)
    ]
    items += [
        {"id": "plain", "prompt": "What is the capital of France?"},
        {"id": None, "prompt": ""},
        {"prompt": SIMPLE},
        {"id": {"batch": 7, "row": "ü"}, "prompt": COMPLEX},
    ]
    run = cli.run(["classify"], _jsonl(*items), PYTHONIOENCODING=stdio_encoding)
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    out = run.lines()
    assert [o["id"] for o in out] == [i.get("id") for i in items]
    for item, line in zip(items, out, strict=True):
        assert set(line) == {"id", "sensitive", "entities", "complexity", "route"}
        assert isinstance(line["complexity"], float)
        assert 0.0 <= line["complexity"] <= 1.0
        assert line["route"] == "smollm2"  # the embedded model: no config
        assert line["sensitive"] is bool(line["entities"])
        prompt = item["prompt"]
        for ent in line["entities"]:
            assert set(ent) == {"type", "start", "end"}
            assert 0 <= ent["start"] < ent["end"] <= len(prompt)
    for (prompt, expected), line in zip(UNICODE_CASES, out, strict=False):
        found = [(e["type"], prompt[e["start"] : e["end"]]) for e in line["entities"]]
        assert found == expected
        assert line["sensitive"] is True
    assert [o["sensitive"] for o in out[len(UNICODE_CASES) :]] == [False] * 4
    cli.assert_offline()


def test_classify_bad_lines_are_reported_by_number_and_never_echoed(cli: Cli) -> None:
    canary = "canary-7f3a9 Jane Roe SSN 536-22-1234"
    stdin = b"".join(
        [
            _jsonl({"id": "first", "prompt": SENSITIVE}),  # 1
            f"this is not json {canary}\n".encode(),  # 2
            b"\n",  # 3: blank, skipped but counted
            _jsonl(["a JSON array", canary]),  # 4
            _jsonl({"id": 5, "text": canary}),  # 5: no prompt
            _jsonl({"id": 6, "prompt": [canary]}),  # 6: prompt not a string
            f'{{"id": NaN, "prompt": "{canary}"}}\n'.encode(),  # 7
            b'{"id": 8, "prompt": "caf\xe9 ' + canary.encode() + b'"}\n',  # 8: latin-1 byte
            _jsonl({"id": "last", "prompt": "hello"}),  # 9
        ]
    )
    run = cli.run(["classify"], stdin)
    assert run.code == 1
    assert [o["id"] for o in run.lines()] == ["first", "last"]
    errors = run.stderr.splitlines()
    assert [e.split(":")[0:2] for e in errors] == [
        ["error", " line 2"],
        ["error", " line 4"],
        ["error", " line 5"],
        ["error", " line 6"],
        ["error", " line 7"],
        ["error", " line 8"],
    ]
    assert "not valid JSON" in errors[0]
    assert "not valid UTF-8" in errors[5]
    for secret in ("canary", "Jane", "536-22-1234", "John Smith", "array"):
        assert secret not in run.stderr
        assert secret not in run.stdout
    cli.assert_offline()


@pytest.mark.parametrize(
    ("default_policy", "frontier_policy", "sensitive_route"),
    [
        ("self-hosted-only", None, {"route": LOCAL}),
        ("pseudonymize", None, {"route": FRONTIER, "pseudonymized": True}),
        # A model's own stricter policy wins over the default.
        ("pseudonymize", "self-hosted-only", {"route": LOCAL}),
        ("block", None, {"route": None, "route_error": "sensitive_data_blocked"}),
    ],
)
def test_classify_routes_by_tier_policy_and_threshold(
    cli: Cli,
    threshold: float,
    default_policy: str,
    frontier_policy: str | None,
    sensitive_route: dict[str, Any],
) -> None:
    config = cli.config(
        default_policy=default_policy, frontier_policy=frontier_policy, threshold=threshold
    )
    stdin = _jsonl(
        {"id": "simple", "prompt": SIMPLE},
        {"id": "complex", "prompt": COMPLEX},
        {"id": "sensitive", "prompt": SENSITIVE},
    )
    run = cli.run(["classify", "--config", str(config)], stdin)
    assert run.code == 0, run.stderr
    simple, complex_, sensitive = run.lines()
    assert simple["complexity"] < threshold <= complex_["complexity"]
    assert sensitive["complexity"] >= threshold  # complex enough for the frontier model...
    assert (simple["route"], complex_["route"]) == (LOCAL, FRONTIER)
    assert not simple["sensitive"]
    assert not complex_["sensitive"]
    assert sensitive["sensitive"] is True
    # ...but the privacy policy decides where it may go.
    routed = {k: sensitive[k] for k in ("route", "pseudonymized", "route_error") if k in sensitive}
    assert routed == sensitive_route
    cli.assert_offline()


def test_classify_threshold_zero_sends_all_but_sensitive_to_frontier(cli: Cli) -> None:
    """Threshold 0: every non-sensitive prompt goes to the frontier model, none sensitive."""
    config = cli.config(threshold=0.0)
    run = cli.run(
        ["classify", "--config", str(config)],
        _jsonl({"prompt": SIMPLE}, {"prompt": SENSITIVE}, {"prompt": UNICODE_CASES[0][0]}),
    )
    assert run.code == 0, run.stderr
    assert [o["route"] for o in run.lines()] == [FRONTIER, LOCAL, LOCAL]
    cli.assert_offline()


def test_classify_config_errors_exit_2_without_traceback(cli: Cli) -> None:
    bad = cli.tmp / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {"name": "x", "tier": "self-hosted", "deployments": [{"provider": "nope"}]}
                ]
            }
        ),
        encoding="utf-8",
    )
    run = cli.run(["classify", "--config", str(bad)], _jsonl({"prompt": "hi"}))
    assert run.code == 2
    assert run.stdout == ""
    assert "unknown provider 'nope'" in run.stderr
    assert "Traceback" not in run.stderr
    cli.assert_offline()


def test_explain_json_default_config(cli: Cli, scorer: ComplexityScorer) -> None:
    run = cli.run(["route", "explain", "--json", SENSITIVE])
    assert run.code == 0, run.stderr
    info = json.loads(run.stdout)
    share = RoutingConfig().auto.strong_share
    assert info["threshold"] == round(scorer.threshold_for_strong_share(share), 4)
    assert info["complexity"] == round(scorer.score(SENSITIVE), 4)
    assert info["route"] == "smollm2"
    assert info["sensitive"] is True
    assert info["entity_counts"] == {"MEDICAL_CONDITION": 1, "PERSON": 1, "US_SSN": 1}
    assert info["topics"] == ["health"]
    names = [f["feature"] for f in info["top_features"]]
    assert names == [n for n, _ in scorer.explain(SENSITIVE)[:6]]
    assert all(isinstance(f["contribution"], float) for f in info["top_features"])
    assert info["deployments"] == ["smollm2@0"]
    for value in SENSITIVE_VALUES:
        assert value not in run.stdout
    cli.assert_offline()


def test_explain_text_sensitive_prompt_stays_self_hosted(cli: Cli, threshold: float) -> None:
    config = cli.config(threshold=threshold)
    run = cli.run(["route", "explain", "--config", str(config), SENSITIVE])
    assert run.code == 0, run.stderr
    lines = dict(line.split(":", 1) for line in run.stdout.splitlines())
    assert lines["route"].strip().startswith(f"{LOCAL} (")
    assert f">= {round(threshold, 4)}: yes" in lines["complexity"]
    assert lines["sensitive"].strip().startswith("yes: ")
    for entity in ("MEDICAL_CONDITION x1", "PERSON x1", "US_SSN x1"):
        assert entity in lines["sensitive"]
    assert f"it would go to {FRONTIER}" in lines["privacy"]
    assert "bias:" in lines["features"]
    assert lines["candidates"].strip() == f"{LOCAL}@0"
    for value in SENSITIVE_VALUES:
        assert value not in run.stdout
    cli.assert_offline()


def test_explain_json_complex_prompt_from_stdin_goes_frontier(cli: Cli, threshold: float) -> None:
    config = cli.config(threshold=threshold)
    run = cli.run(["route", "explain", "--config", str(config), "--json", "-"], COMPLEX.encode())
    assert run.code == 0, run.stderr
    info = json.loads(run.stdout)
    assert (info["route"], info["reason"]) == (FRONTIER, "auto:complex")
    assert info["threshold"] == round(threshold, 4)
    assert info["complexity"] >= info["threshold"]
    assert info["sensitive"] is False
    assert info["entity_counts"] == {}
    assert info["pseudonymized"] is False
    assert info["route_if_not_sensitive"] is None
    assert info["deployments"] == [f"{FRONTIER}@0"]
    cli.assert_offline()


def test_explain_block_policy_prints_the_refusal(cli: Cli, threshold: float) -> None:
    config = cli.config(default_policy="block", threshold=threshold)
    text = cli.run(["route", "explain", "--config", str(config), SENSITIVE])
    as_json = cli.run(["route", "explain", "--config", str(config), "--json", SENSITIVE])
    assert text.code == 0, text.stderr
    assert as_json.code == 0, as_json.stderr
    first, why = text.stdout.splitlines()[:2]
    assert first == "route:      refused (sensitive_data_blocked)"
    assert why.startswith("why:")
    assert "blocks such requests" in why
    assert "candidates:" not in text.stdout
    info = json.loads(as_json.stdout)
    assert (info["route"], info["reason"], info["deployments"]) == (
        None,
        "sensitive_data_blocked",
        [],
    )
    assert info["entity_counts"] == {"MEDICAL_CONDITION": 1, "PERSON": 1, "US_SSN": 1}
    for value in SENSITIVE_VALUES:
        assert value not in text.stdout + as_json.stdout
    cli.assert_offline()
