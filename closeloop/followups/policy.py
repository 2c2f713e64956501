"""Checking a request type's follow-up policy before it is saved.

The worker, the deadlines and the noise budget read these values at fire time; a value of the
wrong shape (a negative cadence, a string where a list belongs) would make every action on the
type's cases raise. `problems` says what is wrong, per form field, in the words of the API's
policy schema (`api.PolicyIn`), so the admin and the API refuse the same things.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from django import forms
from ninja import Field
from pydantic import ValidationError

from closeloop.cases.models import RequestType

from .api import FIELD_KEYS, PolicyIn

Target = dict[Literal["first_response_hours", "resolution_hours"], Annotated[float, Field(gt=0, le=24 * 365)]]


class PolicyCheck(PolicyIn):
    """Every key the engine reads, the API's writable ones and those only the admin sets."""

    triage_hours: float | None = Field(None, gt=0, le=24 * 90)
    reply_hours: float | None = Field(None, gt=0, le=24 * 90)
    priority_targets: dict[Literal["low", "normal", "high", "urgent"], Target] | None = None


def problems(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """What is wrong with a request type's policy fields and `policy` keys: {form field: messages}."""
    out: dict[str, list[str]] = {}
    policy = values.get("policy")
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        out["policy"] = ['the policy is a mapping of keys to values, like {"autoclose_days": 5}']
        policy = {}
    given = {**policy, **{key: values.get(key) for key in FIELD_KEYS}}
    if given.get("followup_cadence_days") in ([], None):
        given["followup_cadence_days"] = None  # empty: the default cadence
    try:
        PolicyCheck.model_validate(given)
    except ValidationError as exc:
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "policy"
            where = key if key in FIELD_KEYS else "policy"
            path = "".join(f"[{part}]" for part in error["loc"][1:])
            out.setdefault(where, []).append(f"{key}{path}: {error['msg']}")
    return out


class RequestTypeForm(forms.ModelForm):  # type: ignore[type-arg]
    """The admin's request type form: a malformed follow-up policy is refused with the reason."""

    class Meta:
        model = RequestType
        fields = ["name", "slug", "description", "is_active", "routing_team", "default_priority", "required_fields",
                  "confidence_threshold", "first_response_hours", "resolution_hours", "followup_cadence_days",
                  "auto_send", "templates", "policy"]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        for field, messages in problems(cleaned).items():
            if field in self.fields and field not in self.errors:
                for message in messages:
                    self.add_error(field, message)
        return cleaned
