"""Raw text -> words with character offsets, as tagging data is tokenized (Penn Treebank style,
the convention of CoNLL-2003, OntoNotes and UD English): punctuation is split off words
("Paris," -> "Paris" ","), clitics are their own words ("don't" -> "do" "n't", "Smith's" ->
"Smith" "'s"), while abbreviations ("U.S.", "Mr."), numbers ("1,000.50", "12:30",
"1996-08-22"), hyphenated words ("state-of-the-art"), names with an apostrophe ("O'Neill"),
e-mail addresses and URLs stay whole. Offsets index the original string, so an entity's
``start``/``end`` cut its exact text out of the input.
"""

from __future__ import annotations

import re
import unicodedata

_TITLES = (
    "mr|mrs|ms|dr|prof|st|jr|sr|inc|corp|ltd|co|vs|etc|gen|gov|sen|rep|lt|col|sgt|capt|mt|ft|"
    "no|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_CLITIC = r"(?:'|’)(?:s|re|ve|ll|d|m)(?![\w'’])"
_WORD = re.compile(
    r"""
      (?:https?://|www\.)[^\s<>"]+[^\s<>".,;:!?)\]}'’]            # URL
    | [\w.+-]+@[\w-]+(?:\.[\w-]+)+                                  # e-mail
    | (?:[^\W\d_]\.){2,}                                            # U.S.  a.m.
    | (?i:\b(?:"""
    + _TITLES
    + r""")\.)(?=\s+\w|,)                 # Mr. Smith, Inc.,
    | \d+(?:[.,:/-]\d+)*(?:st|nd|rd|th|%)?(?!\w|-\w)                # 1,000.50 12:30 1st
    | \w+(?=n['’]t\b)                                               # do  (of don't)
    | n['’]t\b                                                      # n't
    | (?i:"""
    + _CLITIC
    + r""")                                     # 's 're 've 'll 'd 'm
    | \w+(?:[-'’&]\w+)*?(?=(?i:"""
    + _CLITIC
    + r"""))               # Smith (of Smith's)
    | \w+(?:[-'’&]\w+)*                                             # state-of-the-art O'Neill
    | \.{2,}|-{2,}|[^\w\s]                                          # ... -- and single marks
    """,
    re.VERBOSE,
)


def split_words(text: str) -> list[tuple[str, int, int]]:
    """``(word, start, end)`` for every word of ``text``; ``text[start:end] == word``.
    Combining marks (a decomposed "é" is "e" + U+0301) stay in their word."""
    out: list[tuple[str, int, int]] = []
    for m in _WORD.finditer(text):
        start, end = m.start(), m.end()
        if out and out[-1][2] == start and (_marks(m.group()) or _mark(text[start - 1])):
            start = out.pop()[1]
        out.append((text[start:end], start, end))
    return out


def _mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


def _marks(word: str) -> bool:
    return all(_mark(c) for c in word)
