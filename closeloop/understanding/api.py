"""Understanding over HTTP: a case's predictions and fields, model versions, retraining, classifying text.

Mounted at /api/understanding/. Every handler asks cases/access.py: a case's predictions only
for those who may see the case (404 otherwise), retraining only for supervisors and admins,
classifying text for any signed-in staff member (nothing is stored, no case is created).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema, Status
from ninja.errors import HttpError

from closeloop.cases.access import can, visible_cases
from closeloop.cases.models import Case, Staff, parse_reference

from . import fields as fieldmod
from .models import ModelVersion, Prediction, UnderstandingJob
from .pipeline import enqueue_train
from .rules import first_match
from .text import Page
from .training import active_model
from .urgency import find_cue

router = Router(tags=["understanding"])
MAX_TEXT = 20_000


class SuggestionOut(Schema):
    type: str
    confidence: float
    source: str = "model"


class PredictionOut(Schema):
    created_at: datetime
    source: str
    type: str
    confidence: float
    routed: bool
    top: list[SuggestionOut]
    model_version: str | None
    rule: str | None
    novelty: float | None


class CasePredictionsOut(Schema):
    reference: str
    request_type: str | None
    priority: str
    latest: PredictionOut | None
    history: list[PredictionOut]
    fields: dict[str, Any]
    missing_fields: list[str]


class ModelVersionOut(Schema):
    name: str
    created_at: datetime
    active: bool
    examples: int
    labels: list[str]
    embedder: str
    metrics: dict[str, Any]


class TrainOut(Schema):
    job: int
    state: str


class ClassifyIn(Schema):
    text: str = Field(..., min_length=1, max_length=MAX_TEXT)
    sender: str = Field("", max_length=254)


class ClassifyOut(Schema):
    source: str
    type: str
    confidence: float
    top: list[SuggestionOut]
    model_version: str | None
    urgency_cue: str | None
    fields: dict[str, Any]


def _staff(request: HttpRequest) -> Staff:
    return request.staff  # type: ignore[attr-defined, no-any-return]


def _prediction(p: Prediction) -> PredictionOut:
    top = [SuggestionOut(type=str(s.get("type", "")), confidence=float(s.get("confidence", 0.0)),
                         source=str(s.get("source", "model"))) for s in p.suggestions if isinstance(s, dict)]
    top = [s for s in top if s.source != "llm"][:3] + [s for s in top if s.source == "llm"]  # the LLM's beside them
    return PredictionOut(created_at=p.created_at, source=p.source, type=p.label, confidence=round(p.confidence, 4),
                         routed=p.routed, top=top, model_version=p.model_version.name if p.model_version else None,
                         rule=p.rule.name if p.rule else None, novelty=(p.scores or {}).get("novelty"))


@router.get("/cases/{ref}/predictions", response=CasePredictionsOut)
def case_predictions(request: HttpRequest, ref: str) -> CasePredictionsOut:
    """What understanding suggested for a case (type, confidence, top three, model version) and its fields
    with provenance."""
    pk = int(ref) if ref.isdigit() else parse_reference(ref)
    if pk is None:
        raise HttpError(404, f"{ref!r} is not a case reference")
    case: Case = get_object_or_404(visible_cases(_staff(request)).select_related("request_type"), pk=pk)
    rows = [_prediction(p) for p in case.predictions.select_related("model_version", "rule")[:20]]
    return CasePredictionsOut(reference=case.reference, priority=case.priority,
                              request_type=case.request_type.slug if case.request_type else None,
                              latest=rows[0] if rows else None, history=rows,
                              fields=case.fields, missing_fields=list(case.missing_fields))


@router.get("/models", response=list[ModelVersionOut])
def model_versions(request: HttpRequest) -> list[ModelVersionOut]:
    """Stored model versions, newest first."""
    return [ModelVersionOut(name=v.name, created_at=v.created_at, active=v.is_active, examples=v.examples,
                            labels=v.labels, embedder=str((v.config or {}).get("embedder", "")), metrics=v.metrics)
            for v in ModelVersion.objects.all()[:100]]


@router.post("/train", response={202: TrainOut})
def retrain(request: HttpRequest) -> Status:
    """Queue a retrain (supervisors and admins); the worker runs it and skips it when nothing changed."""
    if not can(_staff(request), "retrain"):
        raise HttpError(403, "only supervisors and admins may retrain the classifier")
    job: UnderstandingJob = enqueue_train()
    return Status(202, TrainOut(job=job.pk, state=job.state))


@router.post("/classify", response=ClassifyOut)
def classify_text(request: HttpRequest, payload: ClassifyIn) -> ClassifyOut:
    """Classify a text as a new request would be (rules first, then the active model); nothing is stored."""
    page = Page(1, payload.text, "email")
    found = {name: item.entry() for name, item in fieldmod.extract_page(page).items()}
    cue = find_cue([(None, page)])
    rule = first_match(text=payload.text, sender=payload.sender, recipient="")
    if rule is not None:
        return ClassifyOut(source="rule", type=rule.request_type.slug, confidence=1.0, top=[], model_version=None,
                           urgency_cue=cue.text if cue else None, fields=found)
    loaded = active_model()
    if loaded is None:
        raise HttpError(409, "no trained model yet; label some cases and retrain")
    version, model = loaded
    (prediction,) = model.predict([payload.text], remember=False)  # nothing of it is stored
    top = [SuggestionOut(type=s.label, confidence=s.confidence) for s in prediction.suggestions]
    return ClassifyOut(source="model", type=prediction.label, confidence=round(prediction.confidence, 4), top=top,
                       model_version=version.name, urgency_cue=cue.text if cue else None, fields=found)
