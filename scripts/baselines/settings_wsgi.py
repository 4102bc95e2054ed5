"""Baseline (b)'s WSGI web process (wsgi.py): its settings without the daphne app, which
would swap the Twisted reactor that twistd already runs."""

from scripts.baselines.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "daphne"]  # noqa: F405
