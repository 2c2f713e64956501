"""Server time per staff and requester page with many cases in the database.

    python bench/web.py                  # 50,000 cases vs a 1,000-case baseline, table
    python bench/web.py --cases 200000 --requests 50 --json

Cases are bulk-inserted (a benchmark fixture, not product code) into a throwaway SQLite
database, or a throwaway PostgreSQL database when DATABASE_URL points at a server. Each
page is fetched through the Django test client signed in as `coordinator`; we report
p50/p95 milliseconds and the ratio of the large run's p50 to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closeloop.settings_test")
os.environ.setdefault("CLOSELOOP_DATA_DIR", tempfile.mkdtemp(prefix="closeloop-bench-web-"))

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

PAGES = ["/q/mine/", "/q/team/", "/q/triage/", "/q/waiting/", "/q/overdue/", "/q/team/?q=gonzalez",
         "/q/team/?q=1961-03-14", "/q/team/?q=617-555-0142", "/q/team/?q=CL-{case:06d}", "/c/{case}/",
         "/c/{case}/poll/?v=1", "/c/{case}/compose/?reply-template={template}", "/specialist/{case}/", "/s/{token}/"]


def fill(count: int) -> dict[str, Any]:
    """The demo practice plus `count` cases spread over types, stages and people."""
    from closeloop.cases import actions
    from closeloop.cases.demo import PATIENTS, seed
    from closeloop.cases.links import status_token
    from closeloop.cases.models import ActorKind, Case, Event, Party, RequestType, Staff
    from closeloop.cases.stages import DEFAULTS, Stage

    seed(cases=0)
    types = list(RequestType.objects.all())
    people = list(Staff.objects.exclude(role="specialist"))
    parties = Party.objects.bulk_create([Party(name=n, email=f"p{i}@example.com", phone=ph)
                                         for i, (n, _, ph) in enumerate(PATIENTS)])
    stages = [s for s in Stage if s != Stage.CLOSED] + [Stage.CLOSED] * 4
    now = timezone.now()
    batch: list[Case] = []
    for i in range(count):
        rt, stage = types[i % len(types)], stages[i % len(stages)]
        waiting, nxt = DEFAULTS[stage]
        name, dob, _phone = PATIENTS[i % len(PATIENTS)]
        batch.append(Case(
            request_type=rt, team_id=rt.routing_team_id, owner=people[i % len(people)] if i % 3 else None,
            requester=parties[i % len(parties)], stage=stage, waiting_on=waiting, next_action=nxt,
            next_due_at=None if stage == Stage.CLOSED else now + timedelta(hours=(i % 200) - 50),
            subject=f"Request {i} about knee pain", summary="Body text " * 20,
            fields={"patient_name": {"value": name, "confidence": 0.9, "source": {}},
                    "date_of_birth": {"value": dob, "confidence": 0.9, "source": {}}},
            opened_at=now - timedelta(hours=i % 300), resolution_due_at=now + timedelta(hours=40)))
        if len(batch) == 5000:
            Case.objects.bulk_create(batch)
            batch.clear()
    Case.objects.bulk_create(batch)
    Event.objects.bulk_create([Event(case_id=pk, at=now, actor_kind=ActorKind.SYSTEM, kind="opened")
                               for pk in Case.objects.values_list("pk", flat=True)], batch_size=5000)
    case = actions.open_case(actor=actions.Actor.system(), subject="Benchmark case", request_type=types[0],
                             requester=parties[0], owner=Staff.objects.get(user__username="coordinator"))
    from closeloop.web.models import ReplyTemplate

    template = ReplyTemplate.objects.get(name="Need more information", request_type=None)
    return {"case": case.pk, "token": status_token(case), "template": template.pk}


def measure(count: int, requests: int) -> dict[str, dict[str, float]]:
    from django.core.cache import cache

    old = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        ids = fill(count)
        client = Client(HTTP_HOST="127.0.0.1")
        assert client.login(username="coordinator", password="demo")  # noqa: S106 - the demo seed's password
        out = {}
        for template in PAGES:
            url = template.format(**ids)
            timings = []
            for _ in range(requests):
                cache.clear()  # the status page is rate limited per IP
                start = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, (url, response.status_code)
            timings.sort()
            out[template] = {"p50_ms": statistics.median(timings),
                             "p95_ms": timings[min(len(timings) - 1, int(len(timings) * 0.95))]}
        return out
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=50_000)
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        db.setdefault("TEST", {})["NAME"] = str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    base = measure(args.baseline, args.requests)
    large = measure(args.cases, args.requests)
    rows = [{"page": page, "baseline_p50_ms": round(base[page]["p50_ms"], 1),
             "p50_ms": round(large[page]["p50_ms"], 1), "p95_ms": round(large[page]["p95_ms"], 1),
             "ratio_p50": round(large[page]["p50_ms"] / max(base[page]["p50_ms"], 0.01), 2)} for page in PAGES]
    result = {"cases": args.cases, "baseline_cases": args.baseline, "requests": args.requests,
              "database": connection.vendor, "pages": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.cases:,} cases ({connection.vendor}); baseline {args.baseline:,}; {args.requests} requests a page")
    print(f"{'page':<46}{'base p50':>10}{'p50 ms':>9}{'p95 ms':>9}{'ratio':>7}")
    for row in rows:
        print(f"{row['page']:<46}{row['baseline_p50_ms']:>10}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['ratio_p50']:>7}")


if __name__ == "__main__":
    main()
