"""Words as the full-text index sees them, on both sides (indexing and search): the SQLite store's FTS5
`unicode61 remove_diacritics 2` rules, applied here in Python so that PostgreSQL's parser (which would
keep `alice@example.test` or `3.14` whole) only ever sees plain lower-case words separated by spaces."""

from __future__ import annotations

import functools
import re
import unicodedata

# A word: letters, digits, marks and private-use characters, as unicode61 has them (marks are dropped
# below, with the diacritics they are).
_WORD = re.compile(r"[^\W_]+|[\uE000-\uF8FF]+", re.UNICODE)
# A body is indexed up to this many characters of its words: a tsvector holds at most 1 MB.
MAX_VECTOR_TEXT = 256 * 1024


def fold(text: str) -> str:
    """Lower-case, without the diacritics of Latin letters (é -> e; ß, ή, ё and the ligature ﬁ stay), as
    unicode61 with remove_diacritics 2: canonical decomposition only (NFKD would also turn ﬁ into fi and
    ² into 2, which FTS5 keeps), and a mark dropped only where it sits on a Latin letter."""
    if text.isascii():
        return text.lower()
    out: list[str] = []
    latin = False  # whether the last base character was a Latin letter
    for c in unicodedata.normalize("NFD", text):
        if unicodedata.combining(c):
            if not latin:
                out.append(c)
            continue
        latin = c.isascii() or _is_latin(c)
        out.append(c)
    return "".join(out).lower()


@functools.cache
def _is_latin(c: str) -> bool:
    return unicodedata.name(c, "").startswith("LATIN ")


def tokens(text: str) -> list[str]:
    """The words of `text`, folded, in order."""
    return _WORD.findall(fold(text))


def vector_text(text: str, limit: int = MAX_VECTOR_TEXT) -> str:
    """`text` as the words to_tsvector('simple', ...) is given: folded words and single spaces."""
    words = tokens(text[: limit * 2] if len(text) > limit * 2 else text)
    joined = " ".join(words)
    return joined[:limit].rsplit(" ", 1)[0] if len(joined) > limit else joined
