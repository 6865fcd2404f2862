"""RFC 9457 problem details: every error GoPay answers, in one place."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import psycopg
from eventsourcing import persistence
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gopay.aggregates.errors import DomainError, TooManyAttempts

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

# The `code` of each status when no more precise business word applies.
DEFAULT_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    423: "account_frozen", 429: "rate_limited", 503: "unavailable",
}

# The store could not be reached (its primary died, or a failover is under way): the request
# may or may not have taken effect, and a retry with the same Idempotency-Key tells.
STORE_UNAVAILABLE = (persistence.OperationalError, persistence.InterfaceError,
                     psycopg.OperationalError, psycopg.InterfaceError)


# The HTTP status of each domain error's code: the API's one mapping of the two.
STATUS_OF_CODE = {
    "validation_error": 422, "insufficient_funds": 422, "currency_mismatch": 422,
    "limit_exceeded": 422, "unbalanced_entry": 422, "unauthenticated": 401,
    "otp_required": 401, "forbidden": 403, "not_found": 404, "account_frozen": 423,
    "invalid_state": 409, "idempotency_conflict": 409, "email_taken": 409, "phone_taken": 409,
    "payment_method_exists": 409, "request_in_progress": 409, "rate_limited": 429,
    "wrong_code": 422, "fraud_suspected": 422, "dispute_window_closed": 422,
}


def domain_problem(error: DomainError) -> JSONResponse:
    """The problem+json answer to a broken business rule."""
    headers = ({"Retry-After": str(error.retry_after)} if isinstance(error, TooManyAttempts)
               else None)
    return problem_response(STATUS_OF_CODE.get(error.code, 422), str(error), error.code,
                            headers, **error.details)


class Problem(Exception):
    """An HTTP error raised by the API layer itself (auth, roles, headers)."""

    def __init__(self, status: int, detail: str, code: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or DEFAULT_CODES.get(status, "error")
        self.headers = headers
        self.extra = extra


def problem_response(status: int, detail: str, code: str | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    code = code or DEFAULT_CODES.get(status, "error")
    body = {
        "type": f"https://gopay.example/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def store_unavailable_response(error: Exception) -> JSONResponse:
    """503 with Retry-After: the client retries, and GoPay finds the new primary by itself."""
    log.warning("the event store is unavailable: %s",
                str(error).partition("\n")[0] or type(error).__name__)
    return problem_response(503, "the ledger's database is unavailable for a moment; retry "
                            "(with the same Idempotency-Key)", headers={"Retry-After": "1"})


def _validation_detail(error: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        errors.append({"field": location, "message": item.get("msg", "invalid")})
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return detail, errors


def _allowed_methods(request: Request) -> str:
    """Every method served at the request's path; Starlette's 405 names only the first route's."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def install_problem_handlers(app: FastAPI) -> None:
    """Map every kind of failure to problem+json; nothing leaves as a bare 500 page."""

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> JSONResponse:
        return domain_problem(error)

    @app.exception_handler(Problem)
    async def api_problem(request: Request, error: Problem) -> JSONResponse:
        return problem_response(error.status, error.detail, error.code, error.headers,
                                **error.extra)

    async def store_unavailable(request: Request, error: Exception) -> JSONResponse:
        return store_unavailable_response(error)

    for unavailable in STORE_UNAVAILABLE:
        app.add_exception_handler(unavailable, store_unavailable)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_detail(error)
        return problem_response(422, detail, "validation_error", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
        headers = getattr(error, "headers", None)
        if error.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return problem_response(error.status_code, detail, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
        return problem_response(500, "an unexpected error occurred",
                                "internal_error")
