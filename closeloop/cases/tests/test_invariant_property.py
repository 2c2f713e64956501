"""Random action sequences with random clock advances never leave a case in limbo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from closeloop.cases import actions
from closeloop.cases.invariant import problems, violations
from closeloop.cases.models import Case, Message, Party
from closeloop.cases.stages import Stage

pytestmark = pytest.mark.django_db

REFUSED = (actions.ActionError, actions.TransitionError)


def build_machine(practice):
    staff = list(practice.staff.values())
    coordinators = [s for s in staff if s.role == "coordinator"]
    specialists = [s for s in staff if s.role == "specialist"]
    types = list(practice.types.values())
    teams = list(practice.teams.values())

    class CaseMachine(RuleBasedStateMachine):
        runs = 0

        @initialize()
        def start(self):
            type(self).runs += 1
            self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
            self.cases: list[Case] = []
            self.requester = Party.objects.create(name="Pat", email="pat@example.com")

        def _run(self, fn, *args, **kwargs):
            """An action either succeeds or is refused with a clear error; both keep the invariant."""
            try:
                fn(*args, now=self.now, **kwargs)
            except REFUSED:
                pass

        def _case(self, i):
            case = self.cases[i % len(self.cases)]
            case.refresh_from_db()
            return case

        @rule(typed=st.booleans(), t=st.integers(0, 100))
        def open(self, typed, t):
            rt = types[t % len(types)] if typed else None
            self.cases.append(actions.open_case(actor=actions.Actor.system(), subject="req", body="b",
                                                request_type=rt, requester=self.requester, now=self.now))

        @rule(hours=st.floats(0, 24 * 10, allow_nan=False))
        def advance_clock(self, hours):
            self.now += timedelta(hours=hours)

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), who=st.integers(0, 20), team=st.booleans())
        def assign(self, i, who, team):
            owner = coordinators[who % len(coordinators)]
            self._run(actions.assign, self._case(i), actions.Actor.of(owner), owner=owner,
                      team=owner.teams.first() if team else None)

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), t=st.integers(0, 20))
        def reroute(self, i, t):
            self._run(actions.assign, self._case(i), actions.Actor.system(), team=teams[t % len(teams)])

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), t=st.integers(0, 20))
        def classify(self, i, t):
            self._run(actions.set_request_type, self._case(i), actions.Actor.model("clf"), types[t % len(types)],
                      confidence=0.9)

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50))
        def triage(self, i):
            self._run(actions.send_to_triage, self._case(i), actions.Actor.model("clf"), reason="unsure")

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50))
        def inbound(self, i):
            self._run(actions.record_inbound_message, self._case(i), actions.Actor.requester(),
                      sender="pat@example.com", subject="re", body="more")

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), value=st.sampled_from(["", "Pat Lee", "1970-01-01"]))
        def fields(self, i, value):
            self._run(actions.record_fields, self._case(i), actions.Actor.system(),
                      {"patient_name": value, "date_of_birth": value, "phone": value})

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50))
        def request_info(self, i):
            self._run(actions.request_missing_info, self._case(i), actions.Actor.of(coordinators[0]),
                      message="Please send the referral letter.")

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), party=st.sampled_from(["requester", "external", "specialist", "owner"]),
              hours=st.floats(-5, 200, allow_nan=False))
        def wait(self, i, party, hours):
            self._run(actions.wait_on, self._case(i), actions.Actor.of(coordinators[0]), party=party,
                      until=self.now + timedelta(hours=hours))

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), s=st.integers(0, 5))
        def hand(self, i, s):
            self._run(actions.hand_to_specialist, self._case(i), actions.Actor.of(coordinators[0]),
                      specialist=specialists[s % len(specialists)], question="Book?")

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50))
        def answer(self, i):
            self._run(actions.record_specialist_answer, self._case(i), actions.Actor.of(specialists[0]),
                      answer="Yes")

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), approve=st.booleans())
        def reply(self, i, approve):
            case = self._case(i)
            if approve:
                draft = Message.objects.filter(case=case, status=Message.Status.DRAFT).last()
                self._run(actions.approve_and_send, case, actions.Actor.of(coordinators[0]), message=draft,
                          body="" if draft else "Here is your answer.")
            else:
                self._run(actions.draft_reply, case, actions.Actor.of(coordinators[0]), subject="Re", body="Draft")

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), hours=st.floats(-5, 300, allow_nan=False))
        def snooze(self, i, hours):
            self._run(actions.snooze, self._case(i), actions.Actor.of(coordinators[0]),
                      until=self.now + timedelta(hours=hours), reason="travelling")

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50))
        def wake(self, i):
            self._run(actions.wake, self._case(i), actions.Actor.system())

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50))
        def escalate(self, i):
            self._run(actions.escalate, self._case(i), actions.Actor.system(), reason="breach")

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50), notify=st.booleans())
        def close(self, i, notify):
            self._run(actions.close, self._case(i), actions.Actor.of(coordinators[0]), outcome="done", notify=notify)

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50))
        def reopen(self, i):
            self._run(actions.reopen, self._case(i), actions.Actor.of(coordinators[0]), reason="back")

        @precondition(lambda self: len(self.cases) > 1)
        @rule(i=st.integers(0, 50), j=st.integers(0, 50))
        def merge(self, i, j):
            self._run(actions.merge, self._case(i), self._case(j), actions.Actor.of(coordinators[0]))

        @precondition(lambda self: self.cases)
        @rule(i=st.integers(0, 50))
        def stale_write_conflicts(self, i):
            stale = self._case(i)
            fresh = Case.objects.get(pk=stale.pk)
            try:
                actions.record_fields(fresh, actions.Actor.system(), {"note": "x"}, now=self.now)
            except REFUSED:
                return
            with pytest.raises(actions.ConflictError):
                actions.record_fields(stale, actions.Actor.system(), {"note": "y"}, now=self.now)

        @invariant()
        def no_limbo(self):
            for case in getattr(self, "cases", []):
                case.refresh_from_db()
                assert problems(case) == [], (case.reference, case.stage, problems(case))
                if case.stage != Stage.CLOSED:
                    assert case.next_due_at is not None
            assert violations() == []

    return CaseMachine


def test_random_action_sequences_keep_every_open_case_out_of_limbo(practice):
    machine = build_machine(practice)
    machine.TestCase.settings = settings(
        max_examples=200, stateful_step_count=15, deadline=None, database=None, derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine.TestCase().runTest()
    assert machine.runs >= 200
