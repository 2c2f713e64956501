"""The case stage machine: every stage, its allowed transitions, and what each implies.

```mermaid
stateDiagram-v2
    [*] --> new
    new --> triage
    new --> in_progress
    new --> awaiting_info
    triage --> in_progress
    triage --> awaiting_info
    awaiting_info --> in_progress
    in_progress --> awaiting_info
    in_progress --> awaiting_specialist
    in_progress --> waiting_external
    awaiting_specialist --> ready_to_reply
    waiting_external --> in_progress
    ready_to_reply --> answered
    answered --> closed
    answered --> in_progress : requester replies
    closed --> in_progress : reopen
```
(Any open stage may also go to `closed`, and most to `triage` on a re-route; the
table below is the source of truth, docs/stages.md draws all of it.)
"""

from __future__ import annotations

from django.db import models


class Stage(models.TextChoices):
    NEW = "new", "New"
    TRIAGE = "triage", "Human triage"
    AWAITING_INFO = "awaiting_info", "Awaiting information"
    IN_PROGRESS = "in_progress", "In progress"
    AWAITING_SPECIALIST = "awaiting_specialist", "Awaiting specialist"
    WAITING_EXTERNAL = "waiting_external", "Waiting on external party"
    READY_TO_REPLY = "ready_to_reply", "Ready to reply"
    ANSWERED = "answered", "Answered"
    CLOSED = "closed", "Closed"


class WaitingOn(models.TextChoices):
    REQUESTER = "requester", "Requester"
    OWNER = "owner", "Owner"
    SPECIALIST = "specialist", "Specialist"
    EXTERNAL = "external", "External party"
    NONE = "none", "Nobody"


class NextAction(models.TextChoices):
    TRIAGE = "triage", "Triage the request"
    WORK = "work", "Work the case"
    CHASE_REQUESTER = "chase_requester", "Chase the requester"
    CHASE_SPECIALIST = "chase_specialist", "Chase the specialist"
    CHECK_EXTERNAL = "check_external", "Check with the external party"
    SEND_REPLY = "send_reply", "Send the reply"
    APPROVE_REPLY = "approve_reply", "Approve the drafted reply"
    CONFIRM_RESOLVED = "confirm_resolved", "Close if the requester is satisfied"
    WAKE = "wake", "Wake from snooze"
    NONE = "none", "Nothing"


OPEN_STAGES = frozenset(s for s in Stage if s != Stage.CLOSED)

_ANY_OPEN = OPEN_STAGES
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.NEW: frozenset(_ANY_OPEN | {Stage.CLOSED}) - {Stage.NEW},
    Stage.TRIAGE: frozenset(
        {Stage.IN_PROGRESS, Stage.AWAITING_INFO, Stage.AWAITING_SPECIALIST, Stage.WAITING_EXTERNAL,
         Stage.READY_TO_REPLY, Stage.CLOSED}
    ),
    Stage.AWAITING_INFO: frozenset(
        {Stage.IN_PROGRESS, Stage.TRIAGE, Stage.AWAITING_SPECIALIST, Stage.WAITING_EXTERNAL,
         Stage.READY_TO_REPLY, Stage.CLOSED}
    ),
    Stage.IN_PROGRESS: frozenset(
        {Stage.AWAITING_INFO, Stage.AWAITING_SPECIALIST, Stage.WAITING_EXTERNAL, Stage.READY_TO_REPLY,
         Stage.ANSWERED, Stage.TRIAGE, Stage.CLOSED}
    ),
    Stage.AWAITING_SPECIALIST: frozenset(
        {Stage.IN_PROGRESS, Stage.READY_TO_REPLY, Stage.AWAITING_INFO, Stage.WAITING_EXTERNAL,
         Stage.TRIAGE, Stage.CLOSED}
    ),
    Stage.WAITING_EXTERNAL: frozenset(
        {Stage.IN_PROGRESS, Stage.AWAITING_INFO, Stage.AWAITING_SPECIALIST, Stage.READY_TO_REPLY,
         Stage.TRIAGE, Stage.CLOSED}
    ),
    Stage.READY_TO_REPLY: frozenset(
        {Stage.ANSWERED, Stage.IN_PROGRESS, Stage.AWAITING_SPECIALIST, Stage.AWAITING_INFO, Stage.CLOSED}
    ),
    Stage.ANSWERED: frozenset({Stage.CLOSED, Stage.IN_PROGRESS}),
    Stage.CLOSED: frozenset({Stage.IN_PROGRESS}),
}

# What each stage means for the invariant: who holds the ball and what comes next.
DEFAULTS: dict[Stage, tuple[WaitingOn, NextAction]] = {
    Stage.NEW: (WaitingOn.OWNER, NextAction.TRIAGE),
    Stage.TRIAGE: (WaitingOn.OWNER, NextAction.TRIAGE),
    Stage.AWAITING_INFO: (WaitingOn.REQUESTER, NextAction.CHASE_REQUESTER),
    Stage.IN_PROGRESS: (WaitingOn.OWNER, NextAction.WORK),
    Stage.AWAITING_SPECIALIST: (WaitingOn.SPECIALIST, NextAction.CHASE_SPECIALIST),
    Stage.WAITING_EXTERNAL: (WaitingOn.EXTERNAL, NextAction.CHECK_EXTERNAL),
    Stage.READY_TO_REPLY: (WaitingOn.OWNER, NextAction.SEND_REPLY),
    Stage.ANSWERED: (WaitingOn.REQUESTER, NextAction.CONFIRM_RESOLVED),
    Stage.CLOSED: (WaitingOn.NONE, NextAction.NONE),
}


class TransitionError(Exception):
    """The action is not allowed from the case's current stage."""


def can_move(from_stage: str, to_stage: str) -> bool:
    return Stage(to_stage) in TRANSITIONS[Stage(from_stage)]


def check_move(from_stage: str, to_stage: str) -> None:
    if from_stage != to_stage and not can_move(from_stage, to_stage):
        raise TransitionError(
            f"a case cannot move from {Stage(from_stage).label!r} to {Stage(to_stage).label!r}"
        )


def is_open(stage: str) -> bool:
    return stage != Stage.CLOSED
