"""Settings: one typed module, strict parsers, loud failure at start-up.

Every variable is documented in docs/configuration.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def envsecret(name: str, default: str = "") -> str:
    """Read NAME, or the file named by NAME_FILE (Docker/systemd secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return os.environ.get(name, default)


PLACEHOLDER_SECRET = "closeloop-development-only-secret-key-change-me"  # noqa: S105
DEBUG = envbool("CLOSELOOP_DEBUG", False)
DEVELOPMENT = envbool("CLOSELOOP_DEVELOPMENT", False)
SECRET_KEY = envsecret("SECRET_KEY", PLACEHOLDER_SECRET if (DEBUG or DEVELOPMENT) else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY (or SECRET_KEY_FILE) must be set; "
        "`make run` sets a development key, production must set its own."
    )

DATA_DIR = Path(env("CLOSELOOP_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [SITE_URL]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "ninja",  # serves Swagger UI from bundled static files, not a CDN (air-gapped sites)
    "closeloop.cases",
    "closeloop.outbound",
    "closeloop.intake",
    "closeloop.understanding",
    "closeloop.followups",
    "closeloop.analytics",
    "closeloop.api",
    "closeloop.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "closeloop.web.zone.ZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "closeloop.urls"
WSGI_APPLICATION = "closeloop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'closeloop.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web and the worker read while one of them writes; IMMEDIATE makes
    # write transactions take the lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("CLOSELOOP_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = SITE_URL.startswith("https://")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Outbound mail: the outbox worker hands messages to this SMTP server.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = envint("EMAIL_PORT", 1025)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 15)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Front desk <frontdesk@closeloop.local>")
CLOSELOOP_MAIL_DOMAIN = env("CLOSELOOP_MAIL_DOMAIN", "closeloop.local")
# `closeloop run` catches outbound mail in $CLOSELOOP_DATA_DIR/sent-mail/ (demo and development).
CLOSELOOP_DEMO_MAIL_SINK = envbool("CLOSELOOP_DEMO_MAIL_SINK", DEVELOPMENT)

CLOSELOOP_MAX_UPLOAD_BYTES = envint("CLOSELOOP_MAX_UPLOAD_BYTES", 25 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = CLOSELOOP_MAX_UPLOAD_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Optional local LLM (OpenAI-compatible); empty means the product runs without one.
CLOSELOOP_LLM_URL = env("CLOSELOOP_LLM_URL")
CLOSELOOP_LLM_MODEL = env("CLOSELOOP_LLM_MODEL")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("CLOSELOOP_LOG_LEVEL", "INFO")},
}

NINJA_PAGINATION_PER_PAGE = 50

# ---- followups
# Seconds a worker process keeps team calendars cached before reloading them (one query).
CLOSELOOP_CALENDAR_CACHE_SECONDS = envint("CLOSELOOP_CALENDAR_CACHE_SECONDS", 60)
# Seconds a claimed follow-up stays leased to a worker; a worker that dies frees it after this.
CLOSELOOP_FOLLOWUP_LEASE_SECONDS = envint("CLOSELOOP_FOLLOWUP_LEASE_SECONDS", 300)
# Noise budget defaults (request types may override with policy keys daily_cap, min_gap_hours, quiet_hours).
CLOSELOOP_NOISE_DAILY_CAP = envint("CLOSELOOP_NOISE_DAILY_CAP", 5)
CLOSELOOP_NOISE_MIN_GAP_HOURS = envint("CLOSELOOP_NOISE_MIN_GAP_HOURS", 4)
CLOSELOOP_QUIET_HOURS = env("CLOSELOOP_QUIET_HOURS", "")  # e.g. "20:00-08:00", in the team's time zone
# Minutes between staff digests (one message per person per period listing what they owe).
CLOSELOOP_DIGEST_MINUTES = envint("CLOSELOOP_DIGEST_MINUTES", 60)

# ---- analytics
# Working hours without an event before an open case counts as stalled.
CLOSELOOP_ANALYTICS_STALL_HOURS = envint("CLOSELOOP_ANALYTICS_STALL_HOURS", 8)
# Minutes past its due time before a follow-up counts as missed.
CLOSELOOP_ANALYTICS_MISSED_MINUTES = envint("CLOSELOOP_ANALYTICS_MISSED_MINUTES", 60)
# Consecutive days of arrivals above completions that raise the drowning warning.
CLOSELOOP_ANALYTICS_WARN_DAYS = envint("CLOSELOOP_ANALYTICS_WARN_DAYS", 3)
# Seconds a computed dashboard report is reused for the same viewer, period and data (0: never).
CLOSELOOP_ANALYTICS_CACHE_SECONDS = envint("CLOSELOOP_ANALYTICS_CACHE_SECONDS", 60)
# Bearer token for /metrics; empty means only requests from localhost are answered.
CLOSELOOP_METRICS_TOKEN = envsecret("CLOSELOOP_METRICS_TOKEN")

# ---- intake
# Raw inbound bytes, content-addressed; kept for every message (docs/intake.md).
CLOSELOOP_INTAKE_RAW_DIR = Path(env("CLOSELOOP_INTAKE_RAW_DIR", str(DATA_DIR / "inbound")))
CLOSELOOP_INTAKE_FSYNC = envbool("CLOSELOOP_INTAKE_FSYNC", True)
CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES = envint("CLOSELOOP_INTAKE_MAX_MESSAGE_BYTES", 50 * 1024 * 1024)
CLOSELOOP_INTAKE_DEDUPE_MINUTES = envint("CLOSELOOP_INTAKE_DEDUPE_MINUTES", 60)
CLOSELOOP_INTAKE_SENDER_LIMIT = envint("CLOSELOOP_INTAKE_SENDER_LIMIT", 10)
CLOSELOOP_INTAKE_SENDER_WINDOW_MINUTES = envint("CLOSELOOP_INTAKE_SENDER_WINDOW_MINUTES", 60)
CLOSELOOP_INTAKE_DEFAULT_TYPE = env("CLOSELOOP_INTAKE_DEFAULT_TYPE")
# Replies go to <local>+<signed token>@<domain> of this address (empty: the address the
# request came in on, else DEFAULT_FROM_EMAIL); it must be routed into closeloop.
CLOSELOOP_INTAKE_REPLY_ADDRESS = env("CLOSELOOP_INTAKE_REPLY_ADDRESS")
# The demo (development) listens for mail on 2525 and watches var/scans; production opts in.
CLOSELOOP_SMTP_LISTEN = env("CLOSELOOP_SMTP_LISTEN", "127.0.0.1:2525" if DEVELOPMENT else "")
CLOSELOOP_SMTP_TLS_CERT = env("CLOSELOOP_SMTP_TLS_CERT")
CLOSELOOP_SMTP_TLS_KEY = env("CLOSELOOP_SMTP_TLS_KEY")
CLOSELOOP_SMTP_AUTH_USER = env("CLOSELOOP_SMTP_AUTH_USER")
CLOSELOOP_SMTP_AUTH_PASSWORD = envsecret("CLOSELOOP_SMTP_AUTH_PASSWORD")
CLOSELOOP_INTAKE_FOLDER = env("CLOSELOOP_INTAKE_FOLDER", str(DATA_DIR / "scans") if DEVELOPMENT else "")
CLOSELOOP_INTAKE_FOLDER_TYPE = env("CLOSELOOP_INTAKE_FOLDER_TYPE")
CLOSELOOP_FORM_RATE_LIMIT = envint("CLOSELOOP_FORM_RATE_LIMIT", 5)
CLOSELOOP_FORM_RATE_WINDOW_MINUTES = envint("CLOSELOOP_FORM_RATE_WINDOW_MINUTES", 10)
# Intake REST API calls per token (or staff session) per window; 0 turns the limit off.
CLOSELOOP_API_RATE_LIMIT = envint("CLOSELOOP_API_RATE_LIMIT", 120)
CLOSELOOP_API_RATE_WINDOW_SECONDS = envint("CLOSELOOP_API_RATE_WINDOW_SECONDS", 60)

# ---- understanding
# A directory holding `model.onnx` (and optionally `tokenizer.json`) replaces the bundled
# all-MiniLM-L6-v2 int8 model; its sha256 must then be given too (checked at load).
CLOSELOOP_EMBEDDING_MODEL_DIR = env("CLOSELOOP_EMBEDDING_MODEL_DIR")
CLOSELOOP_EMBEDDING_MODEL_SHA256 = env("CLOSELOOP_EMBEDDING_MODEL_SHA256")
CLOSELOOP_EMBEDDINGS = envbool("CLOSELOOP_EMBEDDINGS", True)
CLOSELOOP_ONNX_THREADS = envint("CLOSELOOP_ONNX_THREADS", 1)
CLOSELOOP_ROUTE_THRESHOLD = float(env("CLOSELOOP_ROUTE_THRESHOLD", "0.8"))
CLOSELOOP_RETRAIN_HOURS = envint("CLOSELOOP_RETRAIN_HOURS", 24)
CLOSELOOP_LLM_TIMEOUT = envint("CLOSELOOP_LLM_TIMEOUT", 60)
# Run the embedding model re-quantised for int8 products (derived once under DATA_DIR/embeddings).
CLOSELOOP_EMBEDDING_FAST = envbool("CLOSELOOP_EMBEDDING_FAST", True)
# Threads for embedding while training (0: every core).
CLOSELOOP_TRAIN_THREADS = envint("CLOSELOOP_TRAIN_THREADS", 0)
# Most pixels a PDF page is rendered to for OCR (a page larger than a US legal page at 300 dpi is
# rendered at a lower dpi), so a hostile media box cannot exhaust the worker's memory.
CLOSELOOP_OCR_MAX_PIXELS = max(1_000_000, envint("CLOSELOOP_OCR_MAX_PIXELS", 2550 * 4200))

# ---- web
# Seconds between htmx polls of the queues and the case page (live updates of others' changes).
CLOSELOOP_WEB_POLL_SECONDS = max(1, envint("CLOSELOOP_WEB_POLL_SECONDS", 10))

# ---- analytics
# Django's cache (the dashboard's remembered report, rate-limit counters), shared by every web
# and worker process: `db://TABLE` (default: a table made by the analytics migrations),
# `locmem://` (per process), `file:///path` or `dummy://`. The test settings default to
# locmem:// (tests without database access clear the cache too).
def _cache(url: str) -> dict[str, object]:
    scheme, _, rest = url.partition("://")
    backends = {"db": "django.core.cache.backends.db.DatabaseCache",
                "locmem": "django.core.cache.backends.locmem.LocMemCache",
                "file": "django.core.cache.backends.filebased.FileBasedCache",
                "dummy": "django.core.cache.backends.dummy.DummyCache"}
    if scheme not in backends or (scheme in ("db", "file") and not rest):
        raise ImproperlyConfigured(
            f"CLOSELOOP_CACHE_URL must be db://TABLE, locmem://, file:///PATH or dummy://, got {url!r}")
    return {"BACKEND": backends[scheme], "LOCATION": rest, "OPTIONS": {"MAX_ENTRIES": 1000}}


CLOSELOOP_CACHE_URL = env("CLOSELOOP_CACHE_URL", "db://closeloop_cache")
CACHES = {"default": _cache(CLOSELOOP_CACHE_URL)}

# ---- followups (outbox delivery speed)
# SMTP connections one worker delivers over at once (each its own thread and share of the claimed rows).
CLOSELOOP_OUTBOX_CONNECTIONS = max(1, envint("CLOSELOOP_OUTBOX_CONNECTIONS", 4))
# Accepted messages recorded as sent in one UPDATE: at most this many, or after CLOSELOOP_OUTBOX_MARK_MS.
# A worker killed meanwhile resends at most these (plus two per connection), each with its same Message-ID.
CLOSELOOP_OUTBOX_MARK_GROUP = max(1, envint("CLOSELOOP_OUTBOX_MARK_GROUP", 20))
CLOSELOOP_OUTBOX_MARK_MS = max(0, envint("CLOSELOOP_OUTBOX_MARK_MS", 200))
# Worker jobs that run in a helper thread beside the others on PostgreSQL (comma-separated dotted
# paths; empty: every job in turn). Delivery waits on the SMTP server while the chasers run.
CLOSELOOP_WORKER_ALONGSIDE = frozenset(
    name.strip() for name in env("CLOSELOOP_WORKER_ALONGSIDE", "closeloop.outbound.outbox.deliver_due").split(",")
    if name.strip())

# ---- web
# Every upload is counted while it streams in and refused as soon as it passes CLOSELOOP_MAX_UPLOAD_BYTES,
# before it can fill the disk (closeloop/web/uploads.py); Django's own handlers come after it.
FILE_UPLOAD_HANDLERS = ["closeloop.web.uploads.SizeLimitHandler",
                        "django.core.files.uploadhandler.MemoryFileUploadHandler",
                        "django.core.files.uploadhandler.TemporaryFileUploadHandler"]

# ---- followups (outbox retries)
# A message refused for now (4xx) or not taken because our own SMTP server is down is retried, with the
# delay doubling from 30 s up to CLOSELOOP_OUTBOX_BACKOFF_MAX_SECONDS, for CLOSELOOP_OUTBOX_RETRY_HOURS from
# its first failure; its case shows a mail_delayed event after CLOSELOOP_OUTBOX_DELAY_NOTICE_MINUTES.
# Bounded so the attempts counter (a small integer column) cannot overflow: at most 30 days, 2 minutes apart.
CLOSELOOP_OUTBOX_RETRY_HOURS = min(max(1, envint("CLOSELOOP_OUTBOX_RETRY_HOURS", 72)), 720)
CLOSELOOP_OUTBOX_BACKOFF_MAX_SECONDS = max(120, envint("CLOSELOOP_OUTBOX_BACKOFF_MAX_SECONDS", 900))
CLOSELOOP_OUTBOX_DELAY_NOTICE_MINUTES = max(1, envint("CLOSELOOP_OUTBOX_DELAY_NOTICE_MINUTES", 60))

# ---- api
# Days a new API token is valid (`closeloop create-token --days` sets it per token), 1 to 3650.
CLOSELOOP_API_TOKEN_DAYS = envint("CLOSELOOP_API_TOKEN_DAYS", 90)
if not 1 <= CLOSELOOP_API_TOKEN_DAYS <= 3650:
    raise ImproperlyConfigured(f"CLOSELOOP_API_TOKEN_DAYS must be 1 to 3650, got {CLOSELOOP_API_TOKEN_DAYS}")
# Calls per token (or staff session) per CLOSELOOP_API_RATE_WINDOW_SECONDS on /api/cases/ and on
# /api/analytics/ (counted apart; 0 turns a limit off). A figure can take seconds to compute.
CLOSELOOP_API_CASES_RATE_LIMIT = envint("CLOSELOOP_API_CASES_RATE_LIMIT", 240)
CLOSELOOP_API_ANALYTICS_RATE_LIMIT = envint("CLOSELOOP_API_ANALYTICS_RATE_LIMIT", 60)
