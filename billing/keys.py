"""Secrets handed to operators, dashboards and devices, and how they are stored.

A secret is shown once, at creation; only its SHA-256 is kept. Looking a
secret up by its hash through a unique index compares no secret bytes in
Python, so nothing leaks through timing.
"""

import hashlib
import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
