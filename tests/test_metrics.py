"""SQuAD metrics on hand-worked cases (figures worked out on paper, not by running the code)."""

from __future__ import annotations

import pytest

from rag.eval.metrics import (
    best,
    contains_answer,
    exact_match,
    f1,
    normalize_answer,
    percentile,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("The  Denver Broncos!", "denver broncos"),
    ("  a Tale of an Hour  ", "tale of hour"),
    # articles go only as whole words
    ("Anthem theatre another", "anthem theatre another"),
    # ASCII punctuation is deleted, not replaced by a space (official script)
    ("U.S.A.", "usa"),
    ("$1,000.50", "100050"),
    ("rock-'n'-roll", "rocknroll"),
    # the article "a" becomes a word once the apostrophe is gone: "a's" -> "as"
    ("Plan A's end", "plan as end"),
    # accents are kept and lowercased
    ("Café MÜLLER", "café müller"),
    ("The Élysée", "élysée"),
    # non-ASCII punctuation is not in string.punctuation: the official script keeps it
    ("Disney–ABC", "disney–abc"),
    ("“Denver”", "“denver”"),
    ("", ""),
    ("The a an", ""),
])
def test_normalize_answer_follows_the_official_script(text, expected):
    assert normalize_answer(text) == expected


def test_exact_match_ignores_case_punctuation_articles_and_spacing():
    assert exact_match("the Denver Broncos.", "Denver  broncos") == 1.0
    assert exact_match("Denver", "Denver Broncos") == 0.0
    # a curly-quoted answer does not match (official behaviour, pinned so nobody "fixes" it
    # silently and makes figures incomparable)
    assert exact_match("“Denver”", "Denver") == 0.0
    assert exact_match("cafe", "café") == 0.0


def test_f1_partial_overlap_worked_by_hand():
    # pred {denver, broncos, team}, gold {denver, broncos}: P = 2/3, R = 1,
    # F1 = 2 * 2/3 * 1 / (2/3 + 1) = (4/3) / (5/3) = 0.8
    assert f1("the Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    # repeated tokens count once per match: pred [new, york, new], gold [new, york, city]
    # common = new x1 + york x1 = 2; P = 2/3, R = 2/3, F1 = 2/3
    assert f1("New York new", "new York City") == pytest.approx(2 / 3)
    # pred [chester], gold [chester, south, carolina]: P = 1, R = 1/3, F1 = (2/3)/(4/3) = 0.5
    assert f1("Chester", "Chester, South Carolina") == pytest.approx(0.5)
    assert f1("Paris", "London") == 0.0
    # punctuation deleted inside tokens: "1,000" is the token "1000"
    assert f1("1,000 men", "1000") == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_best_takes_the_closest_of_several_references():
    refs = ["Chester, South Carolina", "Chester", "in Chester"]
    assert best(exact_match, "Chester", refs) == 1.0
    assert best(f1, "South Carolina", refs) == pytest.approx(0.8)  # P 1, R 2/3
    # no reference matches exactly; the best F1 is against "Denver Broncos" (0.8)
    assert best(exact_match, "Denver Broncos team", ["Broncos", "Denver Broncos"]) == 0.0
    assert best(f1, "Denver Broncos team", ["Broncos", "Denver Broncos"]) == pytest.approx(0.8)


def test_empty_answers_and_references_as_in_squad_v2():
    # empty against empty is a match (a declined answer to an unanswerable question)
    assert exact_match("", "") == 1.0
    assert f1("", "") == 1.0
    assert best(f1, "", []) == 1.0 and best(exact_match, "", []) == 1.0
    # any answer to an unanswerable question scores 0
    assert best(f1, "Denver", []) == 0.0 and best(exact_match, "Denver", []) == 0.0
    # declining an answerable question scores 0
    assert f1("", "Denver") == 0.0 and exact_match("", "Denver") == 0.0
    # an answer that normalises to nothing is empty too
    assert f1("The.", "") == 1.0
    assert f1("the", "Denver") == 0.0


def test_contains_answer_matches_normalised_words_not_substrings():
    text = "The stadium opened in 1998, home of the Denver Broncos; it cost $1,000."
    assert contains_answer(text, ["denver broncos"])
    assert contains_answer(text, ["nothing here", "1998"])
    assert contains_answer(text, ["$1,000"])
    assert not contains_answer(text, ["199"])  # part of a number
    assert not contains_answer("It opened in 19980.", ["1998"])
    assert not contains_answer(text, ["the"])  # normalises to nothing
    assert not contains_answer(text, [])


def test_percentile_interpolates_like_numpy():
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    # position (4 - 1) * 0.95 = 2.85: 3 + 0.85 * (4 - 3)
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
