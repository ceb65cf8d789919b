# SPDX-License-Identifier: GPL-3.0-or-later
"""Tool-call validity of the bundled LLM over spoken intents, with and without the grammar.

Each intent is spoken by the deterministic Piper voice (noise off), transcribed by the real
Whisper, then given to the tool step three ways:

* ``llm+grammar``: the LLM alone, choosing among every tool (and "none") with llama.cpp's
  grammar built from the JSON schema of the calls;
* ``llm free``: the same prompt, free generation, the first JSON object parsed;
* ``gate+llm``: the word gate narrows the tools, then the grammar-constrained LLM alone picks
  one of them and writes all the arguments (no rules);
* ``shipped``: what the assistant really does: the word gate, the rules' arguments, and the
  grammar-constrained LLM only among the gate's candidates when needed.

Rates: valid JSON (an object with a "tool" string), valid call (a known tool whose arguments
pass validation, or "none"), right tool, right arguments (the intent's key arguments).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

from ..config import Config, with_overrides
from ..tools.intents import candidates
from ..tools.registry import NONE, TOOLS, ToolCallError, parse_call, validate
from ..tools.runner import llm_call_text

# (spoken intent, expected tool, expected key arguments: numbers equal, strings contained)
INTENTS: list[tuple[str, str, dict[str, Any]]] = [
    ("Set a timer for five minutes.", "set_timer", {"seconds": 300}),
    ("Start a ten minute timer for the pasta.", "set_timer", {"seconds": 600}),
    ("Timer for thirty seconds, please.", "set_timer", {"seconds": 30}),
    ("Set a timer for an hour and a half.", "set_timer", {"seconds": 5400}),
    ("Remind me to call my mother in twenty minutes.", "set_reminder", {"seconds": 1200, "text": "call"}),
    ("Remind me at 6 pm to take out the trash.", "set_reminder", {"at": "18:00", "text": "trash"}),
    ("What time is it?", "time", {}),
    ("What's the date today?", "time", {"what": "date"}),
    ("How much battery do the glasses have left?", "device_status", {}),
    ("Is the battery charging?", "device_status", {}),
    ("Take a photo.", "take_photo", {}),
    ("Take a picture of this.", "take_photo", {}),
    ("Remember that my car is on level 3.", "remember", {"text": "level 3"}),
    ("Remember that my locker number is 42.", "remember", {"text": "42"}),
    ("Please remember I parked near the red door.", "remember", {"text": "red door"}),
    ("Where did I park?", "recall", {}),
    ("Where are my keys?", "recall", {}),
    ("What did I tell you about Anna?", "recall", {"query": "anna"}),
    ("Forget that.", "forget", {"which": "last"}),
    ("Forget everything about my car.", "forget", {"query": "car"}),
    ("What do you remember?", "list_memories", {}),
    ("Turn the volume up.", "volume", {"change": "up"}),
    ("Speak quieter, please.", "volume", {"change": "down"}),
    ("Set the volume to 40 percent.", "volume", {"level": 40}),
    ("Switch to the guide persona.", "switch_persona", {"name": "guide"}),
    ("Be my buddy.", "switch_persona", {"name": "buddy"}),
    ("Translate from French to English.", "start_translation", {"source": "french", "target": "english"}),
    ("Start translating into Spanish.", "start_translation", {"target": "spanish"}),
    ("Cancel the tea timer.", "cancel_timer", {"label": "tea"}),
    ("How do you spell necessary?", "spell", {"word": "necessary"}),
    ("What timers are running?", "list_timers", {}),
    ("What is the capital of France?", NONE, {}),
    ("Tell me a joke.", NONE, {}),
    ("How tall is Mount Everest?", NONE, {}),
]


def args_match(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    for key, want in expected.items():
        have = got.get(key)
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            try:
                if have is None or abs(float(have) - want) > 0.5:
                    return False
            except (TypeError, ValueError):
                return False
        elif want.lower() not in str(have or "").lower():
            return False
    return True


@dataclasses.dataclass
class Row:
    heard: str
    expected: str
    tool: str | None
    args: dict[str, Any]
    valid_json: bool
    valid_call: bool
    right_tool: bool
    right_args: bool
    seconds: float
    raw: str = ""


def _score(expected_tool: str, expected_args: dict[str, Any], tool: str | None, args: dict[str, Any],
           valid_json: bool, allowed: list[str]) -> tuple[bool, bool, bool, dict[str, Any]]:
    valid_call = False
    if valid_json and tool is not None:
        if tool == NONE:
            valid_call = True
        elif tool in TOOLS:
            try:
                args = validate(tool, args, allowed)
                valid_call = True
            except ToolCallError:
                pass
    right_tool = tool == expected_tool
    return valid_call, right_tool, right_tool and args_match(expected_args, args), args


def run_tools_bench(config: Config, *, spoken: bool = True, out: Any = print) -> dict[str, Any]:
    from ..audio.io import SAMPLE_RATE, resample
    from ..engines.tts import PiperEngine
    from ..pipeline import Assistant

    config = with_overrides(config, memory={"enabled": False})
    assistant = Assistant(config)
    out("loading the models ...")
    assistant.load()
    assert assistant.llm is not None and assistant.stt is not None
    voice = PiperEngine(assistant.model_paths["tts"], with_overrides(config, tts={"noise_scale": 0.0,
                                                                                 "noise_w": 0.0}).tts)
    allowed = assistant.tools.allowed()
    names = assistant.persona_names()
    modes = {"llm+grammar": [], "llm free": [], "gate+llm": [], "shipped": []}  # type: dict[str, list[Row]]
    heard_ok = 0
    tool: str | None
    args: dict[str, Any]
    heard_all = []
    for text, _tool, _args in INTENTS:
        if spoken:
            audio = resample(voice.synthesize(text), voice.sample_rate, SAMPLE_RATE)
            heard_all.append(assistant.stt.transcribe(audio).text.strip())
        else:
            heard_all.append(text)
        heard_ok += heard_all[-1].lower().strip(" .?!") == text.lower().strip(" .?!")
    # Mode by mode, not intent by intent: each mode's prompt stays in the KV cache from one intent to
    # the next, as it would in an assistant that used only that mode (the all-tools prompt is ~450
    # tokens: re-read for every intent it cost the 1.5B about 12 s a call on two cores).
    for mode in ("llm+grammar", "llm free"):
        for i, (_text, want_tool, want_args) in enumerate(INTENTS, 1):
            heard = heard_all[i - 1]
            started = time.perf_counter()
            tool, args, raw, valid_json = None, {}, "", False
            raw = llm_call_text(assistant.llm, heard, allowed, grammar=mode == "llm+grammar", persona_names=names)
            try:
                tool, args = parse_call(raw)
                valid_json = True
            except ToolCallError:
                pass
            seconds = time.perf_counter() - started
            valid_call, right_tool, right_args, args = _score(want_tool, want_args, tool, args, valid_json, allowed)
            modes[mode].append(Row(heard, want_tool, tool, args, valid_json, valid_call, right_tool, right_args,
                                   seconds, raw[:200]))
        out(f"{mode}: {len(INTENTS)} intents done")
    for i, (_text, want_tool, want_args) in enumerate(INTENTS, 1):
        heard = heard_all[i - 1]
        started = time.perf_counter()
        found = [c for c in candidates(heard, names) if c in allowed]
        tool, args, raw = NONE, {}, "gate: none"
        if found:
            raw = llm_call_text(assistant.llm, heard, found, grammar=True, persona_names=names)
            tool, args = parse_call(raw)
        valid_call, right_tool, right_args, args = _score(want_tool, want_args, tool, args, True, allowed)
        modes["gate+llm"].append(Row(heard, want_tool, tool, args, True, valid_call, right_tool, right_args,
                                     time.perf_counter() - started, raw[:200]))
    for i, (_text, want_tool, want_args) in enumerate(INTENTS, 1):
        heard = heard_all[i - 1]
        started = time.perf_counter()
        decision = assistant.tools.decide(heard)
        seconds = time.perf_counter() - started
        tool = decision.tool if decision is not None and not decision.error else NONE if decision is None else None
        args = decision.args if decision is not None else {}
        valid_call, right_tool, right_args, args = _score(want_tool, want_args, tool, args, True, allowed)
        modes["shipped"].append(Row(heard, want_tool, tool, args, True, valid_call, right_tool, right_args, seconds,
                                    f"{decision.how}: {decision.raw}"[:200] if decision else "gate: none"))
    for i, (_text, want_tool, _args) in enumerate(INTENTS, 1):
        g, f, s = modes["llm+grammar"][i - 1], modes["llm free"][i - 1], modes["shipped"][i - 1]
        out(f"{i:>2}/{len(INTENTS)} {heard_all[i - 1][:44]:<44} want {want_tool:<17} grammar {g.tool or '-':<17} "
            f"free {f.tool or 'INVALID':<17} gate+llm {modes['gate+llm'][i - 1].tool:<17} shipped {s.tool or '-'}")
    assistant.close()
    summary = {}
    for mode, rows in modes.items():
        n = len(rows)
        summary[mode] = {
            "intents": n,
            "valid_json": round(sum(r.valid_json for r in rows) / n, 3),
            "valid_call": round(sum(r.valid_call for r in rows) / n, 3),
            "right_tool": round(sum(r.right_tool for r in rows) / n, 3),
            "right_args": round(sum(r.right_args for r in rows) / n, 3),
            "median_ms": round(statistics.median(r.seconds for r in rows) * 1000, 1),
        }
    out("")
    out(f"{'mode':<12} {'valid JSON':>10} {'valid call':>10} {'right tool':>10} {'right args':>10} {'median ms':>10}")
    for mode, m in summary.items():
        out(f"{mode:<12} {m['valid_json']:>10.0%} {m['valid_call']:>10.0%} {m['right_tool']:>10.0%} "
            f"{m['right_args']:>10.0%} {m['median_ms']:>10.0f}")
    out(f"({len(INTENTS)} intents, {'spoken by Piper and heard by Whisper' if spoken else 'as text'}; "
        f"{heard_ok} heard word for word; LLM {assistant.model_ids.get('llm')})")
    return {"model": assistant.model_ids.get("llm"), "spoken": spoken, "intents": len(INTENTS),
            "heard_exactly": heard_ok, "summary": summary,
            "rows": {mode: [dataclasses.asdict(r) for r in rows] for mode, rows in modes.items()}}
