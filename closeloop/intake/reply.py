"""Signed reply addresses: mail to `requests+c123-<signature>@practice.example` joins case 123.

Mail clients, gateways and forwarding rules strip In-Reply-To/References and rewrite
subjects; the address a reply goes to survives them. Every message closeloop sends for
a case carries such an address as Reply-To (`closeloop.outbound.outbox.enqueue`).

The token is the case id and a truncated HMAC of it, made with Django's `salted_hmac`
(SECRET_KEY, and SECRET_KEY_FALLBACKS when verifying, so a key rotation does not cut
old conversations). It is lower-case hex because mail systems may lower-case local
parts. Nobody without the key can make the address for another case; a token that does
not verify is ignored and the mail goes through the ordinary matching.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import parseaddr

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "closeloop.intake.reply-address"
SIGNATURE_CHARS = 20  # 80 bits of HMAC-SHA256
TOKEN_RE = re.compile(r"\+c(\d{1,12})-([0-9a-f]{" + str(SIGNATURE_CHARS) + r"})@", re.IGNORECASE)


def _signature(case_id: int, secret: str | None = None) -> str:
    return salted_hmac(SALT, str(case_id), secret=secret, algorithm="sha256").hexdigest()[:SIGNATURE_CHARS]


def token(case_id: int) -> str:
    return f"c{case_id}-{_signature(case_id)}"


def verify(case_id: int, signature: str) -> bool:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(constant_time_compare(signature.lower(), _signature(case_id, key)) for key in keys)


def base_address(came_in_on: str = "") -> str:
    """The address replies go to, before the token: the configured one, else the one the
    request came in on, else the sender address."""
    address = settings.CLOSELOOP_INTAKE_REPLY_ADDRESS or came_in_on or parseaddr(settings.DEFAULT_FROM_EMAIL)[1]
    return address.strip().lower()


def reply_address(case_id: int, arrived_at: str | None = None) -> str:
    """The signed Reply-To for a case; `arrived_at` is the address its request came in on
    (looked up when not given and no reply address is configured)."""
    if arrived_at is None and not settings.CLOSELOOP_INTAKE_REPLY_ADDRESS:
        arrived_at = came_in_on(case_id)
    local, _, domain = base_address(arrived_at or "").rpartition("@")
    return f"{strip_plus(local)}+{token(case_id)}@{domain}"


def strip_plus(local: str) -> str:
    return local.split("+", 1)[0]


def without_tag(address: str) -> str:
    """`requests+anything@x` → `requests@x` (what the SMTP allow-list compares)."""
    local, at, domain = address.strip().lower().rpartition("@")
    return f"{strip_plus(local)}{at}{domain}" if at else address.strip().lower()


def case_id_in(addresses: Iterable[str]) -> int | None:
    """The case whose valid signed reply address is among these recipients, if any."""
    for address in addresses:
        found = TOKEN_RE.search(address or "")
        if found and verify(int(found.group(1)), found.group(2)):
            return int(found.group(1))
    return None


def came_in_on(case_id: int) -> str:
    """The address a case's first routed mail was sent to (the SMTP envelope recipient)."""
    from .models import InboundMessage

    for meta in InboundMessage.objects.filter(case_id=case_id, channel="smtp").order_by("id").values_list(
            "meta", flat=True)[:1]:
        recipients = (meta.get("rcpt_to") if isinstance(meta, dict) else None) or []
        return without_tag(recipients[0]) if recipients else ""
    return ""
