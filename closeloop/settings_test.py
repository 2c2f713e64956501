"""Settings for the test suite: the real settings with a development key and a temp data dir."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("CLOSELOOP_DEVELOPMENT", "1")
os.environ.setdefault("CLOSELOOP_DATA_DIR", tempfile.mkdtemp(prefix="closeloop-test-"))
# Channel listeners start only where a test starts them.
os.environ.setdefault("CLOSELOOP_SMTP_LISTEN", "")
os.environ.setdefault("CLOSELOOP_INTAKE_FOLDER", "")
# Every test clears Django's cache, also those without database access: a per-process cache here.
os.environ.setdefault("CLOSELOOP_CACHE_URL", "locmem://")

from .settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests only
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
