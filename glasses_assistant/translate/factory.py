# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the configured text translator: a local GGUF, the chat LLM, or a server's model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ModelError
from .engines import LlmTranslator


def open_translator(config: Config, catalogue: Any, *, model: str | None = None, chat: Any = None,
                    chat_id: str = "chat") -> LlmTranslator:
    """The translator ``[translate]`` names (``model`` overrides ``[translate] model``); blocking.

    ``chat`` is the loaded chat LLM, used when the model is "chat" or the same model file as the
    chat's (loaded here if not given): one loaded copy of a 1.5B serves both, not two (1.2 GB each).
    """
    from ..engines.llm import LlamaEngine
    from ..engines.remote import RemoteLlm

    tcfg = config.translate
    wanted = model or tcfg.model
    if tcfg.engine == "remote":
        if not config.remote.url:
            raise ModelError("[translate] engine remote needs --remote-url (an OpenAI-compatible server)")
        return LlmTranslator(RemoteLlm(config.remote, temperature=0.0), engine="remote",
                             model=f"remote {config.remote.model or config.remote.url}", max_tokens=tcfg.max_tokens)
    if wanted == "chat":
        if chat is None:
            path, chat_id = catalogue.resolve("llm", config.llm.wanted)
            chat = LlamaEngine(path, config.llm, name=chat_id)
        return LlmTranslator(chat, model=chat_id, max_tokens=tcfg.max_tokens)
    path, model_id = catalogue.resolve("llm", wanted)
    if chat is not None and Path(getattr(chat, "model_path", "")) == path:
        # The chat LLM is this very model: it translates too (with the chat's context and threads).
        return LlmTranslator(chat, model=model_id, max_tokens=tcfg.max_tokens)
    cfg = replace(config.llm, context=tcfg.context, threads=tcfg.threads, temperature=0.0,
                  max_tokens=min(tcfg.max_tokens, tcfg.context // 2))
    llm = LlamaEngine(path, cfg, name=model_id)
    llm.warm([{"role": "user", "content": "Hello."}])
    return LlmTranslator(llm, model=model_id, max_tokens=tcfg.max_tokens)
