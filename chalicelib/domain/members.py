"""Member accounts as emails name them: the set-password link a welcome email carries.

Emails are rendered when their event is committed, long before they are sent, so the link cannot
hold its single-use token yet: a template's ``{{ member.set_password_url }}`` renders as
``set_password_url(base)``, the page's URL with ``SET_PASSWORD_TOKEN_PLACEHOLDER`` where the token
goes. Whoever delivers the email replaces the placeholder with a fresh token (and, where no base
URL was known at commit, ``PUBLIC_BASE_URL_PLACEHOLDER`` with the public base URL), so no token is
ever stored in an outbox item.
"""

from __future__ import annotations

SET_PASSWORD_TOKEN_PLACEHOLDER = "__SET_PASSWORD_TOKEN__"
"""Stands for the single-use token in a rendered ``member.set_password_url``; replaced at delivery."""
PUBLIC_BASE_URL_PLACEHOLDER = "__PUBLIC_BASE_URL__"
"""Stands for the base URL when neither ``PUBLIC_BASE_URL`` nor a request's base was known at commit
(an email queued by a timer); replaced at delivery."""
SET_PASSWORD_PATH = "/members/set-password"


def set_password_url(base_url: str | None) -> str:
    """The set-password page under ``base_url``, its token still the placeholder."""
    base = (base_url or PUBLIC_BASE_URL_PLACEHOLDER).rstrip("/")
    return f"{base}{SET_PASSWORD_PATH}?token={SET_PASSWORD_TOKEN_PLACEHOLDER}"
