"""Baseline (b)'s settings: Meterline's, plus the POST route and the Celery task module."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "scripts.baselines.http_celery"
CELERY_IMPORTS = ["scripts.baselines.http_celery"]
# Celery closes the task's database connection after every task unless told to reuse it;
# reused here as Django's CONN_MAX_AGE asks (a new PostgreSQL backend per task costs more
# than the task's own queries).
CELERY_DB_REUSE_MAX = 1_000_000
