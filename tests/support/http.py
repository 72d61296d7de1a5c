"""A scripted HTTP transport for adapter tests: answers in order, keeps every request it was sent."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.adapters.http import HttpRequest, HttpResponse

Answer = HttpResponse | BaseException | Callable[[HttpRequest], HttpResponse]
"""A response, an exception to raise (a timeout, a broken connection), or a function of the request."""


class ScriptedTransport:
    """A transport that answers from a script, in order, and keeps every request it was sent."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.sent: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    @property
    def last(self) -> HttpRequest:
        return self.sent[-1]
