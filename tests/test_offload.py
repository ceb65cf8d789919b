# SPDX-License-Identifier: GPL-3.0-or-later
"""A bigger brain on a server: routing, streaming from a real OpenAI-compatible server, fallback.

The server is real: llama-cpp-python's own server (``python -m llama_cpp.server``) on 127.0.0.1
with the bundled GGUF, started as a subprocess. A slow server is that server behind a tiny proxy
that holds back the first byte of every response. Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import converse, words

from glasses_assistant.audio.io import WavSink
from glasses_assistant.config import TINY_SYSTEM_PROMPT, RemoteConfig, load_config
from glasses_assistant.doctor import run_checks
from glasses_assistant.engines.remote import RemoteError, RemoteLlm
from glasses_assistant.errors import ConfigError
from glasses_assistant.pipeline import REMOTE_LOST, Assistant
from glasses_assistant.router import LOCAL, REMOTE, decide, strip_explicit
from glasses_assistant.trace import TurnTrace

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TINY = "smollm2-135m-instruct-q4_1"


def _gguf() -> Path:
    """The server's model: the tiny one. These tests are about the link (streaming, timeouts, fallback),
    and a fast server keeps their timing far from the timeouts on a loaded 2-core machine."""
    from glasses_assistant.catalog import load_catalogue

    cat = load_catalogue()
    return cat.verify(cat.get(TINY))


@contextlib.contextmanager
def _server(tmp: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port, ready when /v1/models answers."""
    port = _free_port()
    log = (tmp / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(_gguf()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {(tmp / f'server-{port}.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 90 s")
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _server(tmp_path_factory.mktemp("server")) as (url, _proc):
        yield url


class SlowProxy:
    """A TCP proxy on 127.0.0.1 that holds back the first byte of each response for ``delay`` s."""

    def __init__(self, upstream_url: str, delay: float) -> None:
        host_port = upstream_url.split("//", 1)[1].split("/", 1)[0]
        self.upstream = (host_port.split(":")[0], int(host_port.split(":")[1]))
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.delay), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, delay: float) -> None:
        first = True
        try:
            while data := src.recv(65536):
                if first and delay:
                    time.sleep(delay)
                first = False
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


@contextlib.contextmanager
def remote(assistant: Assistant, **settings: object) -> Iterator[Assistant]:
    """The session's assistant with these ``[remote]`` settings; back to remote off afterwards.

    The server here runs the tiny 135M, so the conversation speaks the prompt tuned for it: the default
    prompt's example ("Lisbon. It is the capital of Portugal.") is what the 135M would say back."""
    assistant.configure_remote(RemoteConfig(**settings))  # type: ignore[arg-type]
    assistant.conversation.clear()
    prompt = assistant.conversation.system_prompt
    assistant.conversation.system_prompt = TINY_SYSTEM_PROMPT
    try:
        yield assistant
    finally:
        assistant.configure_remote(RemoteConfig())
        assistant.conversation.clear()
        assistant.conversation.system_prompt = prompt


def ask(assistant: Assistant, question: str, tmp_path: Path) -> TurnTrace:
    """A typed question answered aloud into a WAV."""
    sink = WavSink(tmp_path / "reply.wav")

    async def main() -> TurnTrace:
        try:
            return await assistant.respond(question, sink)
        finally:
            await sink.close()

    return asyncio.run(main())


def labels(trace: TurnTrace, track: str) -> list[str]:
    return [label for t, label, _s, _e in trace.spans if t == track]


# ---------------------------------------------------------------------------- the router (pure logic)
ON = {"url": "http://127.0.0.1:9/v1"}


@pytest.mark.parametrize(("policy", "question", "target"), [
    ("local", "Explain step by step how a rocket works and why it flies?", LOCAL),
    ("local", "Ask the big model what is the capital of France?", LOCAL),
    ("remote", "What is the capital of France?", REMOTE),
    ("escalate", "What is the capital of France?", LOCAL),
    ("escalate", "Ask the big model what is the capital of France?", REMOTE),
    ("escalate", "Explain how a rainbow forms.", REMOTE),
    ("escalate", "First boil the water, then what do I add?", REMOTE),
    ("escalate", "Where is Rome? And how far is it from Paris?", REMOTE),
    ("escalate", " ".join(["word"] * 30), REMOTE),
    ("escalate", " ".join(["word"] * 20), LOCAL),
])
def test_router_decisions(policy: str, question: str, target: str) -> None:
    cfg = RemoteConfig(policy=policy, **(ON if policy != "local" else {}))
    assert decide(question, cfg).target == target


def test_router_strips_the_explicit_request() -> None:
    cfg = RemoteConfig(policy="escalate", **ON)
    route = decide("Ask the big model: why is the sky blue?", cfg)
    assert (route.target, route.question, route.reason) == (REMOTE, "Why is the sky blue?", "asked for the big model")
    assert strip_explicit("What is two plus two, ask the bigger model.") == ("What is two plus two", True)
    assert strip_explicit("Ask the server what time it is in Tokyo")[0] == "What time it is in Tokyo"
    assert strip_explicit("Ask the big model to plan my day")[0] == "Plan my day"
    assert strip_explicit("Tell me about big models") == ("Tell me about big models", False)
    # Remote off: the phrase is still removed, the question stays on the device.
    assert decide("Ask the big model what is 2 plus 2", RemoteConfig()).question == "What is 2 plus 2"


def test_remote_settings_are_checked() -> None:
    assert load_config().remote.policy == "local"  # off by default
    with pytest.raises(ConfigError, match="--remote-url is needed"):
        load_config(overrides={"remote": {"policy": "remote"}})
    with pytest.raises(ConfigError, match="--remote-url must start with http"):
        load_config(overrides={"remote": {"policy": "escalate", "url": "ftp://x"}})
    with pytest.raises(ConfigError, match="--remote-policy"):
        load_config(overrides={"remote": {"policy": "cloud"}})


def test_unreachable_server_is_one_clear_error() -> None:
    llm = RemoteLlm(RemoteConfig(policy="remote", url=f"http://127.0.0.1:{_free_port()}/v1"))
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match="unreachable") as err:
        llm.stream([{"role": "user", "content": "hi"}], lambda _p: None)
    assert err.value.delivered == "" and time.monotonic() - t0 < 2.0


def test_a_server_that_never_answers_times_out_from_the_request() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never says a word
    try:
        cfg = RemoteConfig(policy="remote", url=f"http://127.0.0.1:{silent.getsockname()[1]}/v1",
                           first_token_timeout_s=0.5)
        t0 = time.monotonic()
        with pytest.raises(RemoteError, match="0.5 s"):
            RemoteLlm(cfg).stream([{"role": "user", "content": "hi"}], lambda _p: None)
        assert 0.4 < time.monotonic() - t0 < 1.5
    finally:
        silent.close()


# ---------------------------------------------------------------------------- on the real models
models = pytest.mark.models


@models
def test_remote_off_connects_nowhere(assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Assistant(load_config()).remote is None
    assert assistant.remote is None
    connects: list[object] = []

    def no_connect(self: socket.socket, address: object) -> None:
        connects.append(address)
        raise AssertionError(f"connected to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", no_connect)
    trace = ask(assistant, "Ask the big model what is the capital of France?", tmp_path)
    assert trace.outcome == "answered" and "paris" in words(trace.reply)
    assert labels(trace, "route") == ["local: remote off"]
    assert connects == []


@models
def test_remote_answer_is_streamed_into_speech(
    assistant: Assistant, speak, llama_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert assistant.llm is not None

    def local_must_not_answer(*_a: object, **_k: object) -> str:
        raise AssertionError("the local model answered")

    # The filler waits long enough that a server on the same two busy cores is still "prompt":
    # this test is about streaming; test_slow_server_* pin the filler's timing.
    with remote(assistant, policy="remote", url=llama_server, filler_after_s=10.0, first_token_timeout_s=20.0,
                stall_timeout_s=20.0):
        monkeypatch.setattr(assistant.llm, "stream", local_must_not_answer)
        with caplog.at_level(logging.INFO, logger="glasses_assistant.remote"):
            traces, audio, rate = converse(assistant, [speak("What is the capital of France?")], tmp_path)
    t = traces[0]
    assert t.outcome == "answered", t.error
    assert labels(t, "route") == ["remote: policy remote"]
    assert any(lb.startswith(f"remote generation ({llama_server}/chat/completions)") for lb in labels(t, "llm"))
    assert "paris" in words(t.reply) and len(t.phrases) >= 1
    assert "filler" not in labels(t, "route")  # the server was prompt: no "One moment."
    assert len(audio) > 0.5 * rate and t.voice_to_voice_ms is not None
    assert t.first_token <= t.first_phrase <= t.first_audio  # type: ignore[operator]
    sent = [r.getMessage() for r in caplog.records if r.name == "glasses_assistant.remote"]
    assert len(sent) == 1 and f"POST {llama_server}/chat/completions" in sent[0] and "messages=2" in sent[0]


@models
def test_server_killed_mid_answer_local_model_answers(
    assistant: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _server(tmp_path) as (url, proc), remote(assistant, policy="escalate", url=url, max_tokens=200):
        assert assistant.remote is not None
        real = assistant.remote.stream
        seen = {"n": 0}

        def killed_after_some_tokens(messages, on_token, **kw):  # type: ignore[no-untyped-def]
            def token(piece: str) -> None:
                seen["n"] += 1
                on_token(piece)
                if seen["n"] == 25:
                    os.kill(proc.pid, signal.SIGKILL)  # the server dies mid-answer
            return real(messages, token, **kw)

        monkeypatch.setattr(assistant.remote, "stream", killed_after_some_tokens)
        trace = ask(assistant, "Ask the big model to tell me a long story about a dragon and a knight.", tmp_path)
        asked = assistant.conversation.exchanges[-1].user
    assert asked == "Tell me a long story about a dragon and a knight."
    assert proc.poll() is not None
    assert trace.outcome == "answered", trace.error
    route = labels(trace, "route")
    assert route[0] == "remote: asked for the big model"
    assert any(lb.startswith("fallback to local") for lb in route), route
    assert "generation" in labels(trace, "llm")  # the local model answered after the server died
    spoken = trace.phrases
    if REMOTE_LOST in spoken:  # some of the server's phrases had been spoken: they stand
        assert spoken.index(REMOTE_LOST) > 0
    assert len(spoken) > (spoken.index(REMOTE_LOST) + 1 if REMOTE_LOST in spoken else 0)
    print(spoken)


@models
def test_slow_server_times_out_filler_then_local_answer(
    assistant: Assistant, llama_server: str, tmp_path: Path
) -> None:
    proxy = SlowProxy(llama_server, delay=8.0)
    try:
        with remote(assistant, policy="remote", url=proxy.url, first_token_timeout_s=1.5, filler_after_s=0.3):
            t0 = time.monotonic()
            trace = ask(assistant, "What is the capital of France?", tmp_path)
            took = time.monotonic() - t0
    finally:
        proxy.close()
    assert trace.outcome == "answered", trace.error
    assert "filler" in labels(trace, "route")
    assert "One moment." in labels(trace, "speaker") and "One moment." not in trace.phrases
    assert any("no first token within 1.5 s" in lb or "no answer within 1.5 s" in lb for lb in labels(trace, "route"))
    assert "paris" in words(trace.reply)
    assert took < 8.0  # did not wait for the slow server


@models
def test_late_server_gets_the_filler_then_its_answer(assistant: Assistant, llama_server: str, tmp_path: Path) -> None:
    proxy = SlowProxy(llama_server, delay=1.0)
    try:
        with remote(assistant, policy="remote", url=proxy.url, first_token_timeout_s=6.0, filler_after_s=0.3):
            trace = ask(assistant, "What is the capital of France?", tmp_path)
    finally:
        proxy.close()
    assert trace.outcome == "answered", trace.error
    route = labels(trace, "route")
    assert "filler" in route and not any(lb.startswith("fallback") for lb in route)
    assert any(lb.startswith("remote generation") for lb in labels(trace, "llm"))
    speaker = labels(trace, "speaker")
    assert speaker[0] == "One moment." and "paris" in words(trace.reply)


@models
def test_unreachable_server_falls_back_at_once(assistant: Assistant, tmp_path: Path) -> None:
    with remote(assistant, policy="remote", url=f"http://127.0.0.1:{_free_port()}/v1"):
        trace = ask(assistant, "What is the capital of France?", tmp_path)
    assert trace.outcome == "answered" and "paris" in words(trace.reply)
    assert any("unreachable" in lb for lb in labels(trace, "route"))
    assert "filler" not in labels(trace, "route")


@models
def test_escalation_sends_only_what_it_must(
    assistant: Assistant, llama_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Generous server timeouts: the loopback server shares the cores, and this test is about
    # what is sent, not how fast (the timeout tests below pin that).
    with remote(assistant, policy="escalate", url=llama_server, first_token_timeout_s=20.0, filler_after_s=10.0,
                stall_timeout_s=20.0), \
            caplog.at_level(logging.INFO, logger="glasses_assistant.remote"):
        simple = ask(assistant, "What is the capital of France?", tmp_path)
        assert not [r for r in caplog.records if r.name == "glasses_assistant.remote"]
        asked = ask(assistant, "Ask the big model what is the capital of Japan?", tmp_path)
        last = assistant.conversation.exchanges[-1].user
    assert labels(simple, "route") == ["local: simple question"]
    assert labels(asked, "route") == ["remote: asked for the big model"]
    assert any(lb.startswith("remote generation") for lb in labels(asked, "llm"))
    sent = [r.getMessage() for r in caplog.records if r.name == "glasses_assistant.remote"]
    assert len(sent) == 1
    assert last == "What is the capital of Japan?"


@models
def test_vision_stays_local_unless_allowed(assistant: Assistant, llama_server: str) -> None:
    messages = [{"role": "system", "content": "Say what is seen."}, {"role": "user", "content": "Seen: a cup."}]
    with remote(assistant, policy="remote", url=llama_server):
        assert assistant._phrase_view(messages)[1] == "local"
    # Generous timeouts: the loopback server shares the cores; this pins where it goes, not how fast.
    with remote(assistant, policy="remote", url=llama_server, vision=True, first_token_timeout_s=20.0,
                filler_after_s=10.0, stall_timeout_s=20.0):
        assert assistant._phrase_view(messages)[1] == "remote"


@models
def test_doctor_reports_the_server(llama_server: str) -> None:
    cfg = load_config(overrides={"remote": {"policy": "escalate", "url": llama_server}})
    rows = {c.stage: c for c in run_checks(cfg)}
    assert rows["remote"].status == "ok" and "reachable" in rows["remote"].detail
    assert rows["llm"].status in ("ok", "warn") and rows["models"].status == "ok"
    off = subprocess.run([sys.executable, "-m", "glasses_assistant", "doctor", "--json"], capture_output=True,
                         text=True, timeout=120, cwd=REPO)
    assert "Traceback" not in off.stderr
    checks = {c["stage"]: c for c in json.loads(off.stdout)}
    assert checks["remote"]["status"] == "off" and set(checks) >= {"llm", "stt", "tts", "audio", "models"}
    bad = subprocess.run([sys.executable, "-m", "glasses_assistant", "doctor", "--remote-policy", "remote",
                          "--remote-url", f"http://127.0.0.1:{_free_port()}/v1"], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "cannot reach" in bad.stdout


LATENCY_PROMPTS = [
    "What is the capital of France?", "What is the capital of Japan?", "How many legs does a spider have?",
    "What color is the sky?", "What is the capital of Italy?", "What is two plus two?",
]


def measure_routes(assistant: Assistant, speak, url: str, tmp_path: Path) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Voice-to-voice latency of the same spoken prompts, local and offloaded to ``url``, alternating."""
    out: dict[str, list[float]] = {"local": [], "remote": []}
    for n, prompt in enumerate(LATENCY_PROMPTS):
        order = ("local", "remote") if n % 2 == 0 else ("remote", "local")
        for route in order:
            settings = {"policy": "remote", "url": url, "filler_after_s": 0.0} if route == "remote" else {}
            with remote(assistant, **settings):
                traces, _, _ = converse(assistant, [speak(prompt)], tmp_path)
            assert traces and traces[0].outcome == "answered" and traces[0].voice_to_voice_ms is not None
            out[route].append(traces[0].voice_to_voice_ms)
    return out


@models
def test_latency_local_vs_remote_on_loopback(assistant: Assistant, speak, llama_server: str, tmp_path: Path) -> None:
    from glasses_assistant.engines.llm import LlamaEngine

    # Like for like: the same tiny GGUF in process as on the server (the offload's cost, not the model's).
    default = assistant.llm
    assistant.llm = LlamaEngine(_gguf(), assistant.config.llm, name=TINY)
    try:
        got = measure_routes(assistant, speak, llama_server, tmp_path)
    finally:
        assistant.llm = default
    report = {route: {"n": len(v), "p50_ms": statistics.median(v), "all_ms": v} for route, v in got.items()}
    out = REPO / "out" / "offload-latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    assert all(len(v) == len(LATENCY_PROMPTS) for v in got.values())
