"""A stand-in for vLLM's OpenAI server, installed in a throw-away "venv".

The stand-in is importable as ``vllm.entrypoints.openai.api_server`` from the fake venv's
``bin/python``, so the launcher runs its real code path against it (same argv, process
group, log file, ``/health`` polling, ``/metrics`` draining, signals). ``FAKE_*``
environment variables steer it; it records its argv/env and spawns a grandchild (like
vLLM's engine core) under ``FAKE_STATE_DIR``.
"""

from __future__ import annotations

import stat
import sys
import textwrap
from pathlib import Path

from airlock.deploy.vllm_env import VllmEnv, find_vllm_env

__all__ = ["FAKE_SERVER", "make_fake_vllm_env"]

FAKE_SERVER = textwrap.dedent(
    '''
    """Stand-in for vLLM's OpenAI server: /health, /metrics, /v1/models, chat completions."""
    import argparse, json, os, signal, subprocess, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--host"); parser.add_argument("--port", type=int)
    parser.add_argument("--model"); parser.add_argument("--served-model-name")
    args, _ = parser.parse_known_args()
    state = Path(os.environ["FAKE_STATE_DIR"])
    counter = state / "attempts"
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    (state / f"argv-{attempt}.json").write_text(json.dumps({
        "argv": sys.argv[1:], "pid": os.getpid(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("VLLM_", "FAKE_", "DO_"))},
    }))
    # A grandchild in the same process group, like vLLM's engine core.
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (state / f"helper-{attempt}").write_text(str(helper.pid))
    print(f"fake vllm attempt {attempt} starting", flush=True)
    if os.environ.get("FAKE_IGNORE_SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_on = {int(a) for a in os.environ.get("FAKE_EXIT_ON_ATTEMPTS", "").split(",") if a}
    if attempt in exit_on:
        sys.exit(3)
    time.sleep(float(os.environ.get("FAKE_START_DELAY", "0")))
    sick_after = int(os.environ.get("FAKE_SICK_AFTER", "0"))
    health_calls = 0

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code, body, ctype="application/json"):
            data = body.encode()
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            global health_calls
            if self.path == "/health":
                health_calls += 1
                sick = sick_after and health_calls > sick_after and attempt == 1
                self._send(503 if sick else 200, "")
                if not sick:
                    (state / f"healthy-{attempt}").touch()
            elif self.path == "/metrics":
                f = os.environ.get("FAKE_IN_FLIGHT_FILE")
                n = int(Path(f).read_text()) if f and Path(f).exists() else 0
                n += active
                self._send(200, "# TYPE vllm:num_requests_running gauge\\n"
                    f'vllm:num_requests_running{{model_name="{args.served_model_name}"}} {n}.0\\n'
                    "# TYPE vllm:num_requests_waiting gauge\\n"
                    f'vllm:num_requests_waiting{{model_name="{args.served_model_name}"}} 0.0\\n',
                    "text/plain")
            elif self.path == "/v1/models":
                self._send(200, json.dumps({"data": [{"id": args.served_model_name}]}))
            else:
                self._send(404, "{}")

        def do_POST(self):
            # Chat completions in OpenAI's shape: "tok0 tok1 ..." (FAKE_TOKENS words, each
            # after FAKE_TOKEN_DELAY seconds), with usage; streamed when asked.
            global active
            key = os.environ.get("VLLM_API_KEY")
            if key and self.headers.get("authorization") != f"Bearer {key}":
                self._send(401, json.dumps({"error": {"message": "bad key", "code": 401}}))
                return
            if self.path != "/v1/chat/completions":
                self._send(404, "{}")
                return
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            with (state / "requests").open("a") as log:
                log.write(json.dumps(body) + "\\n")
            tokens = int(os.environ.get("FAKE_TOKENS", "4"))
            delay = float(os.environ.get("FAKE_TOKEN_DELAY", "0"))
            usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": 5 + tokens}
            base = {"id": "chatcmpl-fake", "created": 1, "model": body["model"]}
            with lock:
                active += 1
            try:
                if not body.get("stream"):
                    time.sleep(delay * tokens)
                    text = " ".join(f"tok{i}" for i in range(tokens))
                    self._send(200, json.dumps({**base, "object": "chat.completion",
                        "choices": [{"index": 0, "finish_reason": "length",
                            "message": {"role": "assistant", "content": text}}],
                        "usage": usage}))
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                def event(choices, extra=None):
                    chunk = {**base, "object": "chat.completion.chunk", "choices": choices}
                    chunk.update(extra or {})
                    self.wfile.write(f"data: {json.dumps(chunk)}\\n\\n".encode())
                    self.wfile.flush()
                event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])
                for i in range(tokens):
                    time.sleep(delay)
                    finish = "length" if i == tokens - 1 else None
                    event([{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": finish}])
                event([], {"usage": usage})
                self.wfile.write(b"data: [DONE]\\n\\n")
                self.wfile.flush()
            finally:
                with lock:
                    active -= 1

    import threading
    lock = threading.Lock()
    active = 0
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
    '''
)


def make_fake_vllm_env(root: Path) -> VllmEnv:
    """A directory shaped like the vLLM venv whose api_server is the stand-in."""
    venv = root / "venv"
    pkg = venv / "lib" / "python3.11" / "site-packages"
    module_dir = pkg / "vllm" / "entrypoints" / "openai"
    module_dir.mkdir(parents=True)
    for d in (pkg / "vllm", pkg / "vllm" / "entrypoints", module_dir):
        (d / "__init__.py").write_text("")
    (module_dir / "api_server.py").write_text(FAKE_SERVER)
    python = venv / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{pkg}" exec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return find_vllm_env(venv)
