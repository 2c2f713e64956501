"""Admin rules: structured conditions (keywords, sender domain, recipient, regex), never code strings."""

from __future__ import annotations

import re

from .models import Rule


def rule_matches(rule: Rule, *, text: str, sender: str = "", recipient: str = "") -> bool:
    """Every filled-in condition must hold; a rule with none never matches."""
    checks: list[bool] = []
    lowered = text.lower()
    if rule.keywords:
        checks.append(any(re.search(rf"\b{re.escape(k.lower())}\b", lowered) for k in rule.keywords if k))
    if rule.sender_domain:
        domain = sender.rpartition("@")[2].lower().strip("> ")
        want = rule.sender_domain.lower().lstrip("@")
        checks.append(domain == want or domain.endswith("." + want))
    if rule.recipient:
        checks.append(rule.recipient.lower() in recipient.lower())
    if rule.pattern:
        try:
            checks.append(re.search(rule.pattern, text, re.IGNORECASE) is not None)
        except re.error:
            checks.append(False)  # a broken pattern never matches; Rule.clean refuses to save one
    return bool(checks) and all(checks)


def first_match(*, text: str, sender: str = "", recipient: str = "") -> Rule | None:
    for rule in Rule.objects.filter(is_active=True, request_type__is_active=True).select_related("request_type"):
        if rule_matches(rule, text=text, sender=sender, recipient=recipient):
            return rule
    return None
