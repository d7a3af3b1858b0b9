"""Invariant 1, the canary test: content sent through every path leaves no trace.

One real gateway process (debug logging, the default SQLite ledger in AIRLOCK_HOME)
fronts a self-hosted model on a scripted loopback upstream, a frontier model under the
``pseudonymize`` policy on another, and the embedded SmolLM2. Every request carries
fresh canaries: uuid-based words, and valid US SSNs, Luhn-valid card numbers, IBANs
and person names (checked to be detected as entities). They go through success paths
(JSON, streaming with usage, JSON mode, tool-call arguments, completions, embeddings),
upstream failures (4xx/5xx and mid-stream error events whose bodies echo the prompt,
timeouts, malformed JSON, connection resets, retries), malformed client requests
(invalid JSON, wrong types, unknown field names and values, model names, headers, URL
paths, methods), auth failures, rate limits, a client that disconnects mid-stream and
pseudonymised frontier calls. The upstreams' names are canaries too: they are the
words of every completion, so completion text is traced as well.

After a graceful stop (SIGTERM) everything the process left is searched, byte for
byte, for each value and simple transforms of it (lower/upper case, JSON- and
URL-escaped, UTF-16): every file under AIRLOCK_HOME (database, -wal/-shm, audit JSONL
mirror), the log, a dump of every database table and the /metrics page. The run also
proves it did what it claims: every routed request left exactly one audit record and
one ledger row, the log holds an access line per request, the frontier saw
placeholders.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import yaml

from airlock.privacy.detector import Detector
from tests.support.faulty_upstream import (
    Fault,
    FaultyUpstream,
    drip,
    error,
    hang,
    malformed,
    ok,
    reset,
)
from tests.support.server import AIRLOCK, GatewayProcess, start_gateway

_FIRST_NAMES = ("Eleanor", "Margaret", "Henry", "Charlotte", "Walter", "Beatrice")
_PLACEHOLDER = re.compile(r"<[A-Z_]+_\d+>")


class Canaries:
    """Fresh, unique values for one run; every value made is remembered as a needle."""

    def __init__(self) -> None:
        self._rng = random.Random(uuid.uuid4().int)
        self.needles: list[str] = []
        self.entities: list[str] = []
        self.param_names: list[str] = []
        self.detector = Detector()

    def word(self, tag: str) -> str:
        value = f"Canary{tag.capitalize()}{uuid.uuid4().hex[:16]}"
        self.needles.append(value)
        return value

    def lower_word(self, tag: str) -> str:
        """Shaped like an OpenAI parameter name (lower case, underscores)."""
        value = f"canary_{tag}_{uuid.uuid4().hex[:16]}"
        self.needles.append(value)
        return value

    def param_name(self) -> str:
        """An unknown top-level field name shaped like an OpenAI parameter; only names
        on OpenAI's own parameter list may be logged (see the test below)."""
        value = f"canary_field_{uuid.uuid4().hex[:16]}"
        self.param_names.append(value)
        return value

    def unicode(self) -> str:
        value = f"Zoë Ñandú «{uuid.uuid4().hex[:10]}»"
        self.needles.append(value)
        return value

    def _entity(self, *forms: str) -> None:
        self.needles.extend(forms)
        self.entities.extend(forms)

    def person(self) -> str:
        rng = self._rng
        surname = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(4))
        name = f"{rng.choice(_FIRST_NAMES)} {surname.capitalize()}"
        self._entity(name, surname.capitalize())
        return name

    def ssn(self) -> str:
        rng = self._rng
        value = f"{rng.randint(100, 665):03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999)}"
        self._entity(value, value.replace("-", ""))
        return value

    def card(self) -> str:
        digits = "4" + "".join(str(self._rng.randint(0, 9)) for _ in range(14))
        total = 0
        for i, d in enumerate(reversed(digits)):  # Luhn, check digit appended
            n = int(d) * (2 if i % 2 == 0 else 1)
            total += n - 9 if n > 9 else n
        digits += str((10 - total % 10) % 10)
        grouped = " ".join(digits[i : i + 4] for i in range(0, 16, 4))
        self._entity(grouped, digits)
        return grouped

    def iban(self) -> str:
        bban = "".join(str(self._rng.randint(0, 9)) for _ in range(18))
        check = 98 - int(bban + "131400") % 97  # D=13, E=14, then "00"
        value = f"DE{check:02d}{bban}"
        grouped = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        self._entity(value, grouped)
        return value

    def prompt(self, tag: str) -> str:
        """A prompt holding a canary word and one entity of each kind, all detected."""
        text = (
            f"Patient {self.person()} (SSN {self.ssn()}) paid with card {self.card()}; "
            f"refund to IBAN {self.iban()}. Reference {self.word(tag)}."
        )
        found = {e.type for e in self.detector.detect_many([text]).entities}
        assert {"PERSON", "US_SSN", "CREDIT_CARD", "IBAN_CODE"} <= found, (tag, found)
        return text


def _forms(value: str) -> set[bytes]:
    texts = {value, value.lower(), value.upper(), json.dumps(value)[1:-1], quote(value)}
    texts.add(quote_plus(value))
    out = {t.encode("utf-8") for t in texts}
    out.add(value.encode("utf-16-le"))
    return out


def _hits(haystacks: dict[str, bytes], needles: list[str]) -> list[str]:
    found: list[str] = []
    for needle in needles:
        for form in _forms(needle):
            for name, data in haystacks.items():
                at = data.find(form)
                if at >= 0:
                    context = data[max(0, at - 80) : at + len(form) + 40]
                    found.append(f"{needle!r} in {name}: …{context!r}…")
    return found


@dataclass
class Sent:
    tag: str
    request_id: str
    status: int
    routed: bool
    body: bytes
    # False when the HTTP server itself refused the request (the app never saw it).
    reached_app: bool = True


@dataclass
class Run:
    gw: GatewayProcess
    canaries: Canaries
    sent: list[Sent] = field(default_factory=list)
    metrics: str = ""
    exit_code: int | None = None
    frontier_bodies: list[str] = field(default_factory=list)
    # Needles the gateway echoes to the caller by design (OpenAI does the same): the
    # model name in model_not_found and the URL in unknown_url. Not content, and only
    # ever in the caller's own response; still searched for everywhere else.
    echoed_to_caller: list[str] = field(default_factory=list)
    # ``param`` and ``code`` of an upstream error body: never copied into the caller's
    # error unless they are on OpenAI's own lists (see the test below).
    upstream_error_fields: list[str] = field(default_factory=list)


class Driver:
    def __init__(self, run: Run, http: httpx.Client) -> None:
        self.run = run
        self.http = http
        self._n = 0

    def send(
        self,
        tag: str,
        expect: int,
        body: Any = None,
        *,
        routed: bool = True,
        path: str = "/v1/chat/completions",
        method: str = "POST",
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = None,
        stop_after_events: int | None = None,
        reached_app: bool = True,
    ) -> Sent:
        self._n += 1
        rid = f"canary-test-{self._n:03d}-{tag}"
        hdrs = {"authorization": f"Bearer {key or self.run.gw.master_key}", "x-request-id": rid}
        hdrs.update(headers or {})
        if body is not None:
            content = json.dumps(body).encode()
        if content is not None:
            hdrs.setdefault("content-type", "application/json")
        with self.http.stream(method, path, content=content, headers=hdrs) as resp:
            if stop_after_events is None:
                data = resp.read()
            else:
                got, chunks = 0, []
                for line in resp.iter_lines():
                    chunks.append(line)
                    got += line.startswith("data: ")
                    if got >= stop_after_events:
                        break
                data = "\n".join(chunks).encode()
        assert resp.status_code == expect, (tag, resp.status_code, data[:300])
        returned = resp.headers.get("x-request-id", "")
        if hdrs["x-request-id"] == rid and reached_app:
            assert returned == rid
        sent = Sent(tag, returned, resp.status_code, routed, data, reached_app)
        self.run.sent.append(sent)
        return sent


def _chat(model: str, text: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **kw}


def _echo(text: str) -> bytes:
    """An upstream error body that quotes the prompt, as some servers do."""
    return json.dumps(
        {
            "error": {
                "message": f"Invalid prompt: {text!r} could not be processed",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    ).encode()


def _success_paths(d: Driver, c: Canaries) -> None:
    body = _chat("local", c.prompt("ok"), user=c.word("user"), stop=[c.word("stop")], seed=7)
    d.send("ok", 200, body)
    usage = {"include_usage": True}
    sent = d.send("stream", 200, _chat("local", c.prompt("s"), stream=True, stream_options=usage))
    assert b"[DONE]" in sent.body
    assert b'"usage"' in sent.body
    schema = {"type": "object", "properties": {c.lower_word("prop"): {"description": c.word("d")}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    d.send("json", 200, _chat("local", f"{c.prompt('json')} {c.unicode()}", response_format=fmt))
    d.send(
        "json-object", 200, _chat("local", c.prompt("jo"), response_format={"type": "json_object"})
    )
    call = {"name": "lookup", "arguments": json.dumps({"note": c.prompt("toolargs")})}
    params = {"type": "object", "properties": {"note": {"enum": [c.word("enum")]}}}
    tool = {"name": "lookup", "description": c.word("tooldesc"), "parameters": params}
    messages = [
        {"role": "user", "content": c.prompt("tooluser")},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": call}]},
        {"role": "tool", "tool_call_id": "c1", "content": c.prompt("toolresult")},
    ]
    d.send(
        "tools",
        200,
        {"model": "local", "messages": messages, "tools": [{"type": "function", "function": tool}]},
    )
    prompts = [c.prompt("cmpl1"), c.prompt("cmpl2")]
    d.send("completion", 200, {"model": "local", "prompt": prompts}, path="/v1/completions")
    body = {"model": "local", "prompt": c.prompt("cmplstream"), "stream": True}
    assert b"[DONE]" in d.send("completion-stream", 200, body, path="/v1/completions").body
    body = {"model": "local", "input": [c.prompt("emb1"), c.word("emb2")]}
    d.send("embeddings", 200, body, path="/v1/embeddings")
    for stream in (False, True):  # the real embedded model, a few tokens
        text = f"Repeat exactly: {c.prompt('smol')}"
        d.send(f"embedded-{stream}", 200, _chat("smollm2", text, max_tokens=6, stream=stream))


def _upstream_faults(d: Driver, c: Canaries, local: FaultyUpstream) -> None:
    def fails(
        tag: str, expect: int, text: str, *faults: Fault, model: str = "local", **kw: Any
    ) -> Sent:
        local.script(*faults)
        return d.send(tag, expect, _chat(model, text, **kw))

    text = c.prompt("up400")
    fails("upstream-400", 400, text, error(400, body=_echo(text)))
    text = c.prompt("up400b")
    echo = {"message": text, "param": c.param_name(), "code": c.lower_word("code")}
    d.run.upstream_error_fields += [echo["param"], echo["code"]]
    fails("upstream-400-fields", 400, text, error(400, body=json.dumps({"error": echo}).encode()))
    text = c.prompt("up500")
    fails("upstream-500", 502, text, error(500, body=_echo(text)), error(502, body=_echo(text)))
    text = c.prompt("up503")
    e503 = error(503, body=_echo(text))
    fails("upstream-503-stream", 502, text, e503, e503, stream=True)
    text = c.prompt("upretry")  # then the default answer: the retry succeeds
    fails("upstream-retry", 200, text, error(500, body=_echo(text)))
    text = c.prompt("midstream")
    event = Fault(error_event_after=2, body=_echo(text))
    assert b'"error"' in fails("midstream-error", 200, text, event, stream=True).body
    # Response headers that echo the request: an HTTP client's debug trace prints them.
    fails("upstream-header-echo", 200, c.prompt("hdr"), ok(headers=(("x-echo", c.prompt("e")),)))
    text = c.prompt("hdr500")
    echoed = error(500, body=_echo(text), headers=(("x-echo", text),))
    fails("upstream-header-echo-500", 200, text, echoed)
    fails("hang-stream", 504, c.prompt("hang1"), hang(), hang(), model="tight", stream=True)
    fails("hang-json", 504, c.prompt("hang2"), hang(), model="tight")
    # Then the default answer: a retry after a first-token timeout.
    fails("hang-retry", 200, c.prompt("hang3"), hang(), model="tight", stream=True)
    fails("malformed-json", 502, c.prompt("malf1"), malformed(), malformed())
    fails("malformed-stream", 502, c.prompt("malf2"), malformed(), malformed(), stream=True)
    cut = fails("reset-midstream", 200, c.prompt("rst1"), reset(3), stream=True)
    assert b"[DONE]" not in cut.body
    fails("reset-retry", 200, c.prompt("rst2"), reset(0))
    local.script(drip(0.2, chunks=40))
    body = _chat("local", c.prompt("gone"), stream=True)
    d.send("disconnect", 200, body, stop_after_events=3)
    assert local.wait_until(lambda u: u.requests[-1].outcome == "aborted", 5)


def _bad_requests(d: Driver, c: Canaries) -> None:
    word = c.word("badjson")
    raw = f'{{"model": "local", "messages": [{{"role": "user", "content": "{word}'.encode()
    d.send("invalid-json", 400, routed=False, content=raw)
    for i, bad in enumerate(
        [
            {"model": "local", "messages": c.prompt("typesmsgs")},
            {"model": "local", "messages": [{"role": c.word("role"), "content": c.prompt("r")}]},
            _chat("local", c.prompt("temp"), temperature=c.word("temperature")),
            _chat("local", c.prompt("maxtok"), max_tokens=c.word("maxtokens")),
            _chat("local", c.prompt("stopdict"), stop={c.word("stopkey"): c.word("stopval")}),
            _chat("local", c.prompt("nested"), response_format={"type": c.word("fmt")}),
            _chat("local", c.prompt("toolchoice"), tool_choice={"type": c.word("tc")}),
            {"model": ["local", c.word("modellist")], "messages": [{"role": "user"}]},
            {"model": "local", "prompt": c.prompt("wrongendpoint")},
        ]
    ):
        d.send(f"wrong-types-{i}", 400, bad, routed=False)
    body = {
        **_chat("local", c.prompt("unknown")),
        c.word("FieldName"): c.word("fieldvalue"),
        c.param_name(): c.prompt("unknownvalue"),
        c.unicode(): {"nested": c.word("nestedvalue")},
        "metadata": {c.lower_word("metakey"): c.word("metavalue")},
    }
    d.send("unknown-fields", 200, body)
    for i, make in enumerate((lambda: c.word("model"), lambda: f"{c.person()} {c.ssn()}")):
        before = len(c.needles)
        name = make()
        d.run.echoed_to_caller += c.needles[before:]
        d.send(f"model-name-{i}", 404, _chat(name, c.prompt("model")))
    headers = {
        "x-request-id": f"{c.person()} SSN {c.ssn()} {c.word('rid')}",
        "user-agent": c.word("agent"),
        "x-custom": c.prompt("customheader"),
        "referer": f"https://example.com/{c.word('referer')}",
        "x-forwarded-for": c.word("xff"),
        "openai-organization": c.word("org"),
        "cookie": f"session={c.word('cookie')}",
    }
    d.send("headers", 200, _chat("local", c.prompt("headers")), headers=headers)
    headers = {"x-airlock-prefer": c.word("prefer")}
    d.send("header-prefer", 400, _chat("local", c.prompt("prefer")), headers=headers)
    headers = {"x-airlock-max-cost-usd": c.word("cost")}
    d.send("header-max-cost", 400, _chat("local", c.prompt("maxcost")), headers=headers)
    body = {
        **_chat("local", c.prompt("logme")),
        "log_content": True,
        "metadata": {"log": "full", "note": c.word("logmeta")},
        "store": True,
    }
    headers = {"x-airlock-log-content": "true", "x-log-level": "debug"}
    d.send("log-content-asked", 200, body, headers=headers)
    text = c.prompt("large") + " " + c.word("large") * 2000
    d.send("too-large", 413, _chat("local", text), routed=False)
    d.run.echoed_to_caller += [c.word("url"), c.word("url2")]
    url, url2 = d.run.echoed_to_caller[-2:]
    d.send("url-model", 404, routed=False, method="GET", path=f"/v1/models/{url}")
    d.send("url-path", 404, {"x": 1}, routed=False, path=f"/v1/{url2}")
    path = f"/v1/chat/completions?q={quote(c.prompt('query'))}"
    d.send("url-query", 200, _chat("local", "hello"), path=path)
    # uvicorn's parser refuses an unknown method before the app sees it (plain-text 400).
    method = c.word("method").upper()
    d.send("method", 400, {}, routed=False, method=method, reached_app=False)


def _auth_and_limits(d: Driver, c: Canaries) -> None:
    tokens = [c.word("token"), f"alk_{c.word('alk')}", f"sk-{c.word('sk')}", c.prompt("tok")]
    for i, token in enumerate(tokens):
        d.send(f"auth-{i}", 401, _chat("local", "hi"), routed=False, key=token)
    limited = _new_key(d.run.gw, "--name", "canary-rpm", "--rpm", "1")
    d.send("rpm-first", 200, _chat("local", "hi"), key=limited)
    d.send("rpm-limited", 429, _chat("local", c.prompt("rpm")), routed=False, key=limited)


def _frontier_paths(d: Driver, c: Canaries, frontier: FaultyUpstream) -> None:
    for stream in (False, True):
        d.send(f"frontier-{stream}", 200, _chat("frontier", c.prompt("fr"), stream=stream))
    d.send("auto", 200, _chat("auto", c.prompt("auto")))
    d.run.frontier_bodies = [json.dumps(r.body, ensure_ascii=False) for r in frontier.requests]


def _new_key(gw: GatewayProcess, *args: str) -> str:
    done = subprocess.run(
        [str(AIRLOCK), "keys", "create", "--json", *args],
        env=gw.extra_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    key: str = json.loads(done.stdout)["key"]
    return key


def _config(local: FaultyUpstream, frontier: FaultyUpstream) -> dict[str, Any]:
    every = ["chat", "completions", "embeddings", "json_mode", "tools"]
    return {
        "models": [
            {
                "name": "local",
                "tier": "self-hosted",
                "capabilities": every,
                "deployments": [{"provider": "openai-compatible", "base_url": local.base_url}],
            },
            {
                "name": "tight",
                "tier": "self-hosted",
                "deployments": [
                    {
                        "provider": "openai-compatible",
                        "name": "tight",
                        "base_url": local.base_url,
                        "timeouts": {"connect": 1.0, "first_token": 0.5, "total": 1.5},
                    }
                ],
            },
            {
                "name": "frontier",
                "tier": "frontier",
                "quality": 0.95,
                "privacy_policy": "pseudonymize",
                "price": {"input_per_mtok": 2.5, "output_per_mtok": 10.0},
                "deployments": [{"provider": "openai-compatible", "base_url": frontier.base_url}],
            },
            {
                "name": "smollm2",
                "tier": "self-hosted",
                "deployments": [{"provider": "embedded"}],
            },
        ],
        "routing": {
            "auto": {"candidates": ["local", "frontier"], "threshold": 0.0},
            "retry": {"max_attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.05},
            "breaker": {"failure_threshold": 1000, "reset_after_s": 1},
        },
        "server": {"max_body_bytes": 16384},
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    c = Canaries()
    root: Path = tmp_path_factory.mktemp("canary")
    # The upstreams' names are the words of every answer they give: completion canaries.
    with (
        FaultyUpstream(c.word("completion")) as local,
        FaultyUpstream(c.word("frontiercompletion")) as frontier,
    ):
        (root / "airlock.yaml").write_text(yaml.safe_dump(_config(local, frontier)))
        gw = start_gateway(
            root / "home", config=root / "airlock.yaml", env={"AIRLOCK_LOG_LEVEL": "debug"}
        )
        result = Run(gw, c)
        try:
            with httpx.Client(base_url=gw.base_url, timeout=30) as http:
                d = Driver(result, http)
                _success_paths(d, c)
                _upstream_faults(d, c, local)
                _bad_requests(d, c)
                _auth_and_limits(d, c)
                _frontier_paths(d, c, frontier)
                scraped = http.get("/metrics", headers={"authorization": f"Bearer {gw.master_key}"})
                assert scraped.status_code == 200
                result.metrics = scraped.text
        finally:
            result.exit_code = gw.stop()
        yield result


def _db_dump(home: Path) -> tuple[str, dict[str, list[tuple[Any, ...]]]]:
    with sqlite3.connect(f"file:{home / 'airlock.db'}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        # Table names come from sqlite_master itself, not from any input.
        rows = {t: conn.execute(f'SELECT * FROM "{t}"').fetchall() for t in tables}  # noqa: S608
    return repr(rows), rows


def _haystacks(run: Run) -> dict[str, bytes]:
    home = run.gw.home
    out = {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}
    out["<log>"] = run.gw.log_path.read_bytes()
    out["<db dump>"] = _db_dump(home)[0].encode()
    out["<metrics>"] = run.metrics.encode()
    return out


def test_the_run_did_what_it_claims(run: Run) -> None:
    assert run.exit_code in (0, -15)  # uvicorn re-raises SIGTERM after a graceful stop
    statuses = {s.status for s in run.sent}
    assert {200, 400, 401, 404, 413, 429, 502, 504} <= statuses
    haystacks = _haystacks(run)
    assert "airlock.db" in haystacks
    assert any(name.endswith(".jsonl") for name in haystacks)
    assert "airlock_requests_total" in run.metrics
    lines = [json.loads(x) for x in run.gw.log_text().splitlines() if x.startswith("{")]
    assert any(x["level"] == "debug" for x in lines), "debug logging was not on"
    logged = {x.get("request_id") for x in lines if x.get("event") == "request"}
    missing = [s.tag for s in run.sent if s.reached_app and s.request_id not in logged]
    assert not missing, f"no access-log line for {missing}"
    # The canaries are not trivially absent: needles are many and distinct.
    assert len(set(run.canaries.needles)) == len(run.canaries.needles) > 300


def test_every_routed_request_left_one_audit_record_and_one_ledger_row(run: Run) -> None:
    with sqlite3.connect(f"file:{run.gw.home / 'airlock.db'}?mode=ro", uri=True) as conn:
        usage = [r[0] for r in conn.execute("SELECT request_id FROM usage")]
        audit = [
            r[0] for r in conn.execute("SELECT request_id FROM audit_records WHERE event='request'")
        ]
    routed = sorted(s.request_id for s in run.sent if s.routed)
    assert len(routed) > 30
    assert sorted(usage) == routed
    assert sorted(audit) == routed
    mirror = (run.gw.home / "audit" / "audit.jsonl").read_text().splitlines()
    entries = [json.loads(x) for x in mirror]
    assert sorted(e["data"]["request_id"] for e in entries if e["event"] == "request") == routed


@pytest.mark.parametrize("where", ["home", "log", "db", "metrics"])
def test_no_canary_anywhere(run: Run, where: str) -> None:
    every = _haystacks(run)
    pick = {
        "home": {k: v for k, v in every.items() if not k.startswith("<")},
        "log": {"<log>": every["<log>"]},
        "db": {"<db dump>": every["<db dump>"]},
        "metrics": {"<metrics>": every["<metrics>"]},
    }[where]
    hits = _hits(pick, run.canaries.needles)
    assert not hits, "\n".join(hits[:20])


def test_no_canary_in_error_bodies_sent_to_the_caller(run: Run) -> None:
    errors = {f"{s.tag} ({s.status})": s.body for s in run.sent if s.status != 200}
    assert len(errors) > 20
    skip = {*run.echoed_to_caller, *run.upstream_error_fields}
    needles = [n for n in run.canaries.needles if n not in skip]
    hits = _hits(errors, needles)
    assert not hits, "\n".join(hits[:20])


def test_the_frontier_saw_placeholders_never_entity_values(run: Run) -> None:
    assert len(run.frontier_bodies) >= 2
    sent = {f"frontier request {i}": b.encode() for i, b in enumerate(run.frontier_bodies)}
    assert all(_PLACEHOLDER.search(b) for b in run.frontier_bodies)
    hits = _hits(sent, run.canaries.entities)
    assert not hits, "\n".join(hits[:20])


def test_unknown_field_names_shaped_like_parameters_stay_out_of_the_log(run: Run) -> None:
    assert run.canaries.param_names
    hits = _hits({"<log>": run.gw.log_path.read_bytes()}, run.canaries.param_names)
    assert not hits, "\n".join(hits)


def test_upstream_error_codes_are_not_copied_into_the_callers_error(run: Run) -> None:
    body = next(s.body for s in run.sent if s.tag == "upstream-400-fields")
    hits = _hits({"upstream-400-fields": body}, run.upstream_error_fields)
    assert not hits, "\n".join(hits)
