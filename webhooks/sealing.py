"""Webhook signing secrets encrypted at rest, with a key derived from SECRET_KEY.

A signing secret must be readable again to sign (unlike API keys, of which only a hash
is kept), so it is stored as a Fernet token (AES-128-CBC with HMAC-SHA256) under a key
that HKDF derives from SECRET_KEY for this one purpose. A database dump alone reveals no
secret. Keys in SECRET_KEY_FALLBACKS still open secrets sealed before a key rotation;
new ones are sealed with the current key.
"""

import base64
from functools import cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

SALT = b"meterline webhook secrets"
INFO = b"webhooks.sealing v1"


def _derive(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_derive(key) for key in keys])


def _current() -> MultiFernet:
    return _fernet((settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())))


def secret_seal(secret: str) -> str:
    return _current().encrypt(secret.encode()).decode()


def secret_unseal(sealed: str) -> str:
    return _current().decrypt(sealed.encode()).decode()
