# SPDX-License-Identifier: GPL-3.0-or-later
"""Conversation history that always fits the model's context window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Message = dict[str, str]


@dataclass(frozen=True)
class Exchange:
    """One question and the reply the wearer actually heard."""

    user: str
    assistant: str
    interrupted: bool = False


class Conversation:
    """The system prompt plus the most recent exchanges that fit.

    Policy: keep at most ``history_turns`` exchanges; when the prompt plus the
    reply budget would overflow the context, drop the oldest exchanges first, then
    the recalled memories (least relevant first); if the question alone is still too
    long, keep its end (the most recent words). The prompt therefore never overflows,
    whatever the wearer says. Nothing is summarised: with a 135M model a summary costs
    a generation per turn and is often wrong, while what the wearer wants kept is in
    the personal memory, which is recalled into the prompt when a question needs it.
    """

    def __init__(self, system_prompt: str, *, history_turns: int, context: int, max_tokens: int) -> None:
        self.system_prompt = system_prompt
        self.history_turns = history_turns
        self.context = context
        self.max_tokens = max_tokens
        self.exchanges: list[Exchange] = []
        self.on_add: Callable[[str, str], None] | None = None
        """Called with each exchange added (the assistant logs turns to its memory with it)."""

    def messages(self, question: str, count_tokens: Callable[[list[Message]], int], *,
                 memories: list[str] | tuple[str, ...] = ()) -> list[Message]:
        """The messages to send for ``question``, trimmed to fit the context.

        ``memories`` (best first) go into the system message as "Things the wearer told you".
        """
        budget = self.context - self.max_tokens - 8
        history = self.exchanges[-self.history_turns :] if self.history_turns else []
        recalled = list(memories)
        while True:
            system = {"role": "system", "content": self.system_prompt + (
                " Things the wearer told you: " + " ".join(f"{m.rstrip('.')}." for m in recalled)
                if recalled else "")}
            msgs = [system]
            for ex in history:
                reply = ex.assistant + (" …" if ex.interrupted else "")
                msgs += [{"role": "user", "content": ex.user}, {"role": "assistant", "content": reply}]
            msgs.append({"role": "user", "content": question})
            if count_tokens(msgs) <= budget:
                return msgs
            if history:
                history = history[1:]
                continue
            if recalled:
                recalled.pop()
                continue
            # Only the system prompt and the question are left: shorten the question.
            words = question.split()
            if len(words) <= 1:
                msgs = [system, {"role": "user", "content": question[-200:]}]
                # A system prompt too long for the context (a persona switched to at run time;
                # at start it is refused): keep its beginning rather than fail the turn.
                prompt = system["content"].split()
                while count_tokens(msgs) > budget and len(prompt) > 8:
                    prompt = prompt[: len(prompt) * 3 // 4]
                    msgs[0] = {"role": "system", "content": " ".join(prompt)}
                return msgs
            question = " ".join(words[len(words) // 4 or 1 :])

    def add(self, user: str, assistant: str, *, interrupted: bool = False) -> None:
        self.exchanges.append(Exchange(user, assistant, interrupted))
        if self.on_add is not None:
            self.on_add(user, assistant)
        # Keep memory bounded however long the wearer talks to us.
        if len(self.exchanges) > max(self.history_turns, 1) * 4:
            del self.exchanges[: -max(self.history_turns, 1)]

    def clear(self) -> None:
        self.exchanges.clear()
