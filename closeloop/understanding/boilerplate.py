"""Boilerplate learned from the training texts: greetings, sign-offs, disclaimers, forwarded headers.

A segment (a sentence, a line, or a salutation ending in a comma) that recurs in many
training texts *across several labels* says nothing about the label. Left in, it pulls the
sentence vector of any mail carrying it (a long confidentiality footer, say) towards every
other mail with that footer, so a request that fits no type looks familiar. Stripping it
before embedding leaves what the sender actually asked. Learned per data set: nothing here
knows our templates, and a data set without boilerplate keeps every segment.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence

_SPLIT = re.compile(r"(?<=[.!?:,\]])\s+|\n+|\s+(?=-{3,}|\[)")
_NORM = re.compile(r"[^a-z]+")


def segments(text: str) -> list[str]:
    return [s for s in _SPLIT.split(text) if s and s.strip()]


def _norm(segment: str) -> str:
    return _NORM.sub(" ", segment.lower()).strip()


class Boilerplate:
    """Segments common to many texts of several labels; `remove` takes them out of from a text."""

    def __init__(self, min_share: float = 0.005, min_count: int = 4, min_labels: int = 3) -> None:
        self.min_share = min_share
        self.min_count = min_count
        self.min_labels = min_labels
        self.known: frozenset[str] = frozenset()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Boilerplate:
        counts: Counter[str] = Counter()
        where: dict[str, set[str]] = defaultdict(set)
        for text, label in zip(texts, labels, strict=True):
            for seg in {_norm(s) for s in segments(text)}:
                if seg:
                    counts[seg] += 1
                    where[seg].add(label)
        floor = max(self.min_count, int(self.min_share * len(texts)))
        needed = min(self.min_labels, max(2, len(set(labels)) // 2))
        self.known = frozenset(seg for seg, n in counts.items() if n >= floor and len(where[seg]) >= needed)
        return self

    def remove(self, text: str) -> str:
        """The text without its boilerplate segments; the whole text when nothing else is left."""
        if not self.known:
            return text
        kept = [s for s in segments(text) if _norm(s) not in self.known]
        return " ".join(kept) if kept else text
