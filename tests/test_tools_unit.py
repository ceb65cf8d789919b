# SPDX-License-Identifier: GPL-3.0-or-later
"""Fast tests of the tool logic: the word gate, durations, argument rules, validation, malformed calls,
persona files, the context policy with recalled memories, and the timer schedule on a fake clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from glasses_assistant.config import load_config
from glasses_assistant.conversation import Conversation
from glasses_assistant.persona import PersonaError, find_persona, load_persona
from glasses_assistant.tools import TOOLS, ToolCallError, call_schema, validate
from glasses_assistant.tools.intents import candidates, parse_args, parse_duration
from glasses_assistant.tools.registry import parse_call
from glasses_assistant.tools.runner import device_status, flip_person

PERSONAS = ("buddy", "default", "guide")
ALL = list(TOOLS)


@pytest.mark.parametrize(("text", "tool", "args"), [
    ("Set a timer for 3 seconds.", "set_timer", {"seconds": 3}),
    ("Set a tea timer for five minutes.", "set_timer", {"seconds": 300, "label": "tea"}),
    ("Timer for an hour and a half", "set_timer", {"seconds": 5400}),
    ("Remind me to call mom in ten minutes.", "set_reminder", {"seconds": 600, "text": "call mom"}),
    ("Remind me at 6 pm to take out the trash.", "set_reminder", {"at": "18:00"}),
    ("Remember that my car is on level 3.", "remember", {"text": "my car is on level 3"}),
    ("Where did I park?", "recall", {}),
    ("What do you remember?", "list_memories", {}),
    ("Forget that.", "forget", {"which": "last"}),
    ("Forget everything about my car.", "forget", {"which": "query", "query": "my car"}),
    ("What time is it?", "time", {"what": "time"}),
    ("What's the date today?", "time", {"what": "date"}),
    ("How much battery is left?", "device_status", {}),
    ("Take a photo.", "take_photo", {}),
    ("Set the volume to 40 percent.", "volume", {"change": "set", "level": 40}),
    ("Turn it down.", "volume", {"change": "down"}),
    ("Switch to the guide persona.", "switch_persona", {"name": "guide"}),
    ("Be my buddy.", "switch_persona", {"name": "buddy"}),
    ("Translate from French to English.", "start_translation", {"source": "french", "target": "english"}),
    ("Cancel the tea timer.", "cancel_timer", {"label": "tea"}),
    ("How do you spell necessary?", "spell", {"word": "necessary"}),
    ("How is accommodate spelled?", "spell", {"word": "accommodate"}),
])
def test_gate_and_rules(text: str, tool: str, args: dict) -> None:  # type: ignore[type-arg]
    found = candidates(text, PERSONAS)
    assert found[0] == tool, found
    got = parse_args(tool, text, PERSONAS)
    for key, value in args.items():
        assert got.get(key) == value, got


@pytest.mark.parametrize("text", ["What is the capital of France?", "Tell me a joke.", "How tall is Everest?",
                                  "Why is the sky blue?", "What is two plus two?",
                                  # the calendar and how-to, not the clock or the glasses' battery
                                  "What day comes after Friday?", "If today is Monday, what day is it in three days?",
                                  "How do I save battery on my phone?", "Tell me a spell for fire."])
def test_ordinary_questions_pass_the_gate_untouched(text: str) -> None:
    assert candidates(text, PERSONAS) == []


def test_durations() -> None:
    assert parse_duration("two minutes and 30 seconds") == 150
    assert parse_duration("half an hour") == 1800
    assert parse_duration("twenty five minutes") == 1500
    assert parse_duration("1.5 hours") == 5400
    assert parse_duration("no time here") is None


def test_validation_says_what_is_wrong() -> None:
    with pytest.raises(ToolCallError, match=r"I can't set a timer for 3 days; the longest is 24 hours\."):
        validate("set_timer", {"seconds": 3 * 86400}, ALL)
    with pytest.raises(ToolCallError, match="less than a second"):
        validate("set_timer", {"seconds": 0}, ALL)
    with pytest.raises(ToolCallError, match="For how long"):
        validate("set_timer", {"label": "tea"}, ALL)
    with pytest.raises(ToolCallError, match="must be a number"):
        validate("set_timer", {"seconds": "soon"}, ALL)
    with pytest.raises(ToolCallError, match="from 0 to 100, not 150"):
        validate("volume", {"change": "set", "level": 150}, ALL)
    with pytest.raises(ToolCallError, match="don't have a tool called launch_rocket"):
        validate("launch_rocket", {}, ALL)
    with pytest.raises(ToolCallError, match="as this persona"):
        validate("take_photo", {}, ["time"])
    with pytest.raises(ToolCallError, match="read 25:99"):
        validate("set_reminder", {"at": "25:99", "text": "x"}, ALL)
    assert validate("set_timer", {"seconds": "90", "junk": 1}, ALL) == {"seconds": 90.0}


@pytest.mark.parametrize("raw", ["", "sure! set a timer", '{"tool": ', '["set_timer"]', '{"tool": 3}',
                                 '{"tool": "time", "args": [1]}'])
def test_malformed_calls_are_refused(raw: str) -> None:
    with pytest.raises(ToolCallError, match="didn't understand"):
        parse_call(raw)


def test_schema_has_one_branch_per_allowed_tool_and_none() -> None:
    schema = call_schema(["set_timer", "switch_persona"], PERSONAS)
    consts = [b["properties"]["tool"]["const"] for b in schema["anyOf"]]
    assert consts == ["set_timer", "switch_persona", "none"]
    assert schema["anyOf"][1]["properties"]["args"]["properties"]["name"]["enum"] == list(PERSONAS)
    json.dumps(schema)


def test_flip_person_and_status_without_glasses() -> None:
    assert flip_person("my car is on level 3") == "your car is on level 3"
    assert flip_person("I met Anna") == "you met Anna"
    assert "not connected" in device_status(None)


def test_shipped_personas_load_and_bad_ones_name_file_and_field(tmp_path: Path) -> None:
    for name in PERSONAS:
        p = find_persona(name, tmp_path, set(TOOLS))
        assert p.prompt and p.name == name
    assert find_persona("guide", tmp_path).voice.startswith("espeak-ng:")
    cases = {
        'name = "x"\n': "system_prompt is required",
        'name = "x"\nsystem_prompt = "hi"\nvoice = 3\n': "voice must be a string",
        'name = "x"\nsystem_prompt = "hi"\ntools = ["fly"]\n': "unknown tool 'fly'",
        'name = "x"\nsystem_prompt = "hi"\ncolour = "red"\n': "unknown field 'colour'",
        'name = "x"\nsystem_prompt = "hi"\nremote = "cloud"\n': "remote must be local, remote or escalate",
        'name = "x\n': "not valid TOML",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(text)
        with pytest.raises(PersonaError) as err:
            load_persona(path, set(TOOLS))
        assert str(path) in str(err.value) and message in str(err.value)
        assert "\n" not in str(err.value)
    (tmp_path / "guide.toml").write_text('name = "my guide"\nsystem_prompt = "Mine."\n')
    assert find_persona("guide", tmp_path).system_prompt == "Mine."  # the wearer's file wins
    with pytest.raises(PersonaError, match="no persona called 'pirate'"):
        find_persona("pirate", tmp_path)


def test_context_policy_drops_history_then_memories_never_overflows() -> None:
    def count(msgs: list[dict[str, str]]) -> int:
        return sum(len(m["content"].split()) + 4 for m in msgs)

    conv = Conversation("You are helpful.", history_turns=6, context=120, max_tokens=40)
    for i in range(10):
        conv.add(f"question {i} " + "word " * 10, f"answer {i} " + "word " * 10)
    memories = ["my car is on level 3", "my keys are in the bowl " + "very " * 20]
    msgs = conv.messages("where is my car?", count, memories=memories)
    assert count(msgs) <= 120 - 40 - 8
    assert "my car is on level 3" in msgs[0]["content"]  # the best memory stays longest
    assert msgs[-1]["content"] == "where is my car?"
    huge = conv.messages("why " * 500, count, memories=memories)
    assert count(huge) <= 120 - 40 - 8 or len(huge) == 2


def test_timer_schedule_on_a_fake_clock(tmp_path: Path) -> None:
    from glasses_assistant.pipeline import Assistant

    config = load_config(overrides={"memory": {"path": str(tmp_path / "m.db")}, "persona": {"dir": str(tmp_path)}})
    a = Assistant(config)
    assert a.memory is not None
    a.memory.add_timer("timer", "tea", due=1000.0, duration=300)
    a.memory.add_timer("reminder", "call mom", due=2000.0)
    a.memory.add_timer("timer", "eggs", due=500.0, duration=60)
    assert a.next_due() == 500.0
    # Started at 900: the eggs fell due while the assistant was off; the tea not yet.
    assert a.due_announcements(900.0, started=900.0) == [(3, "While I was off, your eggs timer went off.")]
    a._announced.add(3)
    assert a.next_due() == 1000.0
    assert a.due_announcements(1000.0, started=900.0) == [(1, "Your tea timer is done.")]
    a._announced.add(1)
    assert a.due_announcements(2500.0, started=900.0) == [(2, "Reminder: call mom.")]
    a.close()


class _FakeLlm:
    """Stands in for the LLM's tool-call text (the logic around it is what is tested here)."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls = 0

    def complete_json(self, *_a: object, **_k: object) -> str:
        self.calls += 1
        return self.reply


def _assistant(tmp_path: Path):  # type: ignore[no-untyped-def]
    from glasses_assistant.pipeline import Assistant

    return Assistant(load_config(overrides={"memory": {"path": str(tmp_path / "m.db")},
                                            "persona": {"dir": str(tmp_path)}}))


@pytest.mark.parametrize("reply", ["not json at all", '{"tool": "launch_rocket", "args": {}}',
                                   '{"tool": "none", "args": {}}'])
def test_a_bad_or_unknown_llm_call_falls_back_to_the_gate(tmp_path: Path, reply: str) -> None:
    a = _assistant(tmp_path)
    a.llm = _FakeLlm(reply)  # type: ignore[assignment]
    # "Remember" with no text after it: the rule cannot read the argument, so the model is asked.
    d = a.tools.decide("Remember.")
    assert a.llm.calls == 1 and d is not None  # type: ignore[attr-defined]
    assert d.tool == "remember" and d.how == "rule-fallback"
    with pytest.raises(ToolCallError, match="What should I remember"):
        validate(d.tool, d.args, a.tools.allowed())
    a.close()


def test_the_llm_fills_what_the_rules_cannot_and_rules_win_on_numbers(tmp_path: Path) -> None:
    a = _assistant(tmp_path)
    a.llm = _FakeLlm('{"tool": "set_timer", "args": {"seconds": 5, "label": "pasta"}}')  # type: ignore[assignment]
    d = a.tools.decide("Remind me about the pasta timer in ten minutes")  # two candidates: the model picks
    assert d is not None and d.how == "llm" and d.tool == "set_timer"
    assert d.args["seconds"] == 600  # the rule read "ten minutes"; the model's 5 is not used
    a.llm = _FakeLlm("unused")  # type: ignore[assignment]
    assert a.tools.decide("Set a timer for two minutes.").how == "rule" and a.llm.calls == 0  # type: ignore[union-attr,attr-defined]
    assert a.tools.decide("What is the capital of France?") is None and a.llm.calls == 0  # type: ignore[attr-defined]
    a.close()


def test_a_persona_without_a_tool_says_so(tmp_path: Path) -> None:
    a = _assistant(tmp_path)
    asyncio.run(a.switch_persona("buddy"))  # buddy has no camera tool
    d = a.tools.decide("Take a photo.")
    assert d is not None and d.error == "I can't take a photo with the glasses' camera as the buddy persona."
    a.close()


def test_a_corrupt_memory_file_is_set_aside_and_the_assistant_starts(tmp_path: Path) -> None:
    (tmp_path / "m.db").write_bytes(b"garbage" * 1000)
    a = _assistant(tmp_path)
    assert a.memory is not None and a.memory.notice is not None
    assert a.memory.remember("fresh").id == 1
    a.close()


def test_start_translation_tool_passes_codes_and_into_names_the_partner() -> None:
    from glasses_assistant.config import Config
    from glasses_assistant.tools.handlers import translation_languages

    wearer = Config().translate.wearer_language
    assert translation_languages(wearer, {"source": "french", "target": "english"}) == ("fr", "en")
    assert translation_languages(wearer, {"target": "Spanish"}) == ("es", None)  # "into Spanish": the partner's
    assert translation_languages(wearer, {"source": "German"}) == ("de", None)
    assert translation_languages(wearer, {}) == (None, None)
    assert translation_languages(wearer, {"source": "klingon"}) == ("klingon", None)  # said back as unsupported


def test_every_tool_spec_has_a_handler_and_every_handler_a_spec() -> None:
    from glasses_assistant.tools.handlers import HANDLERS, NEEDS_MEMORY

    assert set(HANDLERS) == set(TOOLS)
    assert NEEDS_MEMORY <= set(TOOLS) and "remember" in NEEDS_MEMORY and "time" not in NEEDS_MEMORY
    with pytest.raises(ValueError, match="no tool spec"):
        from glasses_assistant.tools.handlers import handles

        handles("launch_rocket")


def test_spell_says_the_transcripts_word_letter_by_letter(tmp_path: Path) -> None:
    from helpers import make_test_config

    from glasses_assistant.benches.quality import score
    from glasses_assistant.pipeline import Assistant
    from glasses_assistant.skill import Turn
    from glasses_assistant.tools.handlers import ToolCall, run_tool
    from glasses_assistant.trace import TurnTrace

    a = Assistant(make_test_config(tmp_path))
    try:
        turn = Turn("How do you spell necessary?", TurnTrace(turn=1))
        said = asyncio.run(run_tool(ToolCall("spell", validate("spell", {"word": "necessary"}, ALL), turn, a.ctx)))
        assert said == "Necessary is spelled N, E, C, E, S, S, A, R, Y."
        assert score("@spell:necessary", str(said))
    finally:
        a.close()
    with pytest.raises(ToolCallError, match="Which word should I spell"):
        validate("spell", {"word": "42"}, ALL)
