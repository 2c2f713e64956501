"""Field extraction with provenance: every value says where it came from and how sure we are.

Rules and label cues ("Patient:", "DOB:", "Referring provider:"), then validation: real
dates (a date of birth in the past), phone numbers through `phonenumbers`, e-mail through
`email-validator`, NPIs through the Luhn check with the 80840 prefix. A value that does not
validate is dropped, never guessed: no field is better than an invented one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .text import Page, Word

LABELS: dict[str, list[str]] = {
    "patient_name": ["patient name", "patient", "pt name", "pt", "name", "member name", "re"],
    "date_of_birth": ["date of birth", "dob", "d.o.b.", "d.o.b", "birth date", "birthdate", "born"],
    "phone": ["patient phone", "phone number", "phone", "tel", "telephone", "cell", "mobile", "contact number"],
    "email": ["e-mail", "email"],
    "address": ["patient address", "home address", "address"],
    "referring_provider": ["referring provider", "referring physician", "referring doctor", "referred by",
                           "ordering provider", "provider"],
    "referring_practice": ["referring practice", "practice", "clinic", "from practice", "facility"],
    "npi": ["referring npi", "provider npi", "npi", "npi #", "npi no"],
    "insurance_payer": ["insurance payer", "insurance carrier", "insurance", "payer", "carrier", "health plan", "plan"],
    "member_id": ["member id", "member #", "member number", "subscriber id", "policy number", "policy #", "id #"],
    "reason": ["reason for referral", "reason for consult", "reason for visit", "reason", "chief complaint",
               "diagnosis", "dx"],
    "medication": ["medication", "medication requested", "drug", "rx"],
    "pharmacy": ["pharmacy", "preferred pharmacy"],
    "requested_dates": ["requested date", "requested dates", "preferred date", "preferred dates",
                        "appointment date", "date requested", "dates of service"],
}

URGENT_RE = re.compile(r"\b(urgent(?:ly)?(?!\s+care\b)|stat|asap|as soon as possible|expedite[ds]?|emergent|"
                       r"priority)\b", re.I)  # "Urgent Care" is a kind of clinic
ICD10_RE = re.compile(r"\b([A-TV-Z][0-9][0-9AB]\.[0-9A-TV-Z]{1,4})\b")
NPI_RE = re.compile(r"\bNPI\s*(?:#|no\.?|number)?\s*[:#]?\s*(\d{10})\b", re.I)
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
DATE_RE = re.compile(r"\d{1,4}[/\-.]\d{1,2}[/\-.]\d{2,4}|[A-Z][a-z]{2,8}\.? \d{1,2},? \d{4}"
                     r"|\d{1,2} [A-Z][a-z]{2,8} \d{4}")
DOB_INLINE_RE = re.compile(r"\b(?:DOB|D\.O\.B\.?|born(?: on)?|date of birth(?: is)?|birth ?date(?: is)?)"
                           r"\s*[:\-]?\s*(\S+(?: \d{1,2},? \d{4})?)", re.I)
# Letters of names: ASCII and the Latin accented ones (José Núñez, Zoë Østergaard, Łukasz Wójcik).
_UPPER = "A-ZÀ-ÖØ-Þ\u0100-\u017f"
_LETTER = "a-zA-ZÀ-ÖØ-öø-ÿ\u0100-\u017f"
_WORD = rf"[{_UPPER}][{_LETTER}'\-]+"
# Cues in prose (patients write sentences, not forms): lower confidence than labelled values.
PROSE_NAME_RE = re.compile(rf"\b(?:my name is|this is|patient(?: name)?|regarding|re:|for my (?:son|daughter|"
                           rf"husband|wife|mother|father),?)\s+({_WORD}(?: {_WORD}){{1,2}})")
# A name after a "Patient:" cue inside a sentence ("Referring for evaluation. Patient: Maria Gonzalez,
# DOB …", "please see Pt: Okafor, Olivia regarding …"): the cue in any case, the name capitalised.
INLINE_NAME_RE = re.compile(rf"\b(?i:patient(?:'s)?\s+name\s*:|patient\s*:|pt\.?\s*:|my\s+patient,?)[ \t]*"
                            rf"(?P<name>{_WORD}, {_WORD}(?! ?[A-Z][a-z])|{_WORD}(?: [A-Z]\.)?(?: {_WORD}){{1,2}})")
MEDICATION_RE = re.compile(r"\b([A-Za-z][a-z]{3,}(?:[ -][A-Za-z]+)?\s+\d+(?:\.\d+)?\s?(?:mg|mcg|g|ml|units?)\b"
                           r"(?:\s+(?:tablets?|capsules?|daily|twice daily|bid|tid|qd|once daily))?)", re.I)
PHARMACY_RE = re.compile(r"\b((?:CVS|Walgreens|Rite Aid|Walmart|Costco|Target|Stop & Shop|Kroger|Publix|"
                         r"[A-Z][a-z]+(?: [A-Z][a-z]+)?) (?:Pharmacy|pharmacy)(?: (?:on|at) [A-Z0-9][\w .]+?"
                         r"(?=[.,;\n]|$))?)")
NAME_RE = re.compile(rf"^{_WORD}(?:,?\s+[{_UPPER}][{_LETTER}'\-.]*){{1,3}}$")
RELEASE_RE = re.compile(r"\b(hipaa[- ]compliant authori[sz]ation|authori[sz]ation (?:is )?(?:enclosed|attached)|"
                        r"signed (?:release|authori[sz]ation)|release of information (?:form )?(?:enclosed|attached))",
                        re.I)
# What forms hold where there is no value: taken as a value it would mark a required field present.
PLACEHOLDER_RE = re.compile(r"(?i)^(?:n/?a|none|nil|null|unknown|unk|tbd|tba|pending|same(?: as above)?|"
                            r"see (?:attached|above|below|enclosed|notes?)|not (?:applicable|provided|available|"
                            r"known|given)|[-_.?x/ ]*)$")
# Words of requests, offices and mail subjects: a "name" holding one ("Re: Appointment Request",
# "Dr Smith Office", "Please Call Me") is a phrase in title case, not a person.
NOT_A_NAME = frozenset("""
    about appointment appt attached authorization auth billing call cancel cancellation center centre claim clinic
    consult consultation copy department dept doctor fax follow followup form forms fwd hello help hi hospital
    imaging information info inquiry enquiry insurance invoice lab labs letter me medical medication mri my new note
    notes office our patient payment please practice prescription prior question questions re records record
    referral referrals refill refills regarding report reschedule request requests result results rx scan schedule
    scheduling stat statement status test tests thanks the update urgent visit your
    a an and are as at be by does for from has have he her his in is it its of on or she sheet they this to was
    were when will with dob mrn sex gender age phone tel cell mobile email npi member
    evaluation exam history pain physical plan surgery therapy tolerated
""".split())

@dataclass
class Found:
    name: str
    value: Any
    confidence: float
    page: int
    start: int
    end: int
    document: int | None = None
    boxes: list[list[float]] = field(default_factory=list)
    # How the value was read ({"note": …}), or why a person should confirm it ({"confirm": …}).
    notes: dict[str, str] = field(default_factory=dict)

    def entry(self) -> dict[str, Any]:
        source: dict[str, Any] = {"document": self.document, "page": self.page, "start": self.start, "end": self.end}
        if self.boxes:
            source["boxes"] = self.boxes
        source.update(self.notes)
        return {"value": self.value, "confidence": round(self.confidence, 3), "source": source}


# Labels that end the value before them when they follow on the same line.
INLINE_STOPS = ["dob", "d.o.b.", "d.o.b", "date of birth", "birth date", "birthdate", "phone", "phone number",
                "telephone", "tel", "cell", "mobile", "npi", "member id", "email", "e-mail", "sex", "gender", "age",
                "mrn"]


def _label_pattern() -> re.Pattern[str]:
    names = sorted({label for labels in LABELS.values() for label in labels}, key=len, reverse=True)
    alternatives = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names)
    # A label at a line start (or after a "|" / two spaces in table-like faxes), then ":" or "#".
    stops = "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in sorted(INLINE_STOPS, key=len, reverse=True))
    # A value ends at two spaces, a "|", the line's end, or another form label on the same line
    # ("RE: Maria Gonzalez DOB: 03/14/52"), which the unlabelled cues then read.
    return re.compile(rf"(?im)(?:^|\|\s*|\s{{2,}})(?P<label>{alternatives})\s*[:#]\s*"
                      rf"(?P<value>[^\n|]*?)\s*?(?=\s{{2,}}|\||$|\s(?:{stops})\s*[:#])")


LABEL_RE = _label_pattern()
FIELD_OF = {label: name for name, labels in LABELS.items() for label in labels}


def _clean_name(value: str) -> str | None:
    value = re.sub(r"\s+", " ", value).strip(" ,;.")
    value = re.sub(r"\s*\(.*$", "", value)
    if "," in value and NAME_RE.match(value):  # "Gonzalez, Maria" → "Maria Gonzalez"
        last, _, first = value.partition(",")
        value = f"{first.strip()} {last.strip()}"
    if not NAME_RE.match(value) or any(w.strip(".'-").lower() in NOT_A_NAME for w in value.split()):
        return None
    return value


def _parse_date(value: str, today: date, *, past: bool = False) -> date | None:
    """The first date in `value`; `past`: a two-digit year is the latest one not after today
    (a birth date "03/14/52" is 1952, where dateutil's window would make it 2052)."""
    from dateutil import parser

    match = DATE_RE.search(value)
    if not match:
        return None
    try:
        parsed = parser.parse(match.group(0), dayfirst=False, default=None).date()  # type: ignore[arg-type]
        if past and re.search(r"[/\-.]\d{2}$", match.group(0)) and parsed >= today:
            parsed = parsed.replace(year=parsed.year - 100)
    except (ValueError, OverflowError):
        return None
    return parsed if 1900 <= parsed.year <= today.year + 2 else None


def _dob(value: str, today: date) -> str | None:
    parsed = _parse_date(value, today, past=True)
    return parsed.isoformat() if parsed and parsed < today else None


OLDEST_AGE = 115  # years; a birth date a century earlier than this is no patient's
AMBIGUOUS_YEAR_FACTOR = 0.5  # below every type's routing threshold: a person confirms


def _year_notes(raw: str, iso: str, today: date) -> tuple[dict[str, str], float]:
    """How a two-digit birth year was read, and, when the century before is as possible (01/02/24:
    a toddler or someone aged 101), a reason to confirm it with lower confidence."""
    match = DATE_RE.search(raw)
    if not match or not re.search(r"[/\-.]\d{2}$", match.group(0)):
        return {}, 1.0
    read = date.fromisoformat(iso)
    try:
        other = read.replace(year=read.year - 100)
    except ValueError:  # 29 February in a year with none
        return {"note": f"two-digit year read as {read.year}"}, 1.0
    if (today - other).days / 365.25 > OLDEST_AGE:
        return {"note": f"two-digit year read as {read.year}"}, 1.0
    return {"confirm": f"two-digit year read as {read.year}; it may be {other.year}"}, AMBIGUOUS_YEAR_FACTOR


def _phone(value: str) -> str | None:
    import phonenumbers

    for match in phonenumbers.PhoneNumberMatcher(value, "US"):
        if phonenumbers.is_valid_number(match.number) or phonenumbers.is_possible_number(match.number):
            return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    return None


def _email(value: str) -> str | None:
    from email_validator import EmailNotValidError, validate_email

    match = EMAIL_RE.search(value)
    if not match:
        return None
    try:
        return validate_email(match.group(0), check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def npi_valid(npi: str) -> bool:
    """Luhn over '80840' + the first nine digits must give the tenth (CMS NPI standard)."""
    if not re.fullmatch(r"\d{10}", npi):
        return False
    digits = [int(d) for d in "80840" + npi[:9]]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


def _text(value: str) -> str | None:
    value = re.sub(r"\s+", " ", value).strip(" ,;")
    return value if len(value) >= 2 else None


def _requested(value: str, today: date) -> list[str] | None:
    dates = []
    for part in re.split(r"\s*(?:,|;| or | and )\s*(?=\d|[A-Z][a-z]{2,8}\.? \d)", value):
        parsed = _parse_date(part, today)
        if parsed:
            dates.append(parsed.isoformat())
    return dates or None


def _validator(name: str, today: date) -> Callable[[str], Any]:
    return {
        "patient_name": _clean_name, "referring_provider": _text, "date_of_birth": lambda v: _dob(v, today),
        "phone": _phone, "email": _email, "npi": lambda v: v if npi_valid(v.strip()) else None,
        "requested_dates": lambda v: _requested(v, today),
        "member_id": lambda v: v.strip() if re.fullmatch(r"[A-Za-z0-9\-]{4,20}", v.strip()) else None,
    }.get(name, _text)


def _boxes(page: Page, start: int, end: int) -> list[list[float]]:
    """The value's words as [x0, y0, x1, y1] fractions of the page (docs/decisions.md), which the
    case page draws at any zoom; none when the page's pixel size is unknown (text read before it was kept)."""
    if not page.width or not page.height:
        return []
    return [[round(w.left / page.width, 4), round(w.top / page.height, 4), round((w.left + w.width) / page.width, 4),
             round((w.top + w.height) / page.height, 4)] for w in page.words if start <= w.start < end]


def _ocr_conf(words: list[Word], start: int, end: int) -> float:
    confs = [w.conf for w in words if start <= w.start < end and w.conf >= 0]
    return min(confs) / 100 if confs else 1.0


def extract_page(page: Page, *, document: int | None = None, today: date | None = None) -> dict[str, Found]:
    """Fields found on one page; the first labelled, valid value of each field wins."""
    today = today or date.today()  # noqa: DTZ011 - a calendar date; callers pass a UTC date
    found: dict[str, Found] = {}

    def keep(name: str, value: Any, conf: float, start: int, end: int) -> None:
        if name in found or value in (None, "", []):
            return
        conf *= _ocr_conf(page.words, start, end) if page.words else 1.0
        notes: dict[str, str] = {}
        if name == "date_of_birth":
            notes, factor = _year_notes(page.text[start:end], value, today)
            conf *= factor
        if page.note:
            notes = {**notes, "read": page.note}  # e.g. rendered below 300 dpi
        found[name] = Found(name, value, conf, page.number, start, end, document, _boxes(page, start, end),
                            notes)

    for m in LABEL_RE.finditer(page.text):
        name = FIELD_OF[re.sub(r"\s+", " ", m.group("label").lower())]
        raw = m.group("value")
        if PLACEHOLDER_RE.match(raw.strip()):
            continue
        keep(name, _validator(name, today)(raw), 0.95, m.start("value"), m.end("value"))
    _unlabelled(page, keep, today)
    return found


def _unlabelled(page: Page, keep: Callable[[str, Any, float, int, int], None], today: date) -> None:
    text = page.text
    for m in NPI_RE.finditer(text):
        if npi_valid(m.group(1)):
            keep("npi", m.group(1), 0.9, m.start(1), m.end(1))
    codes = list(dict.fromkeys(m.group(1) for m in ICD10_RE.finditer(text)))
    if codes:
        first = ICD10_RE.search(text)
        assert first is not None
        keep("icd10_codes", codes, 0.9, first.start(1), first.start(1) + len(first.group(1)))
    if hit := URGENT_RE.search(text):
        keep("urgency", "urgent", 0.8, hit.start(), hit.end())
    if hit := RELEASE_RE.search(text):
        keep("records_release", "authorization enclosed", 0.8, hit.start(), hit.end())
    if hit := EMAIL_RE.search(text):
        keep("email", _email(hit.group(0)), 0.7, hit.start(), hit.end())
    if hit := DOB_INLINE_RE.search(text):
        keep("date_of_birth", _dob(hit.group(1), today), 0.85, hit.start(1), hit.end(1))
    _inline_name(text, keep)
    _prose(text, keep)


def _inline_name(text: str, keep: Callable[[str, Any, float, int, int], None]) -> None:
    """The first name after a mid-sentence "Patient:" cue; trailing capitalised words that are not
    part of a name ("JOHN SMITH DOB …") are dropped, and a cue followed by no name gives nothing."""
    for hit in INLINE_NAME_RE.finditer(text):
        words = hit.group("name").split(" ")
        for count in range(len(words), 1, -1):
            candidate = " ".join(words[:count])
            if name := _clean_name(candidate):
                keep("patient_name", name, 0.85, hit.start("name"), hit.start("name") + len(candidate))
                return


def _prose(text: str, keep: Callable[[str, Any, float, int, int], None]) -> None:
    if hit := PROSE_NAME_RE.search(text):
        keep("patient_name", _clean_name(hit.group(1)), 0.75, hit.start(1), hit.end(1))
    if phone := _first_phone(text):
        keep("phone", phone[0], 0.8, phone[1], phone[2])
    if hit := MEDICATION_RE.search(text):
        keep("medication", hit.group(1).strip(), 0.75, hit.start(1), hit.end(1))
    if hit := PHARMACY_RE.search(text):
        keep("pharmacy", hit.group(1).strip(), 0.75, hit.start(1), hit.end(1))


def _first_phone(text: str) -> tuple[str, int, int] | None:
    import phonenumbers

    for match in phonenumbers.PhoneNumberMatcher(text, "US"):
        if phonenumbers.is_valid_number(match.number):
            return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164), match.start, match.end
    return None


def extract(pages: Iterable[Page], *, document: int | None = None, today: date | None = None) -> dict[str, Found]:
    """Fields across pages; an earlier page's value wins (the cover sheet, then the notes)."""
    out: dict[str, Found] = {}
    for page in pages:
        for name, item in extract_page(page, document=document, today=today).items():
            out.setdefault(name, item)
    return out


def as_case_fields(found: dict[str, Found]) -> dict[str, dict[str, Any]]:
    return {name: item.entry() for name, item in found.items()}
