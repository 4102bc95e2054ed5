"""Meterline's Django project: settings, ASGI entry point and the Celery app."""

from project.celery import app as celery_app

__all__ = ["celery_app"]
