"""Every kind of event the code writes has a label on the timeline: a new kind without one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from django.test import Client

from closeloop.cases import actions
from closeloop.cases.models import Case
from closeloop.web.timeline import EVENT_LABELS

ROOT = Path(__file__).resolve().parents[2]  # the closeloop package
# Calls that write an event: the kind is their first string argument, or their `kind=` keyword.
WRITERS = {"_Change", "_event", "record_event", "remind", "Event"}


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _strings(node: ast.expr | None) -> list[str]:
    return [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []


def _kinds_in(tree: ast.AST) -> set[str]:
    kinds: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in WRITERS:
            first = next((s for arg in node.args for s in _strings(arg)), None)
            kinds.update([first] if first else [])
            kinds.update(s for kw in node.keywords if kw.arg == "kind" for s in _strings(kw.value))
        elif isinstance(node, ast.Assign):  # kind = "message_received"; stage, kind = ..., "reopened"
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == "kind":
                    kinds.update(_strings(node.value))
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    kinds.update(s for t, v in zip(target.elts, node.value.elts, strict=False)
                                 if isinstance(t, ast.Name) and t.id == "kind" for s in _strings(v))
    return kinds


def written_kinds() -> set[str]:
    kinds: set[str] = set()
    for path in ROOT.rglob("*.py"):
        if {"tests", "migrations", "testing"} & set(path.relative_to(ROOT).parts):
            continue
        kinds |= _kinds_in(ast.parse(path.read_text(), str(path)))
    return kinds


def test_the_scan_finds_kinds_written_every_way() -> None:
    kinds = written_kinds()
    # _Change, a dynamic kind in an action, record_event, the outbox's own helper, remind(kind=...):
    assert {"opened", "reopened", "message_received", "reminder_undelivered", "mail_retried",
            "specialist_reminded", "requester_chased"} <= kinds


def test_every_event_kind_the_code_writes_has_a_timeline_label() -> None:
    missing = sorted(written_kinds() - EVENT_LABELS.keys())
    assert missing == [], f"add a label to closeloop/web/timeline.py EVENT_LABELS for: {missing}"


def test_the_case_page_names_new_kinds_in_words(coordinator_client: Client, referral: Case) -> None:
    system = actions.Actor.system("intake")
    actions.record_event(referral, system, "attachments_rejected", {"reasons": ["scan.exe: not a document type"]})
    actions.record_event(referral, actions.Actor.system("follow-ups"), "reminder_undelivered",
                         {"message": "Jordan has no email address; the team lead was reminded instead"})
    html = coordinator_client.get(f"/c/{referral.pk}/").content.decode()
    assert "Attachments refused" in html and "scan.exe: not a document type" in html
    assert "Reminder could not be delivered" in html and "the team lead was reminded instead" in html
    assert "Reminder undelivered" not in html  # not the kind's name made readable: its label
