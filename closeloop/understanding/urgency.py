"""Urgency cues in what the requester or referrer wrote, and the priority they call for.

A cue ("STAT", "urgent", "ASAP", "within 48 hours", "suspected fracture", "rule out
malignancy", …) found in the case's text or documents raises the case to `urgent` through
the `set_priority` action, with the cue and where it was found (document, page, span) on the
event; the due times then follow from the type's policy for that priority. Only ever raised,
never lowered, and never over a priority a person chose. A negated cue ("not urgent",
"non-urgent", "no rush") counts as none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from closeloop.cases import actions
from closeloop.cases.models import Case, Priority

from .text import Page

CUE_RE = re.compile(
    r"\b(urgent(?:ly)?(?!\s+care\b)|stat|asap|as soon as possible|emergent(?:ly)?|expedite[ds]?"
    r"|within (?:24|48|72) ?(?:hours|hrs?)|same[- ]day|"
    r"(?:suspected|suspicious for|possible|concern for|rule out|r/o)\s+(?:an? )?"
    r"(?:\w+ )?(?:fracture|cancer|malignancy|tumou?r|sarcoma|metastas[ie]s|cauda equina|septic)\w*)\b",
    re.I,
)
# "not urgent", "non-urgent", "nothing urgent", "no need to expedite"
NEGATED_RE = re.compile(r"\b(?:(?:not|non|no|nothing)[- ](?:\w+ )?|no need to )$", re.I)
RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.URGENT: 3}


@dataclass
class Cue:
    text: str
    document: int | None
    page: int
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "document": self.document, "page": self.page, "start": self.start,
                "end": self.end}


def find_cue(sources: list[tuple[int | None, Page]]) -> Cue | None:
    """The first urgency cue that is not negated, with where it was found."""
    for document, page in sources:
        for hit in CUE_RE.finditer(page.text):
            before = page.text[max(0, hit.start() - 12):hit.start()]
            if NEGATED_RE.search(before) or re.match(r"no rush", page.text[hit.start():], re.I):
                continue
            if hit.group(1).lower() == "stat" and not _stat_is_a_cue(page.text, hit.start(), hit.end()):
                continue
            return Cue(hit.group(0), document, page.number, hit.start(), hit.end())
    return None


def _stat_is_a_cue(text: str, start: int, end: int) -> bool:
    """"STAT" in capitals or beside an order word; not "stat" inside prose like "stat holiday"."""
    word = text[start:end]
    return word.isupper() or bool(re.search(r"(?:order|read|imaging|mri|x-?ray|ct|labs?)\W{0,3}$",
                                            text[max(0, start - 12):start], re.I))


def apply(case: Case, sources: list[tuple[int | None, Page]]) -> Cue | None:
    """Raise the case to urgent when a cue says so; None when nothing changed."""
    if RANK.get(Priority(case.priority), 1) >= RANK[Priority.URGENT]:
        return None
    if case.events.filter(kind="priority_set", actor_kind="staff").exists():
        return None  # a person decided; a cue does not overrule them
    cue = find_cue(sources)
    if cue is None:
        return None
    actions.set_priority(case, actions.Actor.model("urgency cues"), Priority.URGENT,
                         reason=f'urgency cue "{cue.text}"', cue=cue.as_dict())
    return cue
