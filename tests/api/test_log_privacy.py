"""Invariant 1 for the gateway's own logs: a full run leaves no prompt or completion."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai

from tests.support.server import start_gateway

CANARY = "PELICAN-QUARTZ-{}-CANARY"


def test_logs_hold_no_prompt_or_completion(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path / "home", args=["--log-level", "debug"])
    try:
        client = openai.OpenAI(base_url=gw.api_base, api_key=gw.master_key, max_retries=0)
        canaries = [CANARY.format(i) for i in range(12)]
        outputs: list[str] = []

        def chat(i: int, **kw: object) -> None:
            kw.setdefault("max_tokens", 24)
            resp = client.chat.completions.create(  # type: ignore[call-overload]
                model="smollm2",
                messages=[{"role": "user", "content": f"Repeat after me: {canaries[i]}"}],
                **kw,
            )
            outputs.append(resp.choices[0].message.content or "")
            for call in resp.choices[0].message.tool_calls or []:
                outputs.append(call.function.arguments)

        chat(0, temperature=0)
        chat(1, response_format={"type": "json_object"})
        chat(
            2,
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "echo",
                        "parameters": {
                            "type": "object",
                            "properties": {"text": {"type": "string"}},
                            "required": ["text"],
                        },
                    },
                }
            ],
            tool_choice="required",
            max_tokens=60,
        )
        chat(3, extra_body={canaries[4]: canaries[5]})
        stream = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": "user", "content": f"Say {canaries[6]}"}],
            max_tokens=24,
            stream=True,
        )
        outputs.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        comp = client.completions.create(model="smollm2", prompt=canaries[7], max_tokens=16)
        outputs.append(comp.choices[0].text)
        client.embeddings.create(model="all-minilm-l6-v2", input=[canaries[8]])
        # Error paths: malformed body, bad parameter, unknown model, too long.
        httpx.post(
            gw.api_base + "/chat/completions",
            content=f'{{"model": "smollm2", "messages": [{{"role": "{canaries[9]}"'.encode(),
            headers={"authorization": f"Bearer {gw.master_key}"},
        )
        for body in (
            {"model": "smollm2", "messages": [{"role": "user", "content": canaries[10]}], "n": 4},
            {"model": canaries[11], "messages": [{"role": "user", "content": canaries[10]}]},
            {"model": "smollm2", "messages": [{"role": "user", "content": canaries[10] * 3000}]},
        ):
            r = httpx.post(
                gw.api_base + "/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {gw.master_key}"},
                timeout=60,
            )
            assert 400 <= r.status_code < 500
    finally:
        gw.stop()
    log = gw.log_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert sum(1 for line in lines if line.get("event") == "request") >= 10
    for canary in canaries:
        assert canary not in log
        assert canary.split("-")[1] not in log  # no fragment of it either
    for out in outputs:
        for piece in (p for p in out.split() if len(p) >= 10):
            assert piece not in log, "a completion fragment reached the log"
