"""Connector credentials, encrypted at rest with Fernet (the `cryptography` package's authenticated encryption).

`CITEWISE_ENCRYPTION_KEY` holds one or more Fernet keys, comma-separated, newest first: the first encrypts, any of
them decrypts (MultiFernet), so a key is rotated by putting a new one in front, running `manage.py rotate_secrets`
(every stored secret re-encrypted with it) and then dropping the old one. A credential is never shown back in full
(`mask`), never logged, and never stored in `Source.config`.
"""

from __future__ import annotations

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.config import current
from core.errors import CitewiseError

MASK = "••••"
# A secret at least this long shows its last characters masked ("••••a1b2"); a shorter one shows none.
MIN_REVEALING_LENGTH = 12
REVEALED_CHARACTERS = 4


class SecretsUnavailable(CitewiseError):
    """Credentials cannot be encrypted or decrypted: no key configured, a malformed key, or a secret encrypted with
    a key that is no longer configured."""

    code = "secrets_unavailable"
    http_status = 500
    user_message = "Stored credentials cannot be read; an administrator must check CITEWISE_ENCRYPTION_KEY."


def generate_key() -> str:
    """A new Fernet key, for CITEWISE_ENCRYPTION_KEY."""
    return Fernet.generate_key().decode()


@lru_cache(maxsize=4)
def _cipher(keys: str) -> MultiFernet:
    names = [key.strip() for key in keys.split(",") if key.strip()]
    if not names:
        raise SecretsUnavailable("CITEWISE_ENCRYPTION_KEY is not set: connector credentials cannot be stored or "
                                 "read (generate a key with `manage.py rotate_secrets --new-key`)")
    try:
        return MultiFernet([Fernet(name.encode()) for name in names])
    except (ValueError, TypeError) as exc:
        raise SecretsUnavailable("CITEWISE_ENCRYPTION_KEY holds a value that is not a Fernet key (32 url-safe "
                                 "base64-encoded bytes)") from exc


def encrypt(secrets: dict[str, str]) -> str:
    """The secrets as one token, encrypted with the newest key."""
    return _cipher(current().encryption_key).encrypt(json.dumps(secrets, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, str]:
    """The secrets a token holds ({} for no token)."""
    if not token:
        return {}
    try:
        plain = _cipher(current().encryption_key).decrypt(token.encode())
    except InvalidToken as exc:
        raise SecretsUnavailable("stored credentials were encrypted with a key CITEWISE_ENCRYPTION_KEY no longer "
                                 "holds (or were altered)") from exc
    secrets = json.loads(plain)
    if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
        raise SecretsUnavailable("stored credentials are not a mapping of names to strings")
    return secrets


def rotate(token: str) -> str:
    """The token re-encrypted with the newest key ("" stays "")."""
    if not token:
        return token
    try:
        return _cipher(current().encryption_key).rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretsUnavailable("stored credentials were encrypted with a key CITEWISE_ENCRYPTION_KEY no longer "
                                 "holds (or were altered)") from exc


def mask(secret: str) -> str:
    """What may be shown of a secret: never all of it."""
    if len(secret) >= MIN_REVEALING_LENGTH:
        return MASK + secret[-REVEALED_CHARACTERS:]
    return MASK if secret else ""
