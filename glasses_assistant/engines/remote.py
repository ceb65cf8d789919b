# SPDX-License-Identifier: GPL-3.0-or-later
"""A language model on a server, over the OpenAI-compatible chat API, tokens streamed (SSE).

Works with llama.cpp's ``llama-server``, llama-cpp-python's server, vLLM and Ollama
(``/v1/chat/completions`` with ``"stream": true``). Blocking and thread-confined, like
:class:`~glasses_assistant.engines.llm.LlamaEngine`, with the same ``stream()`` signature.

The standard library's ``http.client`` is enough (one POST, then lines of ``data: {...}``),
so the assistant gains no dependency for this. Timeouts are socket timeouts set per read:
until the first token the read waits only for what is left of ``first_token_timeout_s``
(counted from the request, so a server that accepts the connection and then says nothing is
given up on as fast as one that cannot be reached), after it each read waits
``stall_timeout_s`` at most. Every failure is a :class:`RemoteError` telling whether any
token had been delivered, so the caller can fall back to the local model.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable

from ..config import RemoteConfig
from ..errors import AssistantError

Message = dict[str, str]
# A named channel, not __name__: `run` turns it on to show what was sent to the server (an audit line per request).
log = logging.getLogger("glasses_assistant.remote")


class RemoteError(AssistantError):
    """The server failed to answer (unreachable, late, stalled, refused, or cut off)."""

    def __init__(self, message: str, *, delivered: str = "") -> None:
        super().__init__(message)
        self.delivered = delivered
        """The text already handed to ``on_token`` before the failure."""


class RemoteLlm:
    """A chat model on an OpenAI-compatible server; nothing connects until ``stream()`` is called."""

    def __init__(self, cfg: RemoteConfig, *, temperature: float = 0.0) -> None:
        if not cfg.url:
            raise RemoteError("no --remote-url configured")
        self.cfg = cfg
        self.temperature = temperature
        url = urllib.parse.urlsplit(cfg.url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise RemoteError(f"--remote-url {cfg.url!r} is not an http(s) URL")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._base = url.path or ""
        self.endpoint = f"{url.scheme}://{url.netloc}{self._base}/chat/completions"

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.cfg.api_key:
            headers["Authorization"] = f"Bearer {self.cfg.api_key}"
        return headers

    def stream(
        self,
        messages: list[Message],
        on_token: Callable[[str], None],
        *,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """Stream a reply, calling ``on_token`` for each piece; return the whole text.

        Raises :class:`RemoteError` on any failure (with what was already delivered).
        Stops between pieces as soon as ``cancel`` is set.
        """
        cfg = self.cfg
        body: dict[str, object] = {
            "messages": messages, "stream": True, "max_tokens": max_tokens or cfg.max_tokens,
            "temperature": self.temperature, "top_p": 0.9,
        }
        if cfg.model:
            body["model"] = cfg.model
        payload = json.dumps(body).encode("utf-8")
        # Privacy: one line per request saying what left the device and where to.
        log.info("remote request: POST %s model=%s messages=%d chars=%d", self.endpoint, cfg.model or "-",
                 len(messages), sum(len(m.get("content", "")) for m in messages))
        started = time.monotonic()
        deadline = started + cfg.first_token_timeout_s
        pieces: list[str] = []

        def fail(why: str) -> RemoteError:
            return RemoteError(f"remote LLM at {self.endpoint}: {why}", delivered="".join(pieces))

        conn = self._connection(cfg.first_token_timeout_s)
        try:
            try:
                conn.request("POST", f"{self._base}/chat/completions", body=payload, headers=self._headers())
                self._set_timeout(conn, deadline - time.monotonic())
                response = conn.getresponse()
            except TimeoutError:
                raise fail(f"no answer within {cfg.first_token_timeout_s:g} s") from None
            except (OSError, http.client.HTTPException) as err:
                raise fail(f"unreachable ({err.__class__.__name__}: {err})") from None
            if response.status != 200:
                detail = response.read(300).decode("utf-8", "replace").strip().splitlines()
                raise fail(f"HTTP {response.status} {response.reason}" + (f": {detail[0]}" if detail else ""))
            done = False
            while not done:
                if cancel is not None and cancel.is_set():
                    break
                if pieces:
                    timeout = cfg.stall_timeout_s
                else:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        raise fail(f"no first token within {cfg.first_token_timeout_s:g} s")
                self._set_timeout(conn, timeout)
                try:
                    line = response.readline()
                except TimeoutError:
                    if pieces:
                        raise fail(f"stalled: no token for {cfg.stall_timeout_s:g} s") from None
                    raise fail(f"no first token within {cfg.first_token_timeout_s:g} s") from None
                except (OSError, http.client.HTTPException) as err:
                    raise fail(f"connection lost ({err.__class__.__name__})") from None
                if not line:
                    # EOF before "data: [DONE]": the server died or dropped us mid-answer.
                    raise fail("connection closed before the answer was complete")
                text = line.decode("utf-8", "replace").strip()
                if not text.startswith("data:"):
                    continue  # blank separators, ": ping" keep-alives, "event:" lines
                data = text[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except json.JSONDecodeError:
                    raise fail("sent something that is not JSON") from None
                if isinstance(chunk, dict) and "error" in chunk:
                    raise fail(f"error: {str(chunk['error'])[:200]}")
                choices = chunk.get("choices") if isinstance(chunk, dict) else None
                choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    pieces.append(piece)
                    on_token(piece)
                # Ollama and vLLM end with a finish_reason and then [DONE]; either ends the answer.
                done = choice.get("finish_reason") is not None
        finally:
            conn.close()
        return "".join(pieces)

    @staticmethod
    def _set_timeout(conn: http.client.HTTPConnection, timeout: float) -> None:
        if conn.sock is not None:
            conn.sock.settimeout(max(0.01, timeout))

    def models(self, timeout: float = 2.0) -> list[str]:
        """The model ids the server offers (``GET /models``): the reachability check of ``doctor``."""
        conn = self._connection(timeout)
        try:
            conn.request("GET", f"{self._base}/models", headers=self._headers())
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise RemoteError(f"{self.endpoint.rsplit('/chat', 1)[0]}/models: HTTP {response.status}")
            data = json.loads(body or b"{}")
            return [str(m.get("id", "?")) for m in data.get("data", []) if isinstance(m, dict)]
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as err:
            raise RemoteError(f"cannot reach {self.cfg.url}: {err.__class__.__name__}: {err}") from None
        finally:
            conn.close()
