"""The check that withholds answers whose numbers or names no passage contains."""

from __future__ import annotations

import pytest

from rag.grounding import unsupported_facts

PASSAGES = [
    "The game was played on February 7, 2016, at Levi's Stadium in Santa Clara, California.",
    "One guide leads at most six paddlers; groups of seven to twelve need two guides.",
    "The irrigation pond holds 3600 cubic metres of water.",
]


@pytest.mark.parametrize("answer", [
    "It was played at Levi's Stadium in Santa Clara [1].",
    "Two guides: groups of 7 to 12 need two [2].",
    "The pond holds 3,600 cubic metres [3].",
    "According to the passages, it was on February 7, 2016 [1].",
    "The documents do not contain the answer.",
])
def test_answers_grounded_in_the_passages_pass(answer):
    assert unsupported_facts(answer, PASSAGES) == []


@pytest.mark.parametrize("answer, missing", [
    ("The boiling point of mercury on Mars is 260°C [3].", ["260", "Mars"]),
    ("The capital of Australia is Canberra [1].", ["Canberra", "Australia"]),
    ("It was played in 2017 at Levi's Stadium [1].", ["2017"]),
])
def test_facts_found_in_no_passage_are_reported(answer, missing):
    assert sorted(unsupported_facts(answer, PASSAGES)) == sorted(missing)


def test_words_of_the_question_count_as_known():
    q = "What is the capital of Australia?"
    assert unsupported_facts("The capital of Australia is Canberra.", PASSAGES, q) == ["Canberra"]
