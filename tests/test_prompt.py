"""Prompt composition, citation parsing and refusal detection (no models needed)."""

from __future__ import annotations

import pytest

from rag.prompt import (
    REFUSAL,
    build_prompt,
    cited_numbers,
    condense_messages,
    echoes_question,
    is_refusal,
    match_number_forms,
    quote_lists_as_written,
    short_answer,
    strip_citations,
)
from rag.types import Chunk, Passage


def _passage(text: str, source: str = "/docs/a.pdf", page: int | None = 1) -> Passage:
    return Passage(Chunk(text, source, page, 0, len(text)), 1.0)


def _words(text: str) -> int:
    return len(text.split())


def test_passages_are_numbered_with_file_and_page_and_rules_ask_for_citations():
    ps = [_passage("The pond holds water.", "/d/farm.pdf", 2),
          _passage("Cats sleep a lot.", "/d/notes.md", None)]
    prompt = build_prompt("How big is the pond?", ps, _words, budget=1000)
    system, user = prompt.messages[0]["content"], prompt.messages[1]["content"]
    assert "square brackets" in system
    assert "[1] (farm.pdf, page 2)\nThe pond holds water." in user
    assert "[2] (notes.md)\nCats sleep a lot." in user
    assert user.rstrip().endswith("Question: How big is the pond?")
    assert prompt.passages == ps


def test_context_is_fitted_by_tokens_and_never_cuts_a_passage():
    long = _passage("word " * 300)
    short = _passage("the short one fits")
    empty_prompt = build_prompt("q?", [], _words, budget=1000)
    budget = empty_prompt.tokens + 40
    prompt = build_prompt("q?", [long, short], _words, budget=budget)
    # the long passage is skipped whole, the later short one still gets in, renumbered [1]
    assert prompt.passages == [short]
    assert "[1] (a.pdf, page 1)\nthe short one fits" in prompt.messages[1]["content"]
    assert "word word" not in prompt.messages[1]["content"]
    assert prompt.tokens <= budget


def test_short_style_asks_for_a_phrase():
    prompt = build_prompt("When?", [_passage("In 1998.")], _words, 1000, style="short")
    assert "shortest phrase" in prompt.messages[0]["content"]
    with pytest.raises(ValueError, match="answer style"):
        build_prompt("When?", [], _words, 1000, style="poem")


@pytest.mark.parametrize("text, n, expected", [
    ("It was built in 1998 [2].", 3, [2]),
    ("A [1][3] and B [2, 1].", 3, [1, 3, 2]),
    ("Out of range [7] and [0] are ignored [1; 2].", 3, [1, 2]),
    ("No citations here.", 3, []),
])
def test_cited_numbers(text, n, expected):
    assert cited_numbers(text, n) == expected


def test_strip_citations_and_short_answer():
    assert strip_citations("It was 1998 [2][3].") == "It was 1998."
    assert short_answer("1998 [2]") == "1998"
    assert short_answer('Answer: "the Bramley variety" [1].\nBecause...') == "the Bramley variety"
    assert short_answer(REFUSAL) == ""


@pytest.mark.parametrize("text", [
    REFUSAL, "The passages do not contain the answer to this question.",
    "I don't know.", "That is not mentioned in the documents.",
])
def test_refusals_are_recognised(text):
    assert is_refusal(text)


@pytest.mark.parametrize("text", ["It was built in 1998 [1].", "The documents say 412 trees [2]."])
def test_answers_are_not_refusals(text):
    assert not is_refusal(text)


@pytest.mark.parametrize(("answer", "question", "echo"), [
    ("defections occur", "Why do these defections occur?", True),
    ("teachers", "Who could be the subjects of a teacher's college investigation?", True),
    ("the Museums", "Which museum opened first?", True),  # article and plural folded
    ("Tolui", "Who led the third division alongside Genghis Khan?", False),
    ("Genghis Khan's son Tolui", "Who led the division alongside Genghis Khan?", False),
    ("", "Why?", False),  # nothing said is a refusal, not an echo
])
def test_echoes_question(answer, question, echo):
    assert echoes_question(answer, question) is echo


def test_small_numbers_take_the_form_the_passages_use():
    passages = ["The network owns eight stations and 232 affiliates.", "It has 3 bus companies."]
    assert match_number_forms("8 [1]", passages) == "eight [1]"
    assert match_number_forms("three [2]", passages) == "3 [2]"
    # written as the passages write them, too large for a word, or not a plain number: kept
    for kept in ("232 [1]", "eight [1]", "4,600 [1]", "the 8th [2]", "1.5 [1]", "nine [1]"):
        assert match_number_forms(kept, passages) == kept


def test_lists_are_joined_as_the_passage_joins_them():
    passages = ["Shops line the quay.", "The works renew tracks, signalling and overhead wires.",
                "Kenyans play cricket, rugby union, or boxing."]
    assert (quote_lists_as_written("tracks, signalling, overhead wires [2]", passages)
            == "tracks, signalling and overhead wires [2]")
    assert quote_lists_as_written("cricket, rugby union, boxing", passages) == \
        "cricket, rugby union, or boxing"
    # already as written, not a list, items out of order or not all in the passage: kept
    for kept in ("tracks, signalling and overhead wires [2]", "the quay [1]",
                 "signalling, tracks [2]", "tracks, signalling, bridges [2]", "a, , b"):
        assert quote_lists_as_written(kept, passages) == kept


def test_condense_messages_carry_the_recent_conversation():
    history = [{"role": "user", "content": "Who founded the lighthouse trust?"},
               {"role": "assistant", "content": "Mary Ellis founded it in 1921 [1]."}]
    msgs = condense_messages(history, "and when did she die?")
    assert "standalone" in msgs[0]["content"]
    user = msgs[1]["content"]
    assert "User: Who founded the lighthouse trust?" in user
    assert "Assistant: Mary Ellis founded it in 1921." in user  # citations stripped
    assert "Last question: and when did she die?" in user
