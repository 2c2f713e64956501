"""The understanding step for a case, and the work items that run it in the worker.

`understand_case(case_id)`:
1. make sure every document on the case has per-page text (PDF text layer or OCR);
2. classify: an admin rule wins when it matches; else the active model; the type's
   confidence threshold decides between routing automatically and human triage with the
   top three suggestions (a request that fits nothing is never forced into a type);
3. extract fields with provenance from the messages and documents and record the ones
   the case does not already hold with higher confidence.
Nothing here runs in a web request: `enqueue_case` writes a row the worker claims.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from closeloop.cases import actions
from closeloop.cases.models import Case, Document, Message, RequestType
from closeloop.cases.stages import Stage

from . import fields as fieldmod
from . import llm, urgency
from .models import JobState, PageText, Prediction, UnderstandingJob
from .packets import split_document
from .rules import first_match
from .text import ExtractionError, Page, Word, extract_pages
from .training import active_model, case_text, train

log = logging.getLogger("closeloop.understanding")
MAX_ATTEMPTS = 5
# Below this the model is guessing, whatever a type's threshold says (0, or 0.08 typed for 80 %):
# such a case goes to a person.
MIN_ROUTE_CONFIDENCE = 0.5


# ---------------------------------------------------------------- work items


def _enqueue(kind: str, *, fresh: bool = False, **target: Any) -> UnderstandingJob:
    """A pending job for the target: the one already pending, else a new one (`fresh`: the
    caller knows none can exist, so nothing is read first)."""
    existing = None if fresh else UnderstandingJob.objects.filter(kind=kind, state=JobState.PENDING, **target).first()
    return existing or UnderstandingJob.objects.create(kind=kind, **target)


def enqueue_case(case: Case, *, opened: bool = False) -> UnderstandingJob:
    """Ask the worker to understand this case (idempotent while a job is pending).

    `opened`: the case was opened in the caller's transaction, so it has no job yet."""
    return _enqueue(UnderstandingJob.Kind.CASE, fresh=opened, case=case)


def enqueue_document(document: Document) -> UnderstandingJob:
    return _enqueue(UnderstandingJob.Kind.DOCUMENT, document=document)


def enqueue_train() -> UnderstandingJob:
    return _enqueue(UnderstandingJob.Kind.TRAIN)


def _claim(job_id: int, now: Any) -> bool:
    return UnderstandingJob.objects.filter(pk=job_id, state=JobState.PENDING).update(
        state=JobState.RUNNING, claimed_by="worker", due_at=now) == 1


def run_jobs(limit: int = 10) -> int:
    """Worker job: claim due rows by compare-and-set and do them; a failure backs off, then fails."""
    now = timezone.now()
    handled = 0
    due = UnderstandingJob.objects.filter(state=JobState.PENDING, due_at__lte=now).order_by("due_at", "id")
    for job_id in list(due.values_list("id", flat=True)[:limit]):
        if not _claim(job_id, now):
            continue  # another worker got it
        job = UnderstandingJob.objects.get(pk=job_id)
        try:
            _do(job)
        except Exception as exc:
            log.exception("understanding job %s failed", job.pk)
            _fail(job, exc)
        else:
            UnderstandingJob.objects.filter(pk=job.pk).update(state=JobState.DONE, finished_at=timezone.now(),
                                                              error="")
        handled += 1
    return handled


def _fail(job: UnderstandingJob, exc: Exception) -> None:
    attempts = job.attempts + 1
    permanent = attempts >= MAX_ATTEMPTS or isinstance(exc, ExtractionError)
    UnderstandingJob.objects.filter(pk=job.pk).update(
        attempts=attempts, error=f"{type(exc).__name__}: {exc}"[:2000],
        state=JobState.FAILED if permanent else JobState.PENDING,
        due_at=timezone.now() + timedelta(minutes=2 ** attempts), finished_at=timezone.now() if permanent else None)


def _do(job: UnderstandingJob) -> None:
    if job.kind == UnderstandingJob.Kind.CASE and job.case_id:
        understand_case(job.case_id)
    elif job.kind == UnderstandingJob.Kind.DOCUMENT and job.document_id:
        document_pages(Document.objects.get(pk=job.document_id))
    elif job.kind == UnderstandingJob.Kind.TRAIN:
        result = train()
        log.info("retrain: %s", result.skipped or f"model version {result.version and result.version.pk}")


def schedule_retrain(limit: int = 1) -> int:
    """Worker job: queue a retrain every CLOSELOOP_RETRAIN_HOURS (training itself skips unchanged data)."""
    hours = getattr(settings, "CLOSELOOP_RETRAIN_HOURS", 24)
    if hours <= 0:
        return 0
    since = timezone.now() - timedelta(hours=hours)
    if UnderstandingJob.objects.filter(kind=UnderstandingJob.Kind.TRAIN, created_at__gte=since).exists():
        return 0
    enqueue_train()
    return 1


# ---------------------------------------------------------------- text


def document_pages(document: Document) -> list[Page]:
    """Per-page text of a document, extracted once and stored."""
    stored = list(PageText.objects.filter(document=document))
    if stored:
        return [Page(p.number, p.text, p.method, [Word(*w) for w in p.words], p.width, p.height, p.note)
                for p in stored]
    with document.file.open("rb") as fh:
        data = fh.read()
    try:
        pages = extract_pages(data, document.content_type, document.filename)
    except ExtractionError as exc:
        _tell_staff_unreadable(document, exc)
        raise
    with transaction.atomic():
        PageText.objects.bulk_create([PageText(document=document, number=p.number, text=p.text, method=p.method,
                                               words=[w.as_list() for w in p.words], width=p.width,
                                               height=p.height, note=p.note[:300]) for p in pages])
        Document.objects.filter(pk=document.pk).update(text="\n\f\n".join(p.text for p in pages)[:1_000_000],
                                                       page_count=len(pages))
    return pages


def _tell_staff_unreadable(document: Document, exc: ExtractionError) -> None:
    """Once per document, the case's timeline says which document could not be read and why
    (the file itself stays on the case; the job's error says the same to an admin)."""
    case = Case.objects.filter(pk=document.case_id).first() if document.case_id else None
    if case is None or case.events.filter(kind="document_unreadable", data__document=document.pk).exists():
        return
    actions.record_event(case, actions.Actor.system("understanding"), "document_unreadable",
                         {"document": document.pk, "reason": f"{document.filename} could not be read: {exc}"})


# ---------------------------------------------------------------- the step


@dataclass
class Outcome:
    source: str
    label: str
    confidence: float
    routed: bool
    suggestions: list[dict[str, Any]]


def understand_case(case_id: int) -> Outcome | None:
    """Classify, extract and record for one case; None when the case is closed or already typed by staff."""
    case = Case.objects.select_related("request_type", "requester").get(pk=case_id)
    if case.stage == Stage.CLOSED:
        return None
    sources = _sources(case)
    outcome = None
    if case.request_type_id is not None and case.stage == Stage.NEW:
        # Typed at intake by a route (recipient address, form, API): a rule, and rules win.
        actions.set_request_type(case, actions.Actor.system("intake route"), case.request_type,  # type: ignore[arg-type]
                                 confidence=1.0)
    elif case.request_type_id is None or case.stage in (Stage.NEW, Stage.TRIAGE):
        if not _typed_by_staff(case):
            outcome = _classify(case)
    case = Case.objects.select_related("request_type").get(pk=case_id)
    if case.request_type is not None and (case.request_type.policy or {}).get("split_packets"):
        sources = _split_packets(case, sources)
    _record_fields(case, sources)
    urgency.apply(Case.objects.get(pk=case_id), sources)
    return outcome


def _split_packets(case: Case, sources: list[tuple[int | None, Page]]) -> list[tuple[int | None, Page]]:
    """Where the type asks for it, multi-page documents become their parts; fields then come per part."""
    out: list[tuple[int | None, Page]] = [(doc, page) for doc, page in sources if doc is None]
    for document in case.documents.filter(part_of__isnull=True):
        pages = [page for doc, page in sources if doc == document.pk]
        parts = split_document(document, pages) if len(pages) > 1 else []
        if parts:
            out += [(part.pk, page) for part in parts for page in document_pages(part)]
        else:
            out += [(document.pk, page) for page in pages]
    return out


def _typed_by_staff(case: Case) -> bool:
    return case.events.filter(kind="classified", data__label=True).exists()


def _sources(case: Case) -> list[tuple[int | None, Page]]:
    out: list[tuple[int | None, Page]] = [(None, Page(1, case_text(case), "email"))]
    for message in case.messages.filter(direction=Message.Direction.INBOUND).order_by("created_at")[1:]:
        out.append((None, Page(1, f"{message.subject}\n{message.body}", "email")))
    for document in case.documents.filter(part_of__isnull=True):
        try:
            out += [(document.pk, page) for page in document_pages(document)]
        except ExtractionError as exc:
            log.warning("document %s unreadable: %s", document.pk, exc)
    return out


def _classify(case: Case) -> Outcome:
    sender = case.requester.email if case.requester else ""
    text = case_text(case)
    rule = first_match(text=text, sender=sender, recipient=str(case.fields.get("recipient", {}).get("value", "")))
    if rule is not None:
        actions.set_request_type(case, actions.Actor.system(f"rule: {rule.name}"), rule.request_type, confidence=1.0)
        Prediction.objects.create(case=case, source="rule", rule=rule, label=rule.request_type.slug, confidence=1.0,
                                  routed=True)
        return Outcome("rule", rule.request_type.slug, 1.0, True, [])
    loaded = active_model()
    if loaded is None:
        return _to_triage(case, "no trained model yet", [], None, Outcome("none", "", 0.0, False, []))
    version, model = loaded
    prediction = model.predict([text])[0]
    suggestions = [{"type": s.label, "confidence": s.confidence} for s in prediction.suggestions]
    request_type = RequestType.objects.filter(slug=prediction.label, is_active=True).first()
    threshold = max(request_type.confidence_threshold, MIN_ROUTE_CONFIDENCE) if request_type else 1.0
    routed = request_type is not None and prediction.confidence >= threshold
    outcome = Outcome("model", prediction.label, prediction.confidence, routed, suggestions)
    scores = {"novelty": round(prediction.novelty, 4), "threshold": threshold}
    if routed and request_type is not None:
        actions.set_request_type(case, actions.Actor.model(version.name), request_type,
                                 confidence=round(prediction.confidence, 4))
        Prediction.objects.create(case=case, model_version=version, source="model", label=prediction.label,
                                  confidence=prediction.confidence, routed=True, suggestions=suggestions,
                                  scores=scores)
        return outcome
    reason = (f"model is {prediction.confidence:.0%} sure of {prediction.label}, below {threshold:.0%}"
              if request_type else f"model suggests {prediction.label}, which is not an active type")
    suggestions += _llm_suggestion(case_text(case))
    Prediction.objects.create(case=case, model_version=version, source="model", label=prediction.label,
                              confidence=prediction.confidence, routed=False, suggestions=suggestions, scores=scores)
    return _to_triage(case, reason, suggestions, version, outcome)


def _llm_suggestion(text: str) -> list[dict[str, Any]]:
    """A second opinion for the person at triage, only when a local LLM is configured."""
    if not llm.enabled():
        return []
    labels = dict(RequestType.objects.filter(is_active=True).values_list("slug", "description"))
    try:
        answer = llm.classify(text, labels)
    except llm.LLMError as exc:
        log.warning("LLM suggestion skipped: %s", exc)
        return []
    return [{"type": answer.request_type, "confidence": answer.confidence, "source": "llm", "reason": answer.reason}]


def _to_triage(case: Case, reason: str, suggestions: list[dict[str, Any]], version: Any, outcome: Outcome) -> Outcome:
    actor = actions.Actor.model(version.name) if version else actions.Actor.system("understanding")
    actions.send_to_triage(case, actor, reason=reason, suggestions=suggestions)
    return outcome


def _record_fields(case: Case, sources: list[tuple[int | None, Page]]) -> None:
    today = timezone.now().date()
    found: dict[str, fieldmod.Found] = {}
    for document, page in sources:
        for name, item in fieldmod.extract_page(page, document=document, today=today).items():
            if name not in found or item.confidence > found[name].confidence:
                found[name] = item
    new = {name: item.entry() for name, item in found.items() if _better(case, name, item)}
    if new:
        actions.record_fields(case, actions.Actor.model("field extractor"), new)


def _better(case: Case, name: str, item: fieldmod.Found) -> bool:
    current = case.fields.get(name)
    if not isinstance(current, dict) or current.get("value") in (None, ""):
        return True
    source = current.get("source")
    if isinstance(source, dict) and source.get("confirm") and "confirm" not in item.notes:
        return True  # a value read without doubt settles one that awaited confirmation
    return item.confidence > float(current.get("confidence", 1.0)) and current.get("value") != item.value
