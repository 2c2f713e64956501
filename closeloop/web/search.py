"""Queue search: one box that understands references, dates of birth, phone numbers and text."""

from __future__ import annotations

import re
from datetime import date, datetime

from django.db.models import Q

from closeloop.cases.models import Party, parse_reference

_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%m-%d-%Y")


def _as_date(text: str) -> date | None:
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()  # noqa: DTZ007 - a calendar date, no time of day
        except ValueError:
            continue
    return None


def search_filter(text: str) -> Q:
    """A filter for what someone typed: `CL-000123`, `123`, `1961-03-14`, `617 555 0142`, or words."""
    text = " ".join(text.split())[:200]
    if not text:
        return Q()
    ref = parse_reference(text)
    if ref is not None:
        return Q(pk=ref)
    if text.isdigit() and len(text) <= 6:
        return Q(pk=int(text))
    born = _as_date(text)
    if born is not None:
        return Q(fields__date_of_birth__value=born.isoformat())
    digits = re.sub(r"\D", "", text)
    if len(digits) >= 7 and len(digits) >= len(text.replace(" ", "")) - 4:
        # Phone numbers are stored as typed: match the digits whatever the separators.
        pattern = r"\D*".join(digits[-10:])
        # The parties table is small: match it first. On cases, a cheap LIKE on the last two digits
        # (nearly always written together) spares the regular expression most rows.
        parties = Party.objects.filter(phone__contains=digits[-2:], phone__regex=pattern).values("pk")
        return Q(requester__in=parties) | (Q(fields__phone__value__icontains=digits[-2:])
                                           & Q(fields__phone__value__regex=pattern))
    words = Q()
    for word in text.split()[:5]:
        words &= (Q(subject__icontains=word) | Q(requester__name__icontains=word)
                  | Q(requester__email__icontains=word) | Q(fields__patient_name__value__icontains=word)
                  | Q(summary__icontains=word))
    return words
