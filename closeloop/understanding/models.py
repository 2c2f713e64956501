"""Understanding's rows: admin rules, stored model versions, per-case predictions, work items."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Rule(models.Model):
    """A structured routing rule an admin defines. When it matches, it wins over the model.

    Every condition that is filled in must hold (AND); empty conditions are ignored. Rules
    are tried in `priority` order, lowest first.
    """

    name = models.CharField(max_length=100)
    request_type = models.ForeignKey("cases.RequestType", on_delete=models.CASCADE, related_name="rules")
    priority = models.PositiveIntegerField(default=100)
    keywords = models.JSONField(default=list, blank=True, help_text="Any of these words or phrases (case-blind).")
    sender_domain = models.CharField(max_length=200, blank=True, help_text="e.g. bcbs.example (subdomains match).")
    recipient = models.CharField(max_length=200, blank=True, help_text="The address the request was sent to.")
    pattern = models.CharField(max_length=500, blank=True, help_text="A regular expression searched in the text.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["priority", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValidationError({"pattern": f"not a valid regular expression: {exc}"}) from None
        if not (self.keywords or self.sender_domain or self.recipient or self.pattern):
            raise ValidationError("a rule needs at least one condition")
        if not isinstance(self.keywords, list) or not all(isinstance(k, str) for k in self.keywords):
            raise ValidationError({"keywords": "a list of words or phrases"})


class ModelVersion(models.Model):
    """A trained classifier on disk (under CLOSELOOP_DATA_DIR), pinned by its sha256."""

    created_at = models.DateTimeField(default=timezone.now)
    path = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    data_hash = models.CharField(max_length=64, db_index=True, help_text="Hash of the labelled examples used.")
    examples = models.PositiveIntegerField(default=0)
    labels = models.JSONField(default=list)
    config = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    @property
    def name(self) -> str:
        return f"clf-{self.pk}-{self.sha256[:8]}"


class Prediction(models.Model):
    """What understanding suggested for a case, with which model, and how sure it was."""

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="predictions")
    created_at = models.DateTimeField(default=timezone.now)
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL)
    source = models.CharField(max_length=20, help_text="rule, model, llm or none")
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL)
    label = models.CharField(max_length=50, blank=True)
    confidence = models.FloatField(default=0.0)
    routed = models.BooleanField(default=False, help_text="Applied automatically (else sent to triage).")
    suggestions = models.JSONField(default=list)
    scores = models.JSONField(default=dict)

    class Meta:
        ordering = ["-created_at", "-id"]


class JobState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class UnderstandingJob(models.Model):
    """One piece of slow work (OCR a document, understand a case, retrain) claimed by compare-and-set."""

    class Kind(models.TextChoices):
        CASE = "case", "Understand a case"
        DOCUMENT = "document", "Extract text from a document"
        TRAIN = "train", "Retrain the classifier"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.CASCADE)
    document = models.ForeignKey("cases.Document", null=True, blank=True, on_delete=models.CASCADE)
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.PENDING)
    due_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_by = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["due_at"], name="understanding_job_due", condition=Q(state="pending")),
        ]


class PageText(models.Model):
    """Text of one page of a document, with OCR word boxes when it came from a scan."""

    document = models.ForeignKey("cases.Document", on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveIntegerField(help_text="1-based page number.")
    text = models.TextField(blank=True)
    method = models.CharField(max_length=10, help_text="text (PDF text layer), ocr, or email")
    words = models.JSONField(default=list, blank=True, help_text="[[text, left, top, width, height, conf, start]]")
    width = models.PositiveIntegerField(default=0, help_text="Pixels of the image OCR read (0: a text layer).")
    height = models.PositiveIntegerField(default=0)
    note = models.CharField(max_length=300, blank=True, help_text="How the page was read, when not as usual.")

    class Meta:
        ordering = ["document", "number"]
        constraints = [models.UniqueConstraint(fields=["document", "number"], name="understanding_page_unique")]


class EmbeddingVector(models.Model):
    """A sentence vector already computed, keyed by sha256(embedder version, normalised text).

    Retraining on unchanged examples, and training on texts already seen at prediction time,
    reuse these instead of running the embedding model again (see embeddings.text_key).
    """

    key = models.CharField(max_length=64, unique=True)
    embedder = models.CharField(max_length=40, db_index=True)
    vector = models.BinaryField(help_text="float16 little-endian")
    created_at = models.DateTimeField(default=timezone.now)


class DocumentPart(models.Model):
    """One document found inside a multi-document packet: its own Document, with the page range."""

    original = models.ForeignKey("cases.Document", on_delete=models.CASCADE, related_name="parts")
    document = models.OneToOneField("cases.Document", on_delete=models.CASCADE, related_name="part_of")
    kind = models.CharField(max_length=40, help_text="cover_sheet, referral_letter, insurance_card, …")
    first_page = models.PositiveIntegerField(help_text="1-based, in the original.")
    last_page = models.PositiveIntegerField()
    confidence = models.FloatField(default=0.0, help_text="The least confident page's classification.")

    class Meta:
        ordering = ["original", "first_page"]
