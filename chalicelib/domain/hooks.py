"""Generated operation URLs: ``/hooks/{operation_id}/{token}``.

The token is an HMAC of the operation id under the hooks signing secret, so nothing needs
storing, a URL cannot be guessed for another operation, and rotating the secret (keeping the old
one under ``previous_signing_secrets`` for a while) retires every old URL at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from chalicelib.domain.text import is_encodable


def hook_token(secret: str, operation_id: str) -> str:
    digest = hmac.new(secret.encode(), f"memberflow-hook:{operation_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


def token_is_valid(token: str, operation_id: str, secrets: Sequence[str]) -> bool:
    if not (is_encodable(token) and is_encodable(operation_id)):
        return False  # a lone surrogate is in no URL memberflow generated (and cannot be hashed)
    valid = False
    for secret in secrets:
        # Check every secret (no early exit) so timing does not reveal which one matched.
        valid |= hmac.compare_digest(token.encode(), hook_token(secret, operation_id).encode())
    return valid
