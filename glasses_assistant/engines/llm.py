"""The language model: llama.cpp through llama-cpp-python, tokens streamed."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..config import LlmConfig
from ..errors import ModelError

Message = dict[str, str]
log = logging.getLogger("glasses_assistant")


@contextlib.contextmanager
def _quiet_stderr():  # type: ignore[no-untyped-def]
    """llama.cpp prints its load log straight to fd 2; keep the console readable."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _read_gguf_magic(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(4)
    except OSError as err:
        raise ModelError(f"cannot read LLM model {path}: {err.strerror}") from None


class LlamaEngine:
    """One loaded GGUF chat model with a warm context; blocking and thread-confined.

    llama-cpp-python keeps the KV cache of the last prompt and re-evaluates only
    the tokens after the longest common prefix, so the system prompt (and the
    history that did not change) is evaluated once and reused turn after turn.
    """

    def __init__(self, model_path: Path, cfg: LlmConfig) -> None:
        from llama_cpp import Llama

        self.cfg = cfg
        if not model_path.is_file():
            raise ModelError(f"LLM model {model_path} does not exist")
        if _read_gguf_magic(model_path) != b"GGUF":
            raise ModelError(f"LLM model {model_path} is not a GGUF file")
        try:
            with _quiet_stderr():
                self._llm = Llama(
                    model_path=str(model_path), n_ctx=cfg.context, n_threads=cfg.threads,
                    n_threads_batch=cfg.threads, n_gpu_layers=cfg.gpu_layers, n_batch=256,
                    chat_format=cfg.chat_format, verbose=False, seed=0,
                )
        except (ValueError, RuntimeError, OSError) as err:
            raise ModelError(f"cannot load LLM model {model_path}: {str(err).splitlines()[0]}") from None
        meta = self._llm.metadata or {}
        if cfg.chat_format is None and "tokenizer.chat_template" not in meta:
            raise ModelError(
                f"{model_path.name} has no chat template, so it is not a chat model; use an "
                "instruction-tuned GGUF or name its format with --llm-chat-format"
            )
        self.model_path = model_path
        self.n_ctx = self._llm.n_ctx()
        if cfg.gpu_layers != 0:
            import llama_cpp

            if not llama_cpp.llama_supports_gpu_offload():
                # Not an error (the CPU still answers), but the user asked for a GPU they are not getting.
                log.warning("--llm-gpu-layers %d asked for, but this llama-cpp-python was built without GPU "
                            "support: running on the CPU (docs/gpu.md shows the CUDA build)", cfg.gpu_layers)
        self.architecture = meta.get("general.architecture", "?")
        self._grammars: dict[str, object] = {}

    def count_tokens(self, messages: list[Message]) -> int:
        """Tokens the messages take, with a few per message for the template's markers."""
        total = 0
        for m in messages:
            total += len(self._llm.tokenize(m["content"].encode("utf-8"), add_bos=False)) + 6
        return total + 4

    def stream(
        self,
        messages: list[Message],
        on_token: Callable[[str], None],
        *,
        cancel: threading.Event | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """Generate a reply, calling ``on_token`` for each piece; return the whole text.

        Stops between tokens as soon as ``cancel`` is set.
        """
        pieces: list[str] = []
        stream = self._llm.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens or self.cfg.max_tokens,
            temperature=self.cfg.temperature,
            top_p=0.9,
            repeat_penalty=1.1,
            stream=True,
        )
        try:
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    break
                delta = chunk["choices"][0].get("delta", {})  # type: ignore[index]
                piece = delta.get("content")
                if piece:
                    pieces.append(piece)
                    on_token(piece)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return "".join(pieces)

    def complete_json(self, messages: list[Message], schema: dict | None, *, max_tokens: int = 80,
                      prop_order: list[str] | None = None) -> str:
        """One whole completion for a tool call: with ``schema``, llama.cpp's grammar makes it valid JSON
        of that schema (object keys in ``prop_order`` first); without, free generation (the caller
        parses what it gets)."""
        import json

        grammar = None
        if schema is not None:
            key = json.dumps(schema, sort_keys=True)
            grammar = self._grammars.get(key)
            if grammar is None:
                from llama_cpp import LlamaGrammar
                from llama_cpp.llama_grammar import json_schema_to_gbnf

                with _quiet_stderr():
                    grammar = LlamaGrammar.from_string(json_schema_to_gbnf(key, prop_order), verbose=False)
                self._grammars[key] = grammar
        out = self._llm.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0, grammar=grammar, stream=False,
        )
        return str(out["choices"][0]["message"].get("content") or "")  # type: ignore[index]

    def warm(self, messages: list[Message]) -> None:
        """Evaluate the system prompt once so the first turn is as fast as the tenth."""
        self.stream(messages, lambda _piece: None, max_tokens=1)
