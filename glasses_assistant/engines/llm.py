# SPDX-License-Identifier: GPL-3.0-or-later
"""The language model: llama.cpp through llama-cpp-python, tokens streamed."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from ..config import LlmConfig
from ..errors import ConfigError, ModelError

if TYPE_CHECKING:
    from llama_cpp import LlamaGrammar

Message = dict[str, str]
log = logging.getLogger(__name__)


class CancelFlag(Protocol):
    """What a generation checks between tokens (a threading.Event, or several behind one test)."""

    def is_set(self) -> bool: ...


_SENTINEL = "\u2063\u2063END-OF-QUESTION\u2063\u2063"
"""Marks where the question's text ends inside a rendered prompt (an invisible separator pair)."""


class _PromptCapture(Exception):
    """Raised by :class:`_PromptProbe` to stop a chat handler once it has made its prompt."""


class _PromptProbe:
    """Stands in for the Llama object in a chat handler: records the prompt text it tokenizes,
    then stops it before any evaluation. So the prompt is made by the model's own chat handler
    (its Jinja template, or a named chat format), exactly as a real completion would make it."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self.texts: list[tuple[bytes, bool, bool]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        self.texts.append((text, add_bos, special))
        return list(self._llm.tokenize(text, add_bos=add_bos, special=special))

    def create_completion(self, *args: Any, **kwargs: Any) -> Any:
        raise _PromptCapture()


@contextlib.contextmanager
def _quiet_stderr():
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


def available_memory() -> int | None:
    """Bytes this process can still take: the kernel's MemAvailable, or less under a cgroup limit.

    None when neither can be read (not Linux): then no check is made.
    """
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's limit (cgroup v2) is what the OOM killer enforces there
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


KV_BYTES_PER_TOKEN = 32 * 1024
"""A small model's KV cache per context token (Qwen2.5-1.5B: 28 KiB, SmolLM2-135M: 23 KiB, f16)."""
OVERHEAD_BYTES = 100 * 2**20
"""llama.cpp's compute buffers and the rest of a loaded model beyond its weights, measured on the 1.5B."""
HEADROOM_BYTES = 200 * 2**20
"""What the rest of the assistant still loads after the LLM (Piper) and needs to run its turns."""


def resident_estimate(model_path: Path, cfg: LlmConfig) -> int:
    """Bytes the model will hold once loaded: its weights, its KV cache and llama.cpp's buffers."""
    return model_path.stat().st_size + cfg.context * KV_BYTES_PER_TOKEN + OVERHEAD_BYTES


def ensure_fits(model_path: Path, cfg: LlmConfig, name: str, available: int | None = None) -> None:
    """Refuse, in one line, a model this machine cannot hold, before llama.cpp starts allocating.

    Loading it anyway would end in the kernel's OOM killer, at load or in the middle of a turn,
    with nothing said to the wearer. ``available`` is for tests (default: :func:`available_memory`).
    """
    free = available_memory() if available is None else available
    if free is None:
        return
    need = resident_estimate(model_path, cfg)
    if need + HEADROOM_BYTES <= free:
        return
    gb = 1e9  # decimal, as sizes are given in the README and `models list`
    raise ModelError(
        f"the LLM {name} ({model_path.stat().st_size / gb:.1f} GB file) needs about {need / gb:.1f} GB of memory "
        f"and only {free / gb:.1f} GB is available here: use the tiny profile (--llm-profile tiny, "
        f"[llm] profile = \"tiny\": SmolLM2-135M, about 0.3 GB) or a smaller GGUF"
    )


def _read_gguf_magic(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(4)
    except OSError as err:
        raise ModelError(f"cannot read LLM model {path}: {err.strerror}") from None


PROMPT_ROOM = 64
"""Tokens the system prompt must leave for the wearer's question (and a little history)."""


def check_chat_format(name: str) -> None:
    """ConfigError unless llama-cpp-python knows the chat format ``name`` (checked before loading)."""
    from llama_cpp import llama_chat_format

    try:
        llama_chat_format.get_chat_completion_handler(name)
    except Exception:  # LlamaChatCompletionHandlerNotFoundException, whatever its base
        registry = llama_chat_format.LlamaChatCompletionHandlerRegistry()
        known = sorted(getattr(registry, "_chat_handlers", {}) or ())
        raise ConfigError(f"--llm-chat-format {name!r} is not a chat format llama-cpp-python knows"
                          + (f" (known: {', '.join(known)})" if known else "")) from None
class SmallModelDraft:
    """Speculative decoding's drafter: a small GGUF with the chat model's tokenizer proposes the next
    few tokens greedily; llama-cpp-python's ``draft_model`` hook has the big model check them in one
    batch and keep the ones it agrees with. The draft keeps its own KV cache, prefix-reused like the
    big model's, so each step evaluates only the tokens accepted since the last one."""

    def __init__(self, llama: Any, n_tokens: int) -> None:
        self.llama = llama
        self.n_tokens = n_tokens

    def __call__(self, input_ids: Any, /, **_kwargs: Any) -> Any:
        import numpy as np

        out: list[int] = []
        eos = self.llama.token_eos()
        for token in self.llama.generate(list(input_ids), top_k=1, temp=0.0, repeat_penalty=1.0):
            out.append(int(token))
            if len(out) >= self.n_tokens or token == eos:
                break
        return np.asarray(out, dtype=np.intc)


class LlamaEngine:
    """One loaded GGUF chat model with a warm context; blocking and thread-confined.

    llama-cpp-python keeps the KV cache of the last prompt and re-evaluates only
    the tokens after the longest common prefix, so the system prompt (and the
    history that did not change) is evaluated once and reused turn after turn.
    """

    def __init__(self, model_path: Path, cfg: LlmConfig, *, name: str | None = None,
                 draft_path: Path | None = None) -> None:
        from llama_cpp import Llama

        self.cfg = cfg
        if not model_path.is_file():
            raise ModelError(f"LLM model {model_path} does not exist")
        if _read_gguf_magic(model_path) != b"GGUF":
            raise ModelError(f"LLM model {model_path} is not a GGUF file")
        if cfg.chat_format is not None:
            check_chat_format(cfg.chat_format)
        if cfg.gpu_layers == 0:  # offloaded layers live in GPU memory, which this check cannot see
            ensure_fits(model_path, cfg, name or model_path.name)
        draft: SmallModelDraft | None = None
        try:
            with _quiet_stderr():
                if draft_path is not None:
                    draft = SmallModelDraft(Llama(
                        model_path=str(draft_path), n_ctx=cfg.context, n_threads=cfg.threads,
                        n_threads_batch=cfg.threads, n_gpu_layers=cfg.gpu_layers, n_batch=256, verbose=False,
                        seed=0, use_mmap=cfg.mmap), cfg.draft_tokens)
                self._llm = Llama(
                    model_path=str(model_path), n_ctx=cfg.context, n_threads=cfg.threads,
                    n_threads_batch=cfg.threads, n_gpu_layers=cfg.gpu_layers, n_batch=256,
                    chat_format=cfg.chat_format, verbose=False, seed=0, use_mmap=cfg.mmap,
                    draft_model=draft,  # type: ignore[arg-type]  # duck-typed: LlamaDraftModel's __call__
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
        self.draft = draft
        if draft is not None and draft.llama.n_vocab() != self._llm.n_vocab():
            raise ModelError(f"draft model {draft_path} has another vocabulary ({draft.llama.n_vocab()} tokens, "
                             f"not {self._llm.n_vocab()}): speculative decoding needs the same tokenizer")
        self.n_ctx = self._llm.n_ctx()
        if cfg.gpu_layers != 0:
            import llama_cpp

            if not llama_cpp.llama_supports_gpu_offload():
                # Not an error (the CPU still answers), but the user asked for a GPU they are not getting.
                log.warning("--llm-gpu-layers %d asked for, but this llama-cpp-python was built without GPU "
                            "support: running on the CPU (docs/gpu.md shows the CUDA build)", cfg.gpu_layers)
        self.architecture = meta.get("general.architecture", "?")
        self._grammars: dict[str, LlamaGrammar] = {}
        self.last_pieces = 0
        """Pieces (about one token each) the last generation produced, for the cancel tests and traces."""
        self.last_cancelled = False
        """The last generation stopped because its cancel flag was set."""

    def check_prompt_fits(self, system_prompt: str, what: str = "--llm-system-prompt") -> None:
        """ConfigError (one line) when ``system_prompt`` leaves too little of the context for a
        question and the reply: otherwise every turn would fail inside llama.cpp instead."""
        need = self.count_tokens([{"role": "system", "content": system_prompt}]) + PROMPT_ROOM
        room = self.n_ctx - self.cfg.max_tokens - 8
        if need > room:
            raise ConfigError(
                f"{what} takes about {need - PROMPT_ROOM} tokens: with --llm-max-tokens {self.cfg.max_tokens} and "
                f"room for the question, --llm-context {self.n_ctx} is too small; shorten the prompt or raise "
                "--llm-context")

    def set_threads(self, threads: int) -> None:
        """Use this many CPU threads from the next call on (the benchmark's threads variants)."""
        import llama_cpp

        llama_cpp.llama_set_n_threads(self._llm.ctx, threads, threads)

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
        cancel: CancelFlag | None = None,
        max_tokens: int | None = None,
    ) -> str:
        """Generate a reply, calling ``on_token`` for each piece; return the whole text.

        Stops between tokens as soon as ``cancel`` is set.
        """
        stream = self._llm.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]  # llama_cpp types messages as its own TypedDicts
            max_tokens=max_tokens or self.cfg.max_tokens,
            temperature=self.cfg.temperature,
            top_p=0.9,
            repeat_penalty=1.1,
            stream=True,
        )
        return self._drain(stream, on_token, cancel)

    def _drain(self, stream: Any, on_token: Callable[[str], None], cancel: CancelFlag | None) -> str:
        """Read a streamed completion piece by piece; stop between tokens once ``cancel`` is set."""
        pieces: list[str] = []
        self.last_pieces, self.last_cancelled = 0, False
        try:
            if cancel is not None and cancel.is_set():
                self.last_cancelled = True
                return ""
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    self.last_cancelled = True
                    break
                delta = chunk["choices"][0].get("delta", {})
                piece = delta.get("content")
                if piece:
                    pieces.append(piece)
                    self.last_pieces += 1
                    on_token(piece)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return "".join(pieces)

    def complete_json(self, messages: list[Message], schema: dict[str, Any] | None, *, max_tokens: int = 80,
                      prop_order: list[str] | None = None, cancel: CancelFlag | None = None) -> str:
        """One whole completion for a tool call: with ``schema``, llama.cpp's grammar makes it valid JSON
        of that schema (object keys in ``prop_order`` first); without, free generation (the caller
        parses what it gets). Streamed internally so that ``cancel`` stops it between tokens (a cut
        call is not valid JSON, which the caller treats as no call)."""
        grammar: LlamaGrammar | None = None
        if schema is not None:
            key = json.dumps(schema, sort_keys=True)
            grammar = self._grammars.get(key)
            if grammar is None:
                from llama_cpp import LlamaGrammar
                from llama_cpp.llama_grammar import json_schema_to_gbnf

                with _quiet_stderr():
                    grammar = LlamaGrammar.from_string(json_schema_to_gbnf(key, prop_order), verbose=False)
                self._grammars[key] = grammar
        stream = self._llm.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]  # llama_cpp types messages as its own TypedDicts
            max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0, grammar=grammar, stream=True,
        )
        return self._drain(stream, lambda _piece: None, cancel)

    PREFILL_CHUNK = 4
    """Tokens evaluated per step of a prefill, so that a prefill overtaken by the turn's end stops soon."""

    def prefill(self, messages: list[Message], stop: CancelFlag | None = None) -> int:
        """Evaluate the prompt of ``messages`` into the KV cache up to the end of the last message's
        text (not the template's end of turn, not the reply), reusing the cached common prefix;
        return how many tokens were evaluated.

        The wearer is still speaking and the last message is the question so far: when the whole
        question comes, llama.cpp's own prefix reuse (:meth:`stream`) evaluates only the tokens after
        the longest common prefix, the last words and the template's end. Blocking, like every call.
        ``stop`` is checked between steps of :attr:`PREFILL_CHUNK` tokens: the real answer is waiting.
        """
        tokens, _end = self._prompt_split(messages)
        return self._eval_prompt(tokens, stop)

    def _eval_prompt(self, tokens: list[int], stop: CancelFlag | None, *, last_fresh: bool = False) -> int:
        """Evaluate ``tokens`` into the KV cache after their longest cached prefix, in steps of
        :attr:`PREFILL_CHUNK` while ``stop`` may come, else in one (each step is a pass through the
        whole model: on two cores about 50 ms however few its tokens); ``last_fresh``: the last one
        always, so that its logits are the context's latest. Returns the count evaluated."""
        if not tokens:
            return 0
        llm = self._llm
        common = self._cached_prefix(tokens)
        if last_fresh:
            common = min(common, len(tokens) - 1)
        if common >= len(tokens):
            return 0
        llm.n_tokens = common  # eval() drops the KV cache after this position before evaluating
        done, chunk = 0, self.PREFILL_CHUNK if stop is not None else len(tokens)
        for i in range(common, len(tokens), chunk):
            if stop is not None and stop.is_set():
                break
            step = tokens[i:i + chunk]
            llm.eval(step)
            done += len(step)
        return done

    def end_probability(self, messages: list[Message], stop: CancelFlag | None = None) -> float | None:
        """The model's probability that the last message ends where its text ends: that the next
        token is the chat template's end of turn (``<|im_end|>`` for ChatML), read from the logits
        after the message's last token (the lexical end-of-turn judgement of LiveKit's turn
        detector, here from the chat model itself). The answer's whole prompt is evaluated in one
        pass (:meth:`_eval_judged`), so the answer that follows finds it cached and samples at once:
        the judgement costs almost nothing beyond the evaluation the answer needs anyway (first token
        173 ms from the question's words against 170 without it and 191 in two passes, on this
        machine). None when it cannot tell (no template end, stopped, an error)."""
        tokens, end, whole = self._prompt_split(messages, whole=True)
        if not tokens or end is None:
            return None
        if whole is not None and whole[:len(tokens) + 1] == [*tokens, end]:
            p = self._eval_judged(whole, len(tokens) - 1, stop)
            if p is not None:
                return p
        self._eval_prompt(tokens, stop, last_fresh=True)
        llm = self._llm
        if stop is not None and stop.is_set() or llm.n_tokens != len(tokens):
            return None
        return self._probability(-1, end)

    def _cached_prefix(self, tokens: list[int]) -> int:
        """How many of ``tokens`` the KV cache already holds, from the start."""
        llm = self._llm
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], tokens, strict=False):
            if a != b:
                break
            common += 1
        return common

    def _probability(self, row: int, token: int) -> float:
        """The probability of ``token`` next, from the logits of the last decode's batch position
        ``row`` (-1: its last)."""
        import numpy as np

        llm: Any = self._llm
        logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(row), shape=(llm.n_vocab(),)).astype(np.float64)
        logits -= logits.max()
        weights = np.exp(logits)
        return float(weights[token] / weights.sum())

    def _eval_judged(self, whole: list[int], at: int, stop: CancelFlag | None) -> float | None:
        """:meth:`end_probability` in one pass: evaluate the answer's whole prompt (``whole``, the
        template's end and the reply's start included) after its cached prefix, with the logits of
        position ``at`` (the question's last token) kept beside the last one's. The answer then finds
        its prompt cached and samples at once, so the judgement costs no pass of its own (a pass is
        about 50 ms on two cores however few its tokens). More new tokens than one batch holds (the
        history's window slid, so the prompt differs from its first exchange on) are evaluated in
        batches first, as the answer's own evaluation would, the last one holding the judged
        position. None when it cannot be done so (stopped, a judged position that far from the end):
        the caller does it in two passes."""
        llm: Any = self._llm
        common = min(self._cached_prefix(whole), at)  # the judged position is evaluated afresh, for its logits
        if not whole[common:] or (stop is not None and stop.is_set()):
            return None
        last = max(common, len(whole) - llm.n_batch)  # where the batch with the judged position starts
        if last > at:
            return None
        llm._ctx.kv_cache_seq_rm(-1, common, -1)
        llm.n_tokens = common
        if last > common:
            llm.eval(whole[common:last])  # in n_batch pieces, as the answer's own evaluation
            if stop is not None and stop.is_set():
                return None
            common = last
        new = whole[common:]
        llm._batch.set_batch(batch=new, n_past=common, logits_all=False)
        llm._batch.batch.logits[at - common] = True  # and the last token's, as set_batch does
        llm._ctx.decode(llm._batch)
        llm.input_ids[common:common + len(new)] = new
        llm.n_tokens = common + len(new)
        llm._requires_eval = False  # the last logits are live: an exact prompt hit samples from them
        return self._probability(at - common, whole[at + 1])

    @overload
    def _prompt_split(self, messages: list[Message]) -> tuple[list[int], int | None]: ...

    @overload
    def _prompt_split(self, messages: list[Message], whole: Literal[True]
                      ) -> tuple[list[int], int | None, list[int] | None]: ...

    def _prompt_split(self, messages: list[Message], whole: bool = False) -> Any:
        """The model's own prompt tokens for ``messages``, cut where the last message's text ends,
        and the first token the template puts after that text (its end-of-turn marker; None if
        there is none); with ``whole``, the whole prompt's tokens too, as the answer makes them."""
        if not messages:
            return ([], None, None) if whole else ([], None)
        marked = [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + _SENTINEL}]
        llm: Any = self._llm  # its chat handlers are typed for a Llama; they get the probe standing in for one
        handler = getattr(llm, "chat_handler", None) or llm._chat_handlers.get(llm.chat_format)
        if handler is None:
            from llama_cpp import llama_chat_format

            handler = llama_chat_format.get_chat_completion_handler(llm.chat_format)
        probe = _PromptProbe(llm)
        try:
            handler(llama=probe, messages=marked, max_tokens=1, stream=False)
        except _PromptCapture:
            pass
        except Exception as err:  # a chat format that cannot render this: no prefill, nothing worse
            log.debug("prefill: the chat handler failed: %s", err)
            return ([], None, None) if whole else ([], None)
        sentinel = _SENTINEL.encode("utf-8")
        for text, add_bos, special in probe.texts:
            cut = text.find(sentinel)
            if cut >= 0:
                after = list(llm.tokenize(text[cut + len(sentinel):], add_bos=False, special=special))
                head = list(llm.tokenize(text[:cut], add_bos=add_bos, special=special))
                end = after[0] if after else None
                if not whole:
                    return head, end
                rest = text[:cut] + text[cut + len(sentinel):]
                return head, end, list(llm.tokenize(rest, add_bos=add_bos, special=special))
        return ([], None, None) if whole else ([], None)

    def warm(self, messages: list[Message]) -> None:
        """Evaluate the system prompt once so the first turn is as fast as the tenth."""
        self.stream(messages, lambda _piece: None, max_tokens=1)
