"""The member pages and API answers: the set-password form, its outcomes, and login and reset replies.

The set-password page is plain HTML that works without JavaScript: one labelled password field
(``autocomplete="new-password"``, the rules in a hint tied to it with ``aria-describedby``), the
address as a hidden ``username`` for password managers, a visible focus ring, colours of at least
4.5:1 contrast (``PALETTE``; a unit test computes the ratios), ``lang`` set, and a title that says
what went wrong first. Every page is sent with ``no-store``, ``no-referrer`` and a CSP that allows
no script and no resource from elsewhere: the page's URL holds the link's token, and nothing may
carry it off. Errors of these routes are pages too (``page``), not JSON: a link that cannot be used
is a 410 saying how to get a new one, a password outside the rules is the form again with the reason.
"""

from __future__ import annotations

import functools
import html
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec
from urllib.parse import parse_qs

from chalice.app import Response

from chalicelib.domain.errors import BadRequest, LinkUnusable, MemberflowError, PayloadTooLarge, TokenRefused
from chalicelib.domain.members import (
    LINK_LIFETIME,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    LinkPurpose,
)
from chalicelib.entrypoints.http import json_response, status_of

if TYPE_CHECKING:
    from chalicelib.services.members import LinkCheck, Login, Members

logger = logging.getLogger("chalicelib.http")

P = ParamSpec("P")

MAX_FORM_BYTES = 8 * 1024
"""A token and a password of at most 256 characters, percent-encoded, fit many times over."""

PALETTE: Mapping[str, str] = {
    "text": "#1b1b1b",
    "background": "#ffffff",
    "muted": "#4a4a4a",
    "accent": "#1d4ed8",
    "accent_text": "#ffffff",
    "accent_hover": "#1e3a8a",
    "border": "#595959",
    "error": "#a11313",
    "error_background": "#fdf0f0",
}
"""Every colour the pages use; text pairs are at least 4.5:1, the focus ring and borders at least 3:1."""

CONTRAST_PAIRS: tuple[tuple[str, str, float], ...] = (
    ("text", "background", 4.5),
    ("muted", "background", 4.5),
    ("accent_text", "accent", 4.5),
    ("accent_text", "accent_hover", 4.5),
    ("accent", "background", 4.5),
    ("error", "error_background", 4.5),
    ("border", "background", 3.0),
    ("accent", "error_background", 3.0),
)
"""(foreground, background, the least WCAG 2.1 contrast ratio it needs), checked by a unit test."""

_CSS = """
:root {{ color-scheme: light; }}
body {{ margin: 0; font: 1.125rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: {text}; background: {background}; }}
main {{ max-width: 34rem; margin: 3rem auto; padding: 0 1.25rem; }}
h1 {{ font-size: 1.75rem; line-height: 1.25; }}
label {{ display: block; font-weight: 600; margin-top: 1.5rem; }}
.hint {{ color: {muted}; margin: 0.25rem 0 0.5rem; }}
.error {{ color: {error}; background: {error_background}; border-left: 4px solid {error};
  padding: 0.5rem 0.75rem; margin: 0.5rem 0; }}
input {{ box-sizing: border-box; width: 100%; padding: 0.75rem; font: inherit; color: {text};
  background: {background}; border: 2px solid {border}; border-radius: 4px; }}
input[aria-invalid="true"] {{ border-color: {error}; }}
button {{ margin-top: 1.25rem; padding: 0.75rem 1.5rem; font: inherit; font-weight: 600;
  color: {accent_text}; background: {accent}; border: 2px solid {accent}; border-radius: 4px;
  cursor: pointer; }}
button:hover {{ background: {accent_hover}; border-color: {accent_hover}; }}
a {{ color: {accent}; }}
a:focus, input:focus, button:focus {{ outline: 3px solid {accent}; outline-offset: 3px; }}
""".format(**PALETTE)

HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none';"
        " base-uri 'none'"
    ),
}

RESET_ANSWER = (
    "If an account exists for this address, an email with a link to choose a new password is on its"
    " way. The link works once, for one hour."
)


def page(view: Callable[P, Response]) -> Callable[P, Response]:
    """Map errors raised by a member page's view to HTML pages (``api`` does the same in JSON)."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return view(*args, **kwargs)
        except MemberflowError as error:
            status = status_of(error)
            log = logger.error if status >= 500 else logger.info
            log("member page refused", extra={"status": status, "code": error.code})
            return error_page(error, status)
        except Exception:
            logger.exception("unhandled error on a member page")
            return _trouble_page(500)

    return wrapper


# --- pages ---------------------------------------------------------------------------------------


def set_password_form(
    link: LinkCheck, token: str, *, problem: str | None = None, status: int = 200
) -> Response:
    reset = link.purpose is LinkPurpose.RESET
    heading = "Choose a new password" if reset else "Set your password"
    email = html.escape(link.email)
    described = "password-hint password-error" if problem else "password-hint"
    error = f'<p class="error" id="password-error" role="alert">{html.escape(problem)}</p>' if problem else ""
    invalid = ' aria-invalid="true"' if problem else ""
    content = f"""<p>This sets the password of the membership account for <strong>{email}</strong>.
It expires {_when(link.expires_at)}.</p>
<form method="post" action="set-password">
<input type="hidden" name="token" value="{html.escape(token)}">
<input type="email" value="{email}" autocomplete="username" readonly hidden>
<label for="password">New password</label>
<p class="hint" id="password-hint">At least {MIN_PASSWORD_LENGTH} characters. A few unrelated words
make a password that is strong and easy to remember.</p>
{error}<input id="password" name="password" type="password" autocomplete="new-password"
 minlength="{MIN_PASSWORD_LENGTH}" maxlength="{MAX_PASSWORD_LENGTH}" required
 aria-describedby="{described}"{invalid}>
<button type="submit">{"Save the new password" if reset else "Set password"}</button>
</form>"""
    title = f"Error: {problem} – {heading}" if problem else heading
    return _html(status, title, heading, content)


def password_set(email: str) -> Response:
    content = (
        f"<p>The password of <strong>{html.escape(email)}</strong> is saved. You can now log in with this"
        " address and your new password.</p>"
    )
    return _html(200, "Password saved", "Your password is saved", content)


def error_page(error: MemberflowError, status: int) -> Response:
    if isinstance(error, LinkUnusable):
        lifetime_set = _hours(LINK_LIFETIME[LinkPurpose.SET_PASSWORD])
        lifetime_reset = _hours(LINK_LIFETIME[LinkPurpose.RESET])
        content = f"""<p>It has expired or has already been used: each link works once, a welcome email's
for {lifetime_set} hours and a password reset's for {lifetime_reset} hour.</p>
<p>To get a new link, choose <strong>Forgot your password?</strong> where you log in to the membership
site: we will email you one straight away. If you have already set your password, just log in.</p>"""
        gone = "This link cannot be used any more"
        return _html(status, gone, gone, content)
    if status < 500:
        content = f"<p>{html.escape(error.answer)}</p><p>Go back to the link in your email and try again.</p>"
        return _html(status, "The form could not be read", "The form could not be read", content)
    return _trouble_page(status)


def _trouble_page(status: int) -> Response:
    content = "<p>Something went wrong on our side. Please try again in a few minutes.</p>"
    return _html(status, "Something went wrong", "Something went wrong", content)


def _html(status: int, title: str, heading: str, content: str) -> Response:
    body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{html.escape(heading)}</h1>
{content}
</main>
</body>
</html>
"""
    return Response(body=body, status_code=status, headers=dict(HEADERS))


def _when(at: datetime) -> str:
    return f"on {at:%-d %B %Y at %H:%M} UTC"


def _hours(lifetime: Any) -> int:
    return int(lifetime.total_seconds() // 3600)


# --- the form and the JSON answers ---------------------------------------------------------------


def read_form(body: bytes) -> dict[str, str]:
    """The form's fields, one value each; ``BadRequest`` for a body no browser sends."""
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"the form is {len(body)} bytes; the limit is {MAX_FORM_BYTES}")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form's content could not be read") from None
    if any(len(values) != 1 for values in fields.values()):
        raise BadRequest("the form sent a field more than once")
    return {name: values[0] for name, values in fields.items()}


def submit_password(members: Members, body: bytes) -> Response:
    """``POST /members/set-password``: the password saved, or the form again with the reason."""
    form = read_form(body)
    token = form.get("token", "")
    password = form.get("password", "")
    try:
        member = members.set_password(token, password)
    except BadRequest as refused:
        if refused.code != "weak_password":
            raise
        # The link is still good (it is checked first): show the form again, saying what to change.
        return set_password_form(members.check_link(token), token, problem=refused.answer, status=400)
    return password_set(member.email)


def login_answer(login: Login) -> Response:
    """``POST /members/login``: the session token, until when, and the offerings the member has now."""
    return _private({"token": login.session.token, **_session_facts(login)})


def session_answer(login: Login) -> Response:
    """``GET /members/session``: whose session it is, until when, and the offerings they have now."""
    return _private({"email": login.session.email, **_session_facts(login)})


def _session_facts(login: Login) -> dict[str, Any]:
    return {
        "expires_at": login.session.expires_at.isoformat().replace("+00:00", "Z"),
        "offerings": list(login.offerings),
    }


def _private(body: Mapping[str, Any]) -> Response:
    """A JSON answer no cache keeps: it names a member and may carry their session token."""
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def logged_out() -> Response:
    return _private({"result": "logged_out"})


def session_token(authorization: str | None) -> str:
    """The session token of an ``Authorization: Bearer <token>`` header; ``TokenRefused`` without one."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenRefused(
            "send the session token as Authorization: Bearer <token>", code="invalid_session", given=False
        )
    return token


def credentials(body: Mapping[str, Any]) -> tuple[str, str]:
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        raise BadRequest('send {"email": ..., "password": ...} as strings', code="invalid_login")
    if not password.isascii():
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:
            # JSON can carry a lone surrogate (\ud800), which no password was ever set from and
            # the hasher cannot encode: a malformed request, not a crash.
            raise BadRequest("the password is not valid text", code="invalid_login") from None
    return email, password


def reset_email_of(body: Mapping[str, Any]) -> str:
    email = body.get("email")
    if not isinstance(email, str):
        raise BadRequest('send {"email": ...} as a string', code="invalid_reset")
    return email


def reset_answer() -> Response:
    return json_response({"result": "accepted", "message": RESET_ANSWER}, 202)
