# SPDX-License-Identifier: GPL-3.0-or-later
"""The answer-quality benchmark's scorer and question set, without models: what counts as a right
answer, an honest "I don't know", a word spelled out, and what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from glasses_assistant.benches.quality import (
    CATEGORIES,
    _spread,
    _summary,
    is_dont_know,
    load_questions,
    normalise,
    score,
    spelled_words,
)
from glasses_assistant.errors import ConfigError


@pytest.mark.parametrize(("text", "want"), [
    ("Twenty-four hours.", "24 hours"),
    ("There are 5,280 feet in a mile.", "there are 5280 feet in a mile"),
    ("One hundred and twenty minutes", "120 minutes"),
    ("three and four", "3 and 4"),  # "and" joins numbers only after hundred/thousand
    ("two point five four centimetres", "2.54 centimetres"),
    ("a thousand grams", "1000 grams"),
    ("five thousand two hundred eighty", "5280"),
    ("H₂O", "h2o"),
    ("It’s 100°C", "it's 100 degrees c"),
    ("a dozen eggs", "12 eggs"),
    ("100.0 degrees, 2.50 m", "100 degrees 2.50 m"),
])
def test_normalise(text: str, want: str) -> None:
    assert normalise(text) == want


@pytest.mark.parametrize(("expected", "reply"), [
    ("8", "A spider has eight legs."),
    ("8", "Spiders have 8 legs."),
    ("paris", "The capital of France is Paris."),
    ("giraffe*", "Giraffes are the tallest animals."),
    ("5280", "There are 5,280 feet in a mile."),
    ("~16.09", "Ten miles is about 16.1 kilometers."),
    ("~16.09", "That's approximately 16 kilometers."),
    ("~3.785 | ~4.546", "An imperial gallon is 4.55 liters."),
    ("h2o", "The chemical formula for water is H2O."),
    ("h2o", "It is H₂O."),
    ("leonardo | vinci", "Leonardo da Vinci painted it."),
    ("plant* & light | sunlight | sun", "Photosynthesis is how plants turn sunlight into food."),
    ("command | cmd & shift", "Press Command, Shift and 3."),
    ("carbon dioxide | co2", "Plants take in carbon dioxide."),
    ("366", "A leap year has three hundred sixty-six days."),
])
def test_right_answers(expected: str, reply: str) -> None:
    assert score(expected, reply)


@pytest.mark.parametrize(("expected", "reply"), [
    ("8", "A spider has four legs."),
    ("8", "About 8.5 of them."),  # 8 is not 8.5
    ("8", "There are 18 of them."),
    ("paris", "The capital of France is Lyon."),
    ("~16.09", "Ten miles is 18 kilometers."),
    ("plant* & light | sunlight | sun", "Photosynthesis is a process in plants."),  # half an answer
    ("29", "There are 28 days in February."),
    ("12", "There are 120 of them."),
    ("mars", "Marshmallows are sweet."),  # a word, not a prefix, unless the expectation says *
    ("paris", ""),
])
def test_wrong_answers(expected: str, reply: str) -> None:
    assert not score(expected, reply)


@pytest.mark.parametrize("reply", [
    "I don't know your neighbour's name.",
    "I'm sorry, but I don't have access to personal information like that.",
    "I can't know what you had for breakfast.",
    "There's no way for me to know that.",
    "I have no way of knowing your PIN.",
    "It's impossible to predict the lottery numbers.",
    "You haven't told me that yet.",
    "I'm not sure; only you know that.",
    "Sorry, I cannot predict the future.",
    "No one can know the result of the next World Cup in advance.",
])
def test_honest_dont_know(reply: str) -> None:
    assert is_dont_know(reply)
    assert score("@unknown", reply)


@pytest.mark.parametrize("reply", [
    "Your neighbour's name is John.",
    "The lottery numbers will be 4, 8, 15, 16, 23 and 42.",
    "You had eggs and toast for breakfast.",
    "Your favorite color is blue.",
    "",
])
def test_invented_answers_are_not_honest(reply: str) -> None:
    assert not is_dont_know(reply)
    assert not score("@unknown", reply)


def test_spelling() -> None:
    assert spelled_words("Necessary is spelled N-E-C-E-S-S-A-R-Y.") == ["necessary"]
    assert score("@spell:necessary", "It's spelled n, e, c, e, s, s, a, r, y.")
    assert score("@spell:rhythm", "R H Y T H M")
    assert not score("@spell:necessary", "N-E-C-E-S-A-R-Y.")  # one S short
    assert not score("@spell:necessary", "It is spelled necessary.")  # said, not spelled
    assert not score("@spell:friend", "I have a friend.")


def test_the_shipped_question_set() -> None:
    questions = load_questions()
    assert len(questions) >= 150
    counts = {c: sum(q.category == c for q in questions) for c in CATEGORIES}
    assert all(n >= 10 for n in counts.values()), counts
    assert len({q.text for q in questions}) == len(questions), "a question is asked twice"
    for q in questions:
        # Every expectation is well formed: a right answer exists that it accepts.
        if q.expected.startswith("@spell:"):
            word = q.expected.split(":", 1)[1]
            assert score(q.expected, "-".join(word.upper()))
        elif q.expected == "@unknown":
            assert score(q.expected, "I don't know.")
        else:
            first = [group.split("|")[0].strip().rstrip("*").lstrip("~") for group in q.expected.split("&")]
            assert score(q.expected, " and ".join(first)), q


def test_malformed_question_set_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "q.tsv"
    bad.write_text("# header\nfact\tWhat is the capital of France?\n")
    with pytest.raises(ConfigError, match=r"q.tsv:2: want category<TAB>question<TAB>expected"):
        load_questions(bad)
    bad.write_text("trivia\tWho?\tnobody\n")
    with pytest.raises(ConfigError, match=r"unknown category 'trivia'"):
        load_questions(bad)
    with pytest.raises(ConfigError, match=r"cannot read the question set"):
        load_questions(tmp_path / "missing.tsv")


def test_spread_and_summary() -> None:
    questions = load_questions()
    some = _spread(questions, 16)
    assert len(some) == 16 and {q.category for q in some} == set(CATEGORIES)
    rows = [
        {"category": "fact", "right": True, "dont_know": False, "latency_ms": 500.0},
        {"category": "fact", "right": False, "dont_know": True, "latency_ms": 700.0},
        {"category": "unknown", "right": False, "dont_know": False, "latency_ms": 900.0},
        {"category": "unknown", "right": True, "dont_know": True, "latency_ms": None},
    ]
    s = _summary(rows)
    assert s["accuracy"] == 0.5 and s["by_category"] == {"fact": 0.5, "unknown": 0.5}
    assert s["dont_know_when_answerable"] == 1 and s["invented_when_unknowable"] == 1
    assert s["latency_p50_ms"] == 700.0
