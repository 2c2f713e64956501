"""Public web form per request type: the type's fields, files, consent, CSRF, honeypot, rate limit.

The submission becomes a JSON payload (files base64-encoded) that is stored raw and
processed inline, so the confirmation page can show the case reference.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from closeloop.cases.documents import DocumentRejected, check, human_size, over_limit, safe_filename
from closeloop.cases.models import RequestType
from closeloop.intake.inbound import Inbound
from closeloop.intake.models import InboundMessage
from closeloop.intake.pipeline import receive_and_process
from closeloop.intake.ratelimit import hit
from closeloop.outbound.templates import FIELD_LABELS

CHANNEL = "webform"
MAX_FILES = 10
CONSENT = ("I agree that the practice stores and uses the information in this form, and any files I attach, "
           "to handle my request.")


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile]:
        items = data if isinstance(data, list | tuple) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in items if item]


class RequestForm(forms.Form):
    name = forms.CharField(max_length=200, label="Your name")
    email = forms.EmailField(label="Your email address")
    phone = forms.CharField(max_length=40, required=False, label="Phone")
    message = forms.CharField(widget=forms.Textarea, max_length=20_000, label="Your request")
    attachments = MultipleFileField(required=False, label="Files (PDF, images, documents)")
    consent = forms.BooleanField(label=CONSENT)
    # Hidden from people by CSS; bots fill it in.
    website = forms.CharField(required=False, label="Leave this empty")

    def __init__(self, request_type: RequestType, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_type = request_type
        each = human_size(settings.CLOSELOOP_MAX_UPLOAD_BYTES)
        self.fields["attachments"].label = f"Files (PDF, images, documents; up to {each} each, {MAX_FILES} at most)"
        for name in request_type.required_fields:
            if name not in self.fields and name not in ("email", "records_release"):
                label = FIELD_LABELS.get(name, name.replace("_", " "))
                self.fields[f"f_{name}"] = forms.CharField(max_length=300, required=False, label=label.capitalize())

    def clean_attachments(self) -> list[UploadedFile]:
        files: list[UploadedFile] = self.cleaned_data.get("attachments") or []
        if len(files) > MAX_FILES:
            raise forms.ValidationError(f"attach at most {MAX_FILES} files")
        for upload in files:
            if upload.size and upload.size > settings.CLOSELOOP_MAX_UPLOAD_BYTES:
                raise forms.ValidationError(over_limit(safe_filename(upload.name or "upload"), upload.size,
                                                       settings.CLOSELOOP_MAX_UPLOAD_BYTES))
            try:
                check(upload.read(), safe_filename(upload.name or "upload"), upload.content_type or "")
            except DocumentRejected as exc:
                raise forms.ValidationError(str(exc)) from None
            upload.seek(0)
        return files

    def payload(self) -> dict[str, Any]:
        data = self.cleaned_data
        fields = {name[2:]: value for name, value in data.items() if name.startswith("f_") and value}
        if data.get("phone"):
            fields["phone"] = data["phone"]
        return {
            "subject": f"{self.request_type.name} from {data['name']}"[:300], "body": data["message"],
            "email": data["email"], "name": data["name"], "request_type": self.request_type.slug, "fields": fields,
            "attachments": [{"filename": f.name, "content_type": f.content_type or "",
                             "content_base64": base64.b64encode(f.read()).decode()} for f in data["attachments"]],
        }


def rate_limited(ip: str) -> bool:
    """Count this submission from `ip`; True when it is over the limit of its window.

    Counted in the database with one conditional UPDATE (`ratelimit.hit`): counting the rows
    already stored let simultaneous submissions all pass before any was stored.
    """
    count, _ = hit(f"form:{ip}", settings.CLOSELOOP_FORM_RATE_WINDOW_MINUTES * 60)
    return count > settings.CLOSELOOP_FORM_RATE_LIMIT


def submit(form: RequestForm, ip: str) -> InboundMessage:
    raw = json.dumps(form.payload(), sort_keys=True).encode()
    # Born claimed by this request (not left for a worker to take in between), so the visitor is
    # shown their reference.
    row, created = receive_and_process(Inbound(channel=CHANNEL, raw=raw, format="json",
                                               meta={"ip": ip, "request_type": form.request_type.slug}))
    if created:
        row.refresh_from_db()
    return row
