"""The admin dashboard's pages at /admin: sign-in, overview with charts, users, review queue,
support tickets, disputes, dead letters and reconciliation runs.

Pages read the read models directly (auditors see everything, where the API keeps some
lists to the roles that act on them); every change is a call to the API with the staff
member's own token (`session.call_api`), so it goes through the same commands and role
checks. Forms carry a CSRF token bound to the session; the cookies are SameSite=Strict too.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from gopay.aggregates.support_ticket import BODY_MAX
from gopay.api.deps import SystemDep
from gopay.api.routes.admin import staff_accounts
from gopay.commands.support_tickets import SUPPORT_ROLES
from gopay.dashboard import roles
from gopay.dashboard.charts import Bar, bar_chart, column_chart, money_text
from gopay.dashboard.session import (
    LOGIN_CSRF_COOKIE,
    StaffSession,
    call_api,
    csrf_matches,
    current_session,
    forget_tokens,
    keep_tokens,
    new_login_csrf,
    set_cookie,
)
from gopay.security.tokens import read_access_token
from gopay.system import System

router = APIRouter(include_in_schema=False)

# Pages need their own stylesheet and nothing else: no script, no outside asset.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")
STYLESHEET = files("gopay.dashboard").joinpath("static/admin.css").read_bytes()
LIST_LIMIT = 50
# What a finished change says on the page it returns to (never text from the request).
NOTICES = {"frozen": "The account is frozen: it can receive but not send.",
           "unfrozen": "The account is unfrozen.", "kyc": "The KYC decision is recorded.",
           "approve": "The held payment is approved and carried out.",
           "reject": "The held payment is rejected and its money released.",
           "retried": "The dead letter was tried again.", "signed_out": "You are signed out.",
           "replied": "The reply is sent; the ticket waits on the customer.",
           "assigned": "The ticket is assigned.", "closed": "The ticket is closed.",
           "decided_customer": "Decided for the customer: the disputed amount goes back to them.",
           "decided_merchant": "Decided for the merchant: the held money is theirs again."}
TICKET_STATUSES = ("open", "pending", "closed")
DISPUTE_STATUSES = ("open", "won", "lost")

templates = Environment(loader=PackageLoader("gopay.dashboard", "templates"),
                        autoescape=select_autoescape(default=True), auto_reload=False)
templates.globals["money"] = money_text


def page(template: str, *, status: int = 200, staff: StaffSession | None = None,
         **context: Any) -> HTMLResponse:
    """A rendered page, with what the signed-in staff member's role sees and may do."""
    role = staff.role if staff else ""
    html = templates.get_template(template).render(
        staff=staff, sees=lambda name: roles.sees(role, name),
        may=lambda name: roles.may(role, name), **context)
    response = HTMLResponse(html, status_code=status,
                            headers={"Content-Security-Policy": PAGE_CSP})
    if staff is not None and staff.renewed:
        keep_tokens(response, staff.renewed)
    return response


def refused(staff: StaffSession | None, status: int, message: str) -> HTMLResponse:
    return page("message.html", status=status, staff=staff, title=message)


def to_sign_in() -> RedirectResponse:
    return RedirectResponse("/admin/login", status_code=303)


# Where browsers land

@router.get("/")
async def root() -> RedirectResponse:
    """A browser opening GoPay's address finds the dashboard (the API's docs are at /docs)."""
    return RedirectResponse("/admin", status_code=307)


@router.get("/admin/static/admin.css")
async def stylesheet() -> Response:
    return Response(STYLESHEET, media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})


async def _viewer(request: Request, system: System, page_name: str) -> StaffSession | Response:
    """The signed-in staff member who may see this page; else where to send them instead."""
    staff = await current_session(request, system)
    if staff is None:
        return to_sign_in()
    if not roles.sees(staff.role, page_name):
        return refused(staff, 403, f"Your role does not show {roles.SHOWN[page_name]}.")
    return staff


# Signing in and out

@router.get("/admin/login")
async def login_form(request: Request, system: SystemDep) -> Response:
    if await current_session(request, system) is not None:
        return RedirectResponse("/admin", status_code=303)
    return _login_page(email="", notice=NOTICES.get(request.query_params.get("done", "")))


def _login_page(*, email: str, status: int = 200, problem: str | None = None,
                notice: str | None = None) -> HTMLResponse:
    token = new_login_csrf()
    response = page("login.html", status=status, title="Sign in", email=email,
                    csrf_token=token, problem=problem, notice=notice)
    set_cookie(response, LOGIN_CSRF_COOKIE, token)
    return response


@router.post("/admin/login")
async def login(request: Request, system: SystemDep,
                email: Annotated[str, Form(max_length=320)] = "",
                password: Annotated[str, Form(max_length=1024)] = "",
                otp: Annotated[str, Form(max_length=64)] = "",
                csrf_token: Annotated[str | None, Form(max_length=128)] = None) -> Response:
    """Sign in with `POST /v1/auth/login` (password, and the second factor when it is on)."""
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        return _login_page(email=email, status=403,
                           problem="The form expired or was not sent from this page; try again.")
    answer = await call_api(request, "POST", "/v1/auth/login", json={
        "email": email, "password": password, **({"otp": otp.strip()} if otp.strip() else {})})
    if answer.status_code != 200:
        code = _problem(answer).get("code")
        problem = {"otp_required": "Enter the current code from your authenticator app.",
                   "rate_limited": "Too many attempts: wait a while and try again.",
                   "validation_error": "Enter your e-mail and password."}.get(
            str(code), "Wrong e-mail, password or code.")
        return _login_page(email=email, status=answer.status_code if answer.status_code < 500
                           else 503, problem=problem)
    tokens = answer.json()
    claims = read_access_token(tokens["access_token"], system.settings.signing_key)
    if claims is None or claims.kind != "staff":
        await call_api(request, "POST", "/v1/auth/logout", token=tokens["access_token"])
        return _login_page(email=email, status=403, problem="Only staff sign in here.")
    response = RedirectResponse("/admin", status_code=303)
    keep_tokens(response, tokens)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/admin", secure=True, httponly=True,
                           samesite="strict")
    return response


@router.post("/admin/logout")
async def logout(request: Request, system: SystemDep,
                 csrf_token: Annotated[str | None, Form(max_length=128)] = None) -> Response:
    """End the session in the API too: its tokens stop working everywhere."""
    staff = await current_session(request, system)
    if staff is None:
        return to_sign_in()
    if not csrf_matches(staff.csrf_token, csrf_token):
        return refused(staff, 403, "This form's CSRF token is missing or wrong.")
    await call_api(request, "POST", "/v1/auth/logout", token=staff.access_token)
    response = RedirectResponse("/admin/login?done=signed_out", status_code=303)
    forget_tokens(response)
    return response


# Pages

@router.get("/admin")
async def overview(request: Request, system: SystemDep) -> Response:
    """Today's and the last 30 days' figures (from `GET /v1/admin/analytics`), their charts,
    the projection lag, and what waits for staff."""
    staff = await current_session(request, system)
    if staff is None:
        return to_sign_in()
    report = None
    if roles.sees(staff.role, "figures"):
        answer = await call_api(request, "GET", "/v1/admin/analytics", token=staff.access_token)
        if answer.status_code != 200:
            return refused(staff, answer.status_code, _problem(answer).get("detail", "failed"))
        report = answer.json()
    waiting = await run_in_threadpool(_waiting, system, staff.role)
    context: dict[str, Any] = {"figures": report is not None, **waiting}
    if report is not None:
        context.update(today=_summary(report["days"][-1]), month=_summary(report["totals"]),
                       volume_by_day=[(currency, _volume_by_day(report, currency, compact=True))
                                      for currency in _currencies(report)],
                       volume_by_type=[(currency, _volume_by_type(report, currency))
                                       for currency in _currencies(report)])
    return page("overview.html", staff=staff, title="Overview", active="overview", **context)


@router.get("/admin/charts/{chart}")
async def chart(chart: str, request: Request, system: SystemDep,
                currency: Annotated[str, Query(pattern="^[A-Z]{3}$")] = "USD") -> Response:
    """One chart of the last 30 days on a page of its own, with its figures as a table."""
    staff = await current_session(request, system)
    if staff is None:
        return to_sign_in()
    if chart not in ("volume-by-day", "volume-by-type"):
        return refused(staff, 404, "There is no such chart.")
    answer = await call_api(request, "GET", "/v1/admin/analytics", token=staff.access_token)
    if answer.status_code != 200:
        return refused(staff, answer.status_code, _problem(answer).get("detail", "failed"))
    report = answer.json()
    if chart == "volume-by-day":
        title, heading = f"Volume by day, last 30 days, {currency}", "Day"
        rows = [{"label": day["date"], "value": _volume(day, currency),
                 "count": _count(day, currency)} for day in report["days"]]
        drawing = _volume_by_day(report, currency, compact=False)
    else:
        title, heading = f"Volume by type, last 30 days, {currency}", "Type"
        rows = [{"label": kind, "value": figures["volume"].get(currency, 0),
                 "count": figures["count"]}
                for kind, figures in _types_of(report["totals"], currency)]
        drawing = _volume_by_type(report, currency)
    return page("chart.html", staff=staff, title=title, active="overview", chart=drawing,
                rows=rows, currency=currency, label_heading=heading,
                currencies=_currencies(report))


@router.get("/admin/users")
async def users(request: Request, system: SystemDep,
                q: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Customers found by e-mail, name, business or phone, with what staff may do to them."""
    staff = await _viewer(request, system, "users")
    if isinstance(staff, Response):
        return staff
    found = await run_in_threadpool(_customers, system, q.strip() or None)
    return page("users.html", staff=staff, title="Users", active="users", users=found, q=q,
                notice=NOTICES.get(request.query_params.get("done", "")))


@router.get("/admin/reviews")
async def reviews(request: Request, system: SystemDep) -> Response:
    staff = await _viewer(request, system, "reviews")
    if isinstance(staff, Response):
        return staff
    rows = await run_in_threadpool(_read, system, lambda: system.read_side.reviews.reviews(
        status="open", limit=LIST_LIMIT))
    return page("reviews.html", staff=staff, title="Review queue", active="reviews",
                reviews=rows, notice=NOTICES.get(request.query_params.get("done", "")))


@router.get("/admin/tickets")
async def tickets(request: Request, system: SystemDep,
                  status: Annotated[Literal["open", "pending", "closed"], Query()] = "open",
                  ) -> Response:
    """Support tickets of one status, newest first: open ones wait on staff."""
    staff = await _viewer(request, system, "tickets")
    if isinstance(staff, Response):
        return staff
    rows, people = await run_in_threadpool(_tickets, system, status)
    return page("tickets.html", staff=staff, title="Support tickets", active="tickets",
                tickets=rows, people=people, tab=status, tabs=TICKET_STATUSES)


@router.get("/admin/tickets/{ticket_id}")
async def ticket(ticket_id: str, request: Request, system: SystemDep) -> Response:
    """A ticket with its messages, its transaction as it stands and its assignee, and the
    forms to reply, assign and close it."""
    staff = await _viewer(request, system, "tickets")
    if isinstance(staff, Response):
        return staff
    found = await run_in_threadpool(_ticket, system, _uuid(ticket_id))
    if found is None:
        return refused(staff, 404, "There is no such ticket.")
    return page("ticket.html", staff=staff, title=found["ticket"]["subject"], active="tickets",
                body_max=BODY_MAX, notice=NOTICES.get(request.query_params.get("done", "")),
                **found)


@router.get("/admin/disputes")
async def disputes(request: Request, system: SystemDep,
                   status: Annotated[Literal["open", "won", "lost"], Query()] = "open",
                   ) -> Response:
    """Disputes of one status, newest first: open ones wait for a decision."""
    staff = await _viewer(request, system, "disputes")
    if isinstance(staff, Response):
        return staff
    rows, owners = await run_in_threadpool(_disputes, system, status)
    return page("disputes.html", staff=staff, title="Disputes", active="disputes",
                disputes=rows, owners=owners, tab=status, tabs=DISPUTE_STATUSES)


@router.get("/admin/disputes/{dispute_id}")
async def dispute(dispute_id: str, request: Request, system: SystemDep) -> Response:
    """A dispute with the payment it disputes, its payer and payee, the money held for it,
    the payee's evidence, its events, and the forms to decide it."""
    staff = await _viewer(request, system, "disputes")
    if isinstance(staff, Response):
        return staff
    found = await run_in_threadpool(_dispute, system, _uuid(dispute_id))
    if found is None:
        return refused(staff, 404, "There is no such dispute.")
    return page("dispute.html", staff=staff, title="Dispute", active="disputes",
                notice=NOTICES.get(request.query_params.get("done", "")), **found)


@router.get("/admin/dead-letters")
async def dead_letters(request: Request, system: SystemDep) -> Response:
    staff = await _viewer(request, system, "dead_letters")
    if isinstance(staff, Response):
        return staff
    rows = await run_in_threadpool(_read, system, lambda: system.read_side.psp_tasks.dead_letters(
        limit=LIST_LIMIT))
    return page("dead_letters.html", staff=staff, title="Dead letters", active="dead_letters",
                letters=rows, notice=NOTICES.get(request.query_params.get("done", "")))


@router.get("/admin/reconciliation")
async def reconciliation(request: Request, system: SystemDep) -> Response:
    staff = await _viewer(request, system, "reconciliation")
    if isinstance(staff, Response):
        return staff
    rows = await run_in_threadpool(_read, system, lambda: system.read_side.reconciliation.runs(
        limit=LIST_LIMIT))
    return page("reconciliation.html", staff=staff, title="Reconciliation runs",
                active="reconciliation", runs=rows)


# Changes: each one API call with the staff member's token

@router.post("/admin/users/{user_id}/{action}")
async def change_user(user_id: UUID, action: str, request: Request, system: SystemDep,
                      csrf_token: Annotated[str | None, Form(max_length=128)] = None,
                      decision: Annotated[str, Form(max_length=16)] = "",
                      q: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Freeze, unfreeze (`POST /v1/admin/users/{id}/freeze`, `/unfreeze`) or decide KYC."""
    if action not in ("freeze", "unfreeze", "kyc"):
        return Response(status_code=404)
    body = {"decision": decision} if action == "kyc" else None
    done = {"freeze": "frozen", "unfreeze": "unfrozen", "kyc": "kyc"}[action]
    return await _change(request, system, csrf_token, f"/v1/admin/users/{user_id}/{action}",
                         body, back_to="/admin/users", done=done, params={"q": q} if q else {})


@router.post("/admin/reviews/{review_id}/{decision}")
async def decide_review(review_id: UUID, decision: str, request: Request, system: SystemDep,
                        csrf_token: Annotated[str | None, Form(max_length=128)] = None) -> Response:
    if decision not in ("approve", "reject"):
        return Response(status_code=404)
    return await _change(request, system, csrf_token, f"/v1/admin/reviews/{review_id}/{decision}",
                         None, back_to="/admin/reviews", done=decision)


@router.post("/admin/tickets/{ticket_id}/{action}")
async def change_ticket(ticket_id: UUID, action: str, request: Request, system: SystemDep,
                        csrf_token: Annotated[str | None, Form(max_length=128)] = None,
                        body: Annotated[str, Form(max_length=BODY_MAX)] = "",
                        staff_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Reply (`POST /v1/support/tickets/{id}/messages`), assign or close
    (`POST /v1/admin/tickets/{id}/assign`, `/close`); the API checks the body and the staff id."""
    calls = {"reply": (f"/v1/support/tickets/{ticket_id}/messages", {"body": body}, "replied"),
             "assign": (f"/v1/admin/tickets/{ticket_id}/assign", {"staff_id": staff_id},
                        "assigned"),
             "close": (f"/v1/admin/tickets/{ticket_id}/close", None, "closed")}
    if action not in calls:
        return Response(status_code=404)
    api_path, api_body, done = calls[action]
    return await _change(request, system, csrf_token, api_path, api_body,
                         back_to=f"/admin/tickets/{ticket_id}", done=done)


@router.post("/admin/disputes/{dispute_id}/resolve")
async def resolve_dispute(dispute_id: UUID, request: Request, system: SystemDep,
                          csrf_token: Annotated[str | None, Form(max_length=128)] = None,
                          outcome: Annotated[str, Form(max_length=16)] = "") -> Response:
    """Decide for the customer or the merchant (`POST /v1/admin/disputes/{id}/resolve`); the
    API checks the outcome, the role and that it is decided once."""
    return await _change(request, system, csrf_token, f"/v1/admin/disputes/{dispute_id}/resolve",
                         {"outcome": outcome}, back_to=f"/admin/disputes/{dispute_id}",
                         done=f"decided_{outcome}")


@router.post("/admin/dead-letters/{task_id}/retry")
async def retry_dead_letter(task_id: UUID, request: Request, system: SystemDep,
                            csrf_token: Annotated[str | None, Form(max_length=128)] = None,
                            ) -> Response:
    return await _change(request, system, csrf_token, f"/v1/admin/dead-letters/{task_id}/retry",
                         None, back_to="/admin/dead-letters", done="retried")


async def _change(request: Request, system: System, csrf_token: str | None, api_path: str,
                  body: Any, *, back_to: str, done: str,
                  params: dict[str, str] | None = None) -> Response:
    """Check the form's CSRF token, make the API call as the staff member, and go back to
    the page (or show the API's refusal with its status: 403 for a role that may not)."""
    staff = await current_session(request, system)
    if staff is None:
        return to_sign_in()
    if not csrf_matches(staff.csrf_token, csrf_token):
        return refused(staff, 403, "This form's CSRF token is missing or wrong.")
    answer = await call_api(request, "POST", api_path, token=staff.access_token, json=body)
    if answer.status_code >= 300:
        detail = _problem(answer).get("detail") or "the change was refused"
        return refused(staff, answer.status_code, f"Refused: {detail}")
    query = urlencode({**(params or {}), "done": done})
    response = RedirectResponse(f"{back_to}?{query}", status_code=303)
    if staff.renewed:
        keep_tokens(response, staff.renewed)
    return response


# What the pages show

def _problem(answer: Any) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _read(system: System, query: Any) -> Any:
    system.catch_up_reads()
    return query()


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _tickets(system: System, status: str) -> tuple[list[dict[str, Any]], dict[Any, Any]]:
    """A page of tickets, and the directory rows of their customers and assignees."""
    system.catch_up_reads()
    rows = system.read_side.support_tickets.tickets(status=status, limit=LIST_LIMIT)
    ids = {row["customer_id"] for row in rows} | {row["assignee"] for row in rows
                                                   if row["assignee"]}
    return rows, system.read_side.directory.users(list(ids))


def _ticket(system: System, ticket_id: UUID | None) -> dict[str, Any] | None:
    """A ticket, its messages, the people they name, and the staff it may be assigned to."""
    if ticket_id is None:
        return None
    system.catch_up_reads()
    read = system.read_side
    row = read.support_tickets.ticket(ticket_id)
    if row is None:
        return None
    messages = read.support_tickets.messages(ticket_id)
    ids = {row["customer_id"], *([row["assignee"]] if row["assignee"] else []),
           *(m["staff_id"] for m in messages if m["staff_id"])}
    # Staff accounts are few: all of them, filtered here, are those a ticket may go to.
    assignees = [person for person in read.directory.search(None, kinds=("staff",), limit=500)
                 if person["role"] in SUPPORT_ROLES]
    return {"ticket": row, "messages": messages, "people": read.directory.users(list(ids)),
            "assignees": sorted(assignees, key=lambda person: person["email"])}


def _disputes(system: System, status: str) -> tuple[list[dict[str, Any]], dict[Any, Any]]:
    """A page of disputes, and the directory rows of their customers' and payees' wallets."""
    system.catch_up_reads()
    rows = system.read_side.disputes.disputes(status=status, limit=LIST_LIMIT)
    wallets = {wallet for row in rows
               for wallet in (row["customer_wallet_id"], row["merchant_wallet_id"]) if wallet}
    return rows, system.read_side.directory.by_wallets(list(wallets))


def _dispute(system: System, dispute_id: UUID | None) -> dict[str, Any] | None:
    """A dispute, its payment as the wallets view shows it now, the owners of the wallets
    involved, who decided it, and its own events (a few: opened, evidence, decided)."""
    if dispute_id is None:
        return None
    system.catch_up_reads()
    read = system.read_side
    row = read.disputes.dispute(dispute_id)
    if row is None:
        return None
    payment = read.wallets.order(row["transaction_id"])
    wallets = {row["customer_wallet_id"], row["merchant_wallet_id"],
               *((payment["payer_wallet_id"], payment["payee_wallet_id"]) if payment else ())}
    return {"dispute": row, "payment": payment, "events": _timeline(system, dispute_id),
            "owners": read.directory.by_wallets([w for w in wallets if w]),
            "people": read.directory.users([row["decided_by"]] if row["decided_by"] else [])}


def _timeline(system: System, aggregate_id: UUID) -> list[dict[str, Any]]:
    """An aggregate's own events, oldest first: what happened to it and when."""
    events: Any = system.app.repository.event_store.get(aggregate_id)
    return [{"type": type(event).__qualname__.rpartition(".")[2], "at": event.timestamp,
             "outcome": getattr(event, "outcome", None)} for event in events]


def _customers(system: System, text: str | None) -> list[Any]:
    system.catch_up_reads()
    rows = system.read_side.directory.search(text, kinds=("person", "company", "agent"),
                                             limit=LIST_LIMIT)
    return staff_accounts(system, rows)


def _waiting(system: System, role: str) -> dict[str, Any]:
    """Counts of what waits for staff, and the latest reconciliation runs, as the role sees them."""
    system.catch_up_reads()
    read = system.read_side
    return {
        "lag": read.lag_seconds(),
        "open_reviews": len(read.reviews.reviews(status="open", limit=100))
        if roles.sees(role, "reviews") else 0,
        "dead_letters": len(read.psp_tasks.dead_letters(limit=100))
        if roles.sees(role, "dead_letters") else 0,
        "runs": read.reconciliation.runs(limit=5) if roles.sees(role, "reconciliation") else [],
        "open_tickets": len(read.support_tickets.tickets(status="open", limit=100))
        if roles.sees(role, "tickets") else 0,
        "open_disputes": len(read.disputes.disputes(status="open", limit=100))
        if roles.sees(role, "disputes") else 0,
    }


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    """A period's figures as the overview shows them: volume summed over the types."""
    volume: dict[str, int] = {}
    for by_type in figures["by_type"].values():
        for currency, amount in by_type["volume"].items():
            volume[currency] = volume.get(currency, 0) + amount
    attempts = figures["payments"] + figures["failed"]
    return {**figures, "volume": dict(sorted(volume.items())),
            "fees": dict(sorted(figures["fees"].items())),
            "failure_rate": figures["failed"] / attempts if attempts else 0.0}


def _currencies(report: dict[str, Any]) -> list[str]:
    seen = {currency for figures in report["totals"]["by_type"].values()
            for currency in figures["volume"]}
    return sorted(seen) or ["USD"]


def _volume(day: dict[str, Any], currency: str) -> int:
    return sum(figures["volume"].get(currency, 0) for figures in day["by_type"].values())


def _count(day: dict[str, Any], currency: str) -> int:
    return sum(figures["count"] for figures in day["by_type"].values()
               if currency in figures["volume"])


def _types_of(figures: dict[str, Any], currency: str) -> list[tuple[str, dict[str, Any]]]:
    """The types that moved this currency, largest volume first."""
    return sorted(((kind, f) for kind, f in figures["by_type"].items() if currency in f["volume"]),
                  key=lambda item: -item[1]["volume"][currency])


def _volume_by_day(report: dict[str, Any], currency: str, *, compact: bool) -> Any:
    bars = [Bar(day["date"], _volume(day, currency)) for day in report["days"]]
    return column_chart(bars, title=f"Volume by day ({currency})",
                        value_text=lambda amount: money_text(amount, currency),
                        height=180 if compact else 360, every_nth_label=5 if compact else 3)


def _volume_by_type(report: dict[str, Any], currency: str) -> Any:
    bars = [Bar(kind, figures["volume"][currency])
            for kind, figures in _types_of(report["totals"], currency)]
    return bar_chart(bars, title=f"Volume by type ({currency})",
                     value_text=lambda amount: money_text(amount, currency))
