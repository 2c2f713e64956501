"""Forms for every staff action. Each carries the case `version` it was loaded with."""

from __future__ import annotations

from typing import Any

from django import forms
from django.urls import reverse

from closeloop.cases.models import Case, RequestType, Role, Staff, Team
from closeloop.outbound.templates import FIELD_LABELS

from .models import ReplyTemplate

OUTCOMES = [("completed", "Completed"), ("booked", "Appointment booked"), ("sent", "Records sent"),
            ("declined", "Declined"), ("no_response", "No response from requester"),
            ("withdrawn", "Withdrawn by requester"), ("duplicate", "Duplicate")]


def field_label(name: str) -> str:
    """How the requester reads a field name: "The patient's full name"."""
    return FIELD_LABELS.get(name, name.replace("_", " ")).capitalize()


def staff_label(name: str) -> str:
    """How staff read a field name: "Patient name", "Npi" stays short."""
    return {"npi": "NPI", "date_of_birth": "Date of birth"}.get(name, name.replace("_", " ").capitalize())


class VersionedForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class AssignForm(VersionedForm):
    team = forms.ModelChoiceField(queryset=Team.objects.all(), required=False, empty_label="(keep team)")
    owner = forms.ModelChoiceField(queryset=Staff.objects.none(), required=False, empty_label="(team queue)")
    reason = forms.CharField(required=False, max_length=200)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = (Staff.objects.filter(is_active=True).select_related("user")  # type: ignore[attr-defined]
                                         .exclude(role=Role.SPECIALIST))


class ClassifyForm(VersionedForm):
    request_type = forms.ModelChoiceField(queryset=RequestType.objects.filter(is_active=True), label="Request type")


class RequestInfoForm(VersionedForm):
    fields_wanted = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                              label="What is missing")
    message = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=4000,
                              label="Message to the requester")

    def __init__(self, *args: Any, case: Case, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = list(case.request_type.required_fields) if case.request_type else []
        names += [n for n in case.missing_fields if n not in names]
        self.fields["fields_wanted"].choices = [(n, staff_label(n)) for n in names]  # type: ignore[attr-defined]


class SpecialistForm(VersionedForm):
    specialist = forms.ModelChoiceField(queryset=Staff.objects.none())
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000,
                               label="The one question to answer")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["specialist"].queryset = (Staff.objects.filter(  # type: ignore[attr-defined]
            is_active=True, role=Role.SPECIALIST).select_related("user"))


class AnswerForm(VersionedForm):
    answer = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=4000)


class SnoozeForm(VersionedForm):
    until = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                label="Snooze until")
    reason = forms.CharField(max_length=200)


class EscalateForm(VersionedForm):
    reason = forms.CharField(max_length=300)
    to = forms.ModelChoiceField(queryset=Staff.objects.none(), required=False,
                                empty_label="(team lead or supervisor)", label="Escalate to")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The escalated case is theirs to work: never a specialist, who may not assign, ask, reply or close.
        self.fields["to"].queryset = (Staff.objects.filter(is_active=True)  # type: ignore[attr-defined]
                                      .exclude(role=Role.SPECIALIST).select_related("user"))


class CloseForm(VersionedForm):
    outcome = forms.ChoiceField(choices=OUTCOMES)
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
    notify = forms.BooleanField(required=False, initial=True, label="Tell the requester")


class MergeForm(VersionedForm):
    primary = forms.CharField(max_length=20, label="Merge into (reference)",
                              widget=forms.TextInput(attrs={"placeholder": "CL-000123"}))


class ReasonForm(VersionedForm):
    reason = forms.CharField(max_length=300, required=False)


class ReplyForm(VersionedForm):
    template = forms.ModelChoiceField(queryset=ReplyTemplate.objects.none(), required=False,
                                      empty_label="(start from a template)", label="Template")
    subject = forms.CharField(max_length=300)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), max_length=20000)

    def __init__(self, *args: Any, case: Case, **kwargs: Any) -> None:
        from .replies import templates_for

        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = templates_for(case)  # type: ignore[attr-defined]
        self.fields["template"].label_from_instance = lambda t: t.name  # type: ignore[attr-defined]
        # Choosing a template asks the server for the filled-in subject and body (htmx swaps them in).
        self.fields["template"].widget.attrs.update({
            "hx-get": reverse("web:compose", args=[case.pk]), "hx-target": "#reply-fields", "hx-swap": "outerHTML"})


class ApproveForm(VersionedForm):
    message = forms.IntegerField(widget=forms.HiddenInput)
    # An approver may correct the draft before it goes; empty means "as drafted".
    subject = forms.CharField(max_length=300, required=False)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), max_length=20000, required=False)


class FieldForm(VersionedForm):
    name = forms.SlugField(max_length=60)
    value = forms.CharField(max_length=500)


class BulkForm(forms.Form):
    ids = forms.TypedMultipleChoiceField(coerce=int, choices=[])
    owner = forms.ModelChoiceField(queryset=Staff.objects.none(), required=False)
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    reason = forms.CharField(max_length=200, required=False)

    def __init__(self, *args: Any, allowed_ids: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["ids"].choices = [(i, i) for i in allowed_ids]  # type: ignore[attr-defined]
        self.fields["owner"].queryset = (Staff.objects.filter(is_active=True)  # type: ignore[attr-defined]
                                         .exclude(role=Role.SPECIALIST).select_related("user"))
