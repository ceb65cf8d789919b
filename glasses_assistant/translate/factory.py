"""Build the configured text translator: a local GGUF, the chat LLM, or a server's model."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..config import Config
from ..errors import ModelError
from .engines import LlmTranslator


def open_translator(config: Config, catalogue: Any, *, model: str | None = None, chat: Any = None,
                    chat_id: str = "chat") -> LlmTranslator:
    """The translator ``[translate]`` names (``model`` overrides ``[translate] model``); blocking.

    ``chat`` is the loaded chat LLM, used when the model is "chat" (loaded here if not given).
    """
    from ..engines.llm import LlamaEngine
    from ..engines.remote import RemoteLlm
    from ..pipeline import resolve_model

    tcfg = config.translate
    wanted = model or tcfg.model
    if tcfg.engine == "remote":
        if not config.remote.url:
            raise ModelError("[translate] engine remote needs --remote-url (an OpenAI-compatible server)")
        return LlmTranslator(RemoteLlm(config.remote, temperature=0.0), engine="remote",
                             model=f"remote {config.remote.model or config.remote.url}", max_tokens=tcfg.max_tokens)
    if wanted == "chat":
        if chat is None:
            path, chat_id = resolve_model(catalogue, "llm", config.llm.model)
            chat = LlamaEngine(path, config.llm)
        return LlmTranslator(chat, model=chat_id, max_tokens=tcfg.max_tokens)
    path, model_id = resolve_model(catalogue, "llm", wanted)
    cfg = replace(config.llm, context=tcfg.context, threads=tcfg.threads, temperature=0.0,
                  max_tokens=min(tcfg.max_tokens, tcfg.context // 2))
    llm = LlamaEngine(path, cfg)
    llm.warm([{"role": "user", "content": "Hello."}])
    return LlmTranslator(llm, model=model_id, max_tokens=tcfg.max_tokens)
