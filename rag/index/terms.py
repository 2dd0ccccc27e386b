"""Terms for BM25: lowercase word tokens, English stopwords dropped, Snowball-stemmed.

Computed once per chunk at ingest and stored, so the BM25 matrix can be rebuilt after any
change without re-tokenizing the corpus; queries go through the same function.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
    return _stemmer().stemWords(words)
