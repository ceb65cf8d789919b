# SPDX-License-Identifier: GPL-3.0-or-later
"""The phrase chunker: what Piper is asked to speak, and when."""

from __future__ import annotations

from glasses_assistant.phrases import PhraseChunker, clean_for_speech


def feed(text: str, chunker: PhraseChunker | None = None, step: int = 3) -> list[list[str]]:
    """Push text a few characters at a time; return what each push emitted, then the flush."""
    chunker = chunker or PhraseChunker(first_phrase_words=4)
    out = [chunker.push(text[i : i + step]) for i in range(0, len(text), step)]
    out.append(chunker.flush())
    return out


def flat(pushes: list[list[str]]) -> list[str]:
    return [p for batch in pushes for p in batch]


def test_sentences_are_cut_as_soon_as_they_end() -> None:
    pushes = feed("The capital of France is Paris. It is on the Seine. ")
    assert flat(pushes) == ["The capital of France is Paris.", "It is on the Seine."]
    # The first sentence came out before the stream ended, not at the flush.
    assert pushes[-1] == []


def test_a_first_sentence_goes_the_moment_its_mark_arrives() -> None:
    chunker = PhraseChunker(first_phrase_words=4)
    assert chunker.push("Paris") == []
    assert chunker.push(".") == ["Paris."]  # not one token later, when " It" shows the sentence ended
    assert chunker.push(" It is the capital") == []
    assert chunker.push(".") == []  # later sentences wait for the space: they are not what the wearer waits for
    assert chunker.push(" ") == ["It is the capital."]
    for text in ("It is 3.", "Ask Dr.", "Hi J."):  # a decimal, an abbreviation, an initial: not an end yet
        assert PhraseChunker().push(text) == [], text


def test_first_phrase_is_cut_at_a_clause_once_it_has_enough_words() -> None:
    phrases = flat(feed("Well, the tallest animal in the world, by far, is the giraffe. Yes."))
    # "Well," is too short to go alone; the first clause of >= 4 words goes early.
    assert phrases[0] == "Well, the tallest animal in the world,"
    # Later phrases are whole sentences: commas no longer cut.
    assert phrases[1] == "by far, is the giraffe."
    assert phrases[2] == "Yes."


def test_abbreviations_and_decimals_do_not_end_a_sentence() -> None:
    phrases = flat(feed("Dr. Smith said e.g. 3.5 km is far. Mr. J. Doe agreed. "))
    assert phrases == ["Dr. Smith said e.g. 3.5 km is far.", "Mr. J. Doe agreed."]


def test_run_on_text_is_cut_at_a_word_boundary() -> None:
    words = " ".join(["word"] * 100)
    phrases = flat(feed(words, PhraseChunker(max_chars=60)))
    assert all(len(p) <= 60 for p in phrases)
    assert " ".join(phrases) == words


def test_markdown_emoji_and_bullets_are_not_spoken() -> None:
    assert clean_for_speech("**Paris** is the `capital` 🇫🇷 😀!") == "Paris is the capital !"
    assert clean_for_speech("1. First item") == "First item"
    phrases = flat(feed("## Title\n* one thing\n"))
    assert phrases == ["Title", "one thing"]


def test_nothing_speakable_gives_no_phrase() -> None:
    assert flat(feed("... *** 😀 ")) == []
    assert flat(feed("")) == []


def test_question_and_exclamation_marks_and_quotes() -> None:
    phrases = flat(feed('Really? "Yes!" Great. '))
    assert phrases == ["Really?", '"Yes!"', "Great."]
