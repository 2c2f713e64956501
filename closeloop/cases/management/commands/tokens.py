"""`closeloop tokens list` and `closeloop tokens revoke`: see and end API tokens from the command line."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q, QuerySet
from django.utils import timezone

from closeloop.cases.models import ApiToken
from closeloop.cases.tokens import PREFIX, describe, hash_key, revoke

from .create_token import by_whom


class Command(BaseCommand):
    help = "List API tokens, or revoke them (by id, prefix, the key itself, or every token of --user)."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="command", required=True)
        listing = sub.add_parser("list", help="tokens that still work (with --all: revoked and expired too)")
        listing.add_argument("--user", help="only this staff member's")
        listing.add_argument("--all", action="store_true", help="include revoked and expired tokens")
        listing.add_argument("--json", action="store_true")
        ending = sub.add_parser("revoke", help="revoke tokens; each is refused (401) from then on")
        ending.add_argument("tokens", nargs="*", metavar="TOKEN", help="a token's id, its prefix (cl_…) or the key")
        ending.add_argument("--user", help="every token of this staff member")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["command"] == "list":
            self._list(options)
        else:
            self._revoke(options)

    def _list(self, options: dict[str, Any]) -> None:
        now = timezone.now()
        tokens = ApiToken.objects.select_related("staff__user").order_by("created_at", "id")
        if options["user"]:
            tokens = tokens.filter(staff__user__username=options["user"])
        if not options["all"]:
            tokens = tokens.filter(revoked=False, expires_at__gt=now)
        rows: list[dict[str, Any]] = [
            {"id": t.pk, "prefix": t.prefix, "name": t.name, "user": t.staff.user.get_username(),
                 "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat(),
                 "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                 "state": "revoked" if t.revoked else "expired" if t.expires_at <= now else "active"}
                for t in tokens]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("no tokens" + ("" if options["all"] else " that still work (--all lists every one)"))
            return
        self.stdout.write(f"{'id':>5}  {'prefix':<9} {'user':<14} {'name':<20} {'state':<8} {'expires':<17} last used")
        for r in rows:
            self.stdout.write(f"{r['id']:>5}  {r['prefix']:<9} {r['user'][:14]:<14} {r['name'][:20]:<20} "
                              f"{r['state']:<8} {r['expires_at'][:16].replace('T', ' '):<17} "
                              f"{(r['last_used_at'] or 'never')[:16].replace('T', ' ')}")

    def _revoke(self, options: dict[str, Any]) -> None:
        if not options["tokens"] and not options["user"]:
            raise CommandError("name the tokens to revoke (id, prefix or key), or --user USERNAME")
        found: list[ApiToken] = [_one(given) for given in options["tokens"]]
        if options["user"]:
            theirs = ApiToken.objects.filter(staff__user__username=options["user"], revoked=False)
            if not theirs.exists() and not found:
                raise CommandError(f"{options['user']!r} has no token to revoke")
            found += list(theirs.select_related("staff__user"))
        by = by_whom()
        for token in found:
            done = revoke(token, by=by)
            self.stdout.write(f"{'revoked' if done else 'already revoked'}: {describe(token)}")


def _one(given: str) -> ApiToken:
    """The one token `given` names: an id, a prefix, or the whole key."""
    tokens: QuerySet[ApiToken] = ApiToken.objects.select_related("staff__user").order_by("pk")
    if given.isascii() and given.isdigit():
        matches = list(tokens.filter(pk=int(given)))
    elif given.startswith(PREFIX) and len(given) > 8:
        matches = list(tokens.filter(key_hash=hash_key(given)))
    else:
        matches = list(tokens.filter(Q(prefix=given) | Q(prefix=PREFIX + given)))
    if not matches:
        raise CommandError(f"no token {given!r} (closeloop tokens list --all shows every one)")
    if len(matches) > 1:
        ids = ", ".join(str(t.pk) for t in matches)
        raise CommandError(f"{given!r} names {len(matches)} tokens (ids {ids}); give the id")
    return matches[0]
