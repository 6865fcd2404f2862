"""The admin dashboard in a real headless browser: Debian's chromium driven by Selenium.

One browser session tells the story: an admin signs in with a second factor, approves a
payment held for review, reads the overview (whose figures are the analytics API's), opens a
chart, finds a customer and freezes them (and the API then refuses their transfer), and a
form without its CSRF token is refused; a customer's support ticket is assigned, answered
(the customer reads the reply over the API) and closed from its page; a customer's dispute of
a transfer is decided for them from its page (the API shows it won, their money back); then
an auditor signs in, is offered no change anywhere (tickets and disputes included) and is
refused one posted all the same.
A screenshot of every page is kept in `test-artifacts/dashboard/`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from gopay.dashboard.charts import money_text
from tests.conftest import new_database
from tests.support import PASSWORD, Client, GoPayServer, fund, gopay_env, register, staff

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
DEBIAN_PACKAGES = ("chromium", "chromium-driver")
TRANSFER_FEE = json.dumps({"transfer": {"fixed": 25, "bps": 0, "paid_by": "payer"}})


def chromium_and_driver() -> tuple[str, str]:
    """Debian's chromium and its chromedriver, installed with apt-get when missing (as root)."""
    def found() -> tuple[str | None, str | None]:
        return shutil.which("chromium"), shutil.which("chromedriver")

    browser, driver = found()
    if browser is None or driver is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", *DEBIAN_PACKAGES]):
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=900, check=False)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
        browser, driver = found()
    if browser is None or driver is None:
        pytest.fail(f"{' '.join(DEBIAN_PACKAGES)} installed, yet chromium or chromedriver "
                    "is not on the PATH")
    return browser, driver


def left(page: WebElement) -> Callable[[WebDriver], bool]:
    """Whether the browser has left the page `page` is the root of. Selenium's `staleness_of`
    asks the element and waits for its 'stale' error; while chromium swaps the document it
    sometimes answers 'does not belong to the document' instead, which means the same."""
    def gone(_: WebDriver) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" not in str(error):
                raise
            return True
        return False
    return gone


@dataclass
class Dashboard:
    """The browser on the dashboard of one GoPay server, and where its screenshots go."""

    browser: WebDriver
    base_url: str
    shots: Path

    def open(self, path: str) -> None:
        self.browser.get(f"{self.base_url}{path}")

    def path(self) -> str:
        return self.browser.current_url.removeprefix(self.base_url).split("?")[0]

    def one(self, css: str) -> Any:
        return self.browser.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        return self.browser.find_elements(By.CSS_SELECTOR, css)

    def click(self, css: str) -> None:
        """Click what leads to another page, and wait until that page is there."""
        page = self.one("html")
        self.one(css).click()
        WebDriverWait(self.browser, 15).until(left(page))

    def value(self, css: str) -> str:
        return str(self.one(css).get_attribute("data-value"))

    def screenshot(self, name: str) -> None:
        """The whole page, however long, for a person to look at."""
        shot = self.browser.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True})
        (self.shots / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))

    def sign_in(self, email: str, password: str, otp: str = "") -> None:
        self.open("/admin/login")
        self.one("#email").clear()
        self.one("#email").send_keys(email)
        self.one("#password").send_keys(password)
        if otp:
            self.one("#otp").send_keys(otp)
        self.click("#sign-in")

    def post(self, path: str, form: dict[str, str]) -> int:
        """Submit a form of our own making from the page (as a forged page would), with the
        browser's cookies; the status of the page it leads to."""
        page = self.one("html")
        self.browser.execute_script(
            "const [path, fields] = arguments; const form = document.createElement('form');"
            "form.method = 'post'; form.action = path;"
            "for (const [name, value] of Object.entries(fields)) {"
            " const input = document.createElement('input'); input.type = 'hidden';"
            " input.name = name; input.value = value; form.appendChild(input); }"
            "document.body.appendChild(form); form.submit();", path, form)
        WebDriverWait(self.browser, 15).until(left(page))
        return int(self.browser.execute_script(
            "return performance.getEntriesByType('navigation')[0].responseStatus"))

    def csrf_token(self) -> str:
        """The session's CSRF token, from the sign-out form every page has."""
        return str(self.one("form.signout input[name=csrf_token]").get_attribute("value"))

    def change_buttons(self) -> list[Any]:
        """Buttons of forms that change something (signing out changes nothing of GoPay's)."""
        return [button for button in self.all("form[method=post] button")
                if button.get_attribute("class") != "link"]


@pytest.fixture(scope="module")
def server(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoPayServer]:
    env = gopay_env(new_database(postgres_server), tmp_path_factory.mktemp("var"),
                    GOPAY_FEES=TRANSFER_FEE)
    running = GoPayServer.create(env, tmp_path_factory.mktemp("logs") / "serve.log").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def dashboard(server: GoPayServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    browser_path, driver_path = chromium_and_driver()
    options = webdriver.ChromeOptions()
    options.binary_location = browser_path
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    browser.set_script_timeout(30)
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    yield Dashboard(browser, server.url, ARTIFACTS)
    browser.quit()


def with_second_factor(admin: Client) -> pyotp.TOTP:
    """Turn 2FA on for a signed-in staff member with last step's code (so now's is still fresh)."""
    secret = admin.post("/v1/auth/2fa/setup").json()["secret"]
    totp = pyotp.TOTP(secret)
    enabled = admin.post("/v1/auth/2fa/enable", {"otp": totp.at(time.time() - 30)})
    assert enabled.status_code == 200, enabled.text
    return totp


def held_for_review(admin: Client, sender: Client, recipient: Client) -> dict[str, Any]:
    """A transfer of 1,500 and one of 300, held: for a while one payment an hour is the limit."""
    rules = admin.get("/v1/admin/fraud-rules").json()
    tight = {**rules, "sender_velocity": {**rules["sender_velocity"], "max_count": 1}}
    assert admin.http.put("/v1/admin/fraud-rules", json=tight).status_code == 200
    answers = [sender.post("/v1/transfers", {"recipient": recipient.user["email"],
                                             "amount": amount, "currency": "USD"})
               for amount in (1_500, 300)]
    assert admin.http.put("/v1/admin/fraud-rules", json=rules).status_code == 200
    assert [a.status_code for a in answers] == [201, 202], [a.text for a in answers]
    return dict(answers[1].json())


def test_staff_run_gopay_from_the_dashboard(server: GoPayServer, dashboard: Dashboard) -> None:
    """Sign-in with 2FA, a held payment approved, figures equal to the API's, a chart, a freeze
    that the API enforces, CSRF refusals, a support ticket worked through, a dispute decided,
    and an auditor who sees everything and changes nothing."""
    with ThreadPoolExecutor(2) as pool:  # each is a `gopay staff create` process: side by side
        admin, support = pool.map(lambda role: staff(server.url, server.env, role),
                                  ("admin", "support"))
    admin_me = admin.get("/v1/me").json()
    admin_email = admin_me["email"]
    alice, bob = register(server.url, full_name="Alice Dashboard"), register(server.url)
    fund(admin, alice.user["wallet_id"], 10_000)
    held = held_for_review(admin, alice, bob)
    question = "Was my 3.00 USD sent <b>twice</b>?"
    complaint = alice.post("/v1/support/tickets", {
        "subject": "Transfer stuck", "body": question, "transaction_id": held["id"]})
    other = bob.post("/v1/support/tickets", {"subject": "Cards", "body": "How do I add one?"})
    assert (complaint.status_code, other.status_code) == (201, 201), (complaint.text, other.text)
    complaint_id, other_id = complaint.json()["id"], other.json()["id"]
    support_id = support.get("/v1/me").json()["id"]
    totp = with_second_factor(admin)
    assert bob.post("/v1/transfers", {"recipient": alice.user["email"], "amount": 10**7,
                                      "currency": "USD"}, key="far-too-much").status_code == 422

    # The sign-in form has a CSRF token of its own: a sign-in posted without it gets nowhere.
    auditor = staff(server.url, server.env, "auditor")
    auditor_email = auditor.get("/v1/me").json()["email"]
    for form in ({"email": auditor_email, "password": PASSWORD},
                 {"email": auditor_email, "password": PASSWORD, "csrf_token": ""}):
        forged = httpx.post(f"{server.url}/admin/login", data=form, cookies={
            "gopay_login_csrf": form.get("csrf_token", "")}, timeout=30)
        assert forged.status_code == 403, forged.text
        assert "gopay_staff" not in forged.cookies

    # A browser opening GoPay lands on the sign-in page; without the code it is asked for it.
    dashboard.open("/")
    assert dashboard.path() == "/admin/login"
    dashboard.screenshot("01-sign-in")
    dashboard.sign_in(admin_email, PASSWORD)
    assert "code from your authenticator" in dashboard.one("#problem").text
    dashboard.sign_in(admin_email, PASSWORD, totp.now())
    assert dashboard.path() == "/admin", dashboard.browser.page_source[:2000]
    assert dashboard.one("#role").text == "admin"
    cookies = {cookie["name"]: cookie for cookie in dashboard.browser.get_cookies()}
    session_cookie = cookies["gopay_staff"]
    assert (session_cookie["secure"], session_cookie["httpOnly"], session_cookie["sameSite"]) == (
        True, True, "Strict")

    # Without its access token (expired, say) the session goes on with its refresh token.
    refresh_token = cookies["gopay_staff_refresh"]["value"]
    dashboard.browser.delete_cookie("gopay_staff")
    dashboard.open("/admin")
    assert dashboard.path() == "/admin"
    renewed = {cookie["name"]: cookie["value"] for cookie in dashboard.browser.get_cookies()}
    assert renewed["gopay_staff_refresh"] != refresh_token  # used once, then replaced
    assert "gopay_staff" in renewed

    # The held payment waits in the review queue; approved there, it is carried out.
    assert dashboard.value("#open-reviews") == "1"
    dashboard.click("#open-reviews")
    assert dashboard.path() == "/admin/reviews"
    [review] = dashboard.all("#reviews tr[data-review-id]")
    assert "3.00 USD" in review.text
    dashboard.screenshot("02-review-queue")
    dashboard.click("#reviews button.approve")
    assert "approved" in dashboard.one("#notice").text
    assert dashboard.all("#reviews tr[data-review-id]") == []
    assert alice.get(f"/v1/transfers/{held['id']}").json()["status"] == "succeeded"

    # Alice disputes 2.00 USD of that transfer, then the 1.00 USD left; Bob answers the first.
    disputed = [alice.post("/v1/disputes", {"transaction_id": held["id"], "amount": amount,
                                            "reason": reason})
                for amount, reason in ((200, "Charged for <i>nothing</i>"), (100, "The rest"))]
    assert [d.status_code for d in disputed] == [201, 201], [d.text for d in disputed]
    dispute_id, other_dispute_id = (d.json()["id"] for d in disputed)
    evidence = "Goods delivered on the 1st & signed for"
    assert bob.post(f"/v1/disputes/{dispute_id}/evidence",
                    {"text": evidence}).status_code == 201

    # The overview shows what the analytics API says, for today and the last 30 days.
    dashboard.open("/admin")
    analytics = admin.get("/v1/admin/analytics").json()
    for period, figures in (("today", analytics["days"][-1]), ("month", analytics["totals"])):
        for name in ("payments", "new_users", "active_users", "failed"):
            assert int(dashboard.value(f'[data-figure="{period}.{name}"]')) == figures[name], name
        fees = dashboard.one(f'[data-figure="{period}.fees.USD"]')
        assert (int(fees.get_attribute("data-value")), fees.text) == (
            figures["fees"]["USD"], money_text(figures["fees"]["USD"], "USD"))
        volume = sum(t["volume"]["USD"] for t in figures["by_type"].values())
        shown = dashboard.one(f'[data-figure="{period}.volume.USD"]')
        assert (int(shown.get_attribute("data-value")), shown.text) == (
            volume, money_text(volume, "USD"))
        rate = figures["failed"] / (figures["payments"] + figures["failed"])
        assert float(dashboard.value(f'[data-figure="{period}.failure_rate"]')) == pytest.approx(
            rate, abs=1e-4)
    assert analytics["totals"]["by_type"]["transfer"] == {"count": 2, "volume": {"USD": 1_800}}
    assert analytics["totals"]["failed"] == 1
    assert analytics["totals"]["fees"] == {"USD": 2 * 25}
    assert float(dashboard.value("#projection-lag")) >= 0
    assert dashboard.value("#open-tickets") == "2"
    assert dashboard.value("#open-disputes") == "2"
    dashboard.screenshot("03-overview")

    # A chart opens on its own page: one bar a day, today's being today's volume.
    dashboard.click("#open-volume-by-day-USD")
    assert dashboard.path() == "/admin/charts/volume-by-day"
    bars = dashboard.all("#chart rect.bar")
    assert len(bars) == 30
    assert int(bars[-1].get_attribute("data-value")) == 10_000 + 1_800
    dashboard.screenshot("04-chart-volume-by-day")
    dashboard.open("/admin/charts/volume-by-type?currency=USD")
    by_type = {bar.get_attribute("data-label"): int(bar.get_attribute("data-value"))
               for bar in dashboard.all("#chart rect.bar")}
    assert by_type == {"adjustment": 10_000, "transfer": 1_800}
    dashboard.screenshot("05-chart-volume-by-type")

    # Find Alice and freeze her: the API then refuses her transfer.
    dashboard.click("nav a[href='/admin/users']")
    dashboard.one("#q").send_keys(alice.user["email"])
    dashboard.click("#search")
    row = f'tr[data-user-id="{alice.user["id"]}"]'
    assert len(dashboard.all("#users tbody tr[data-user-id]")) == 1
    assert dashboard.one(f"{row} .state").text == "active"
    dashboard.click(f"{row} button.freeze")
    assert "frozen" in dashboard.one("#notice").text
    assert dashboard.one(f"{row} .state").text == "frozen"
    dashboard.screenshot("06-users-frozen")
    refused = alice.post("/v1/transfers", {"recipient": bob.user["email"], "amount": 100,
                                           "currency": "USD"})
    assert (refused.status_code, refused.json()["code"]) == (423, "account_frozen")

    # A form without its CSRF token, or with a made-up one, changes nothing.
    freeze_bob = f"/admin/users/{bob.user['id']}/freeze"
    assert dashboard.post(freeze_bob, {}) == 403
    assert "CSRF token is missing or wrong" in dashboard.one("h1").text
    assert dashboard.post(freeze_bob, {"csrf_token": "0" * 64}) == 403
    assert admin.get("/v1/admin/users", params={"q": bob.user["email"]}).json()[
        "data"][0]["frozen"] is False

    dashboard.open("/admin/dead-letters")
    assert dashboard.path() == "/admin/dead-letters"
    dashboard.screenshot("07-dead-letters")

    # Alice's ticket waits in the open list; its page shows her transfer as it stands now.
    dashboard.click("nav a[href='/admin/tickets']")
    assert dashboard.one("#tab-open").get_attribute("class") == "active"
    assert {row.get_attribute("data-ticket-id") for row in dashboard.all(
        "#tickets tr[data-ticket-id]")} == {complaint_id, other_id}
    dashboard.screenshot("08-tickets-open")
    dashboard.click(f'tr[data-ticket-id="{complaint_id}"] a.open-ticket')
    assert dashboard.path() == f"/admin/tickets/{complaint_id}"
    assert dashboard.value("#transaction") == "succeeded"
    assert dashboard.one("#assignee").text == "nobody"
    assert [m.find_element(By.CSS_SELECTOR, ".body").text
            for m in dashboard.all("#messages li")] == [question]

    # Assigned to a support member (staff without the role are not offered), answered, closed.
    offered = {o.get_attribute("value") for o in dashboard.all("#assign-to option")}
    assert offered == {"", admin_me["id"], support_id}  # "": the prompt to choose, no auditor
    Select(dashboard.one("#assign-to")).select_by_value(support_id)
    dashboard.click("#assign")
    assert "assigned" in dashboard.one("#notice").text
    assert dashboard.value("#assignee") == support_id
    dashboard.one("#reply-body").send_keys("It was sent once; the other one was held.")
    dashboard.click("#reply")
    assert "reply is sent" in dashboard.one("#notice").text
    assert dashboard.one("#ticket-status").text == "pending"
    dashboard.screenshot("09-ticket-answered")
    seen = alice.get(f"/v1/support/tickets/{complaint_id}").json()
    assert (seen["status"], seen["assigned_to"]) == ("pending", support_id)
    assert {k: seen["messages"][-1][k] for k in ("author", "staff_id", "body")} == {
        "author": "staff", "staff_id": admin_me["id"],
        "body": "It was sent once; the other one was held."}
    dashboard.open("/admin/tickets?status=pending")
    assert [row.get_attribute("data-ticket-id") for row in dashboard.all(
        "#tickets tr[data-ticket-id]")] == [complaint_id]
    close = f"/admin/tickets/{complaint_id}/close"
    assert dashboard.post(close, {}) == 403
    assert alice.get(f"/v1/support/tickets/{complaint_id}").json()["status"] == "pending"
    # Bad input gets the API's clear refusal, not a crash.
    assert dashboard.post(f"/admin/tickets/{complaint_id}/reply",
                          {"csrf_token": dashboard.csrf_token(), "body": "  "}) == 422
    assert "Refused" in dashboard.one("h1").text
    dashboard.open("/admin/tickets/not-a-ticket")
    assert "no such ticket" in dashboard.one("h1").text
    dashboard.open(f"/admin/tickets/{complaint_id}")
    dashboard.click("#close")
    assert "closed" in dashboard.one("#notice").text
    assert dashboard.one("#ticket-status").text == "closed"
    assert dashboard.all("#ticket-forms") == []
    assert alice.get(f"/v1/support/tickets/{complaint_id}").json()["status"] == "closed"
    dashboard.click("#back-to-tickets")
    assert dashboard.one("#tab-closed").get_attribute("class") == "active"
    assert [row.get_attribute("data-ticket-id") for row in dashboard.all(
        "#tickets tr[data-ticket-id]")] == [complaint_id]

    # Both disputes wait in the open list; the first one's page shows the transfer, who paid
    # whom, what Bob's wallet holds for it (all of it: nothing from receivables), his evidence.
    dashboard.click("nav a[href='/admin/disputes']")
    assert dashboard.one("#tab-open").get_attribute("class") == "active"
    assert [row.get_attribute("data-dispute-id") for row in dashboard.all(
        "#disputes tr[data-dispute-id]")] == [other_dispute_id, dispute_id]  # newest first
    dashboard.screenshot("10-disputes-open")
    dashboard.click(f'tr[data-dispute-id="{dispute_id}"] a.open-dispute')
    assert dashboard.path() == f"/admin/disputes/{dispute_id}"
    shown = {name: dashboard.value(f"#{name}")
             for name in ("kind", "amount", "held", "receivable", "payment", "payer", "payee")}
    assert shown == {"kind": "payment", "amount": "200", "held": "200", "receivable": "0",
                     "payment": "succeeded", "payer": alice.user["wallet_id"],
                     "payee": bob.user["wallet_id"]}
    assert alice.user["email"] in dashboard.one("#payer").text
    assert dashboard.one("#reason").text == "Charged for <i>nothing</i>"
    assert [item.text for item in dashboard.all("#evidence li .body")] == [evidence]
    assert [e.get_attribute("data-event") for e in dashboard.all("#timeline li")] == [
        "Opened", "EvidenceAdded"]
    # Decided for Alice from the page (a forged form without the token changes nothing).
    resolve = f"/admin/disputes/{dispute_id}/resolve"
    assert dashboard.post(resolve, {"outcome": "merchant"}) == 403
    dashboard.open(f"/admin/disputes/{dispute_id}")
    before = alice.get("/v1/wallet").json()["balance"]
    dashboard.click("#decide-customer")
    assert "Decided for the customer" in dashboard.one("#notice").text
    assert dashboard.one("#dispute").get_attribute("data-status") == "won"
    assert admin_email in dashboard.one("#decided").text
    assert [e.get_attribute("data-event") for e in dashboard.all("#timeline li")] == [
        "Opened", "EvidenceAdded", "Decided"]
    assert dashboard.all("#dispute-forms") == []
    dashboard.screenshot("11-dispute-decided")
    won = admin.get("/v1/admin/disputes", params={"status": "won"}).json()["data"]
    assert [(d["id"], d["status"], d["outcome"]) for d in won] == [
        (dispute_id, "won", "customer")]
    assert alice.get("/v1/wallet").json()["balance"] == before + 200
    # Decided once: the API's refusal of a second decision shows on the page.
    assert dashboard.post(resolve, {"csrf_token": dashboard.csrf_token(),
                                    "outcome": "merchant"}) == 409
    assert "Refused" in dashboard.one("h1").text
    dashboard.open("/admin/disputes?status=won")
    assert [row.get_attribute("data-dispute-id") for row in dashboard.all(
        "#disputes tr[data-dispute-id]")] == [dispute_id]

    # Signing out ends the session: the cookie's token no longer opens the API either.
    dashboard.click("form.signout button")
    assert dashboard.path() == "/admin/login"
    assert Client(server.url, session_cookie["value"]).get("/v1/admin/analytics").status_code == 401

    # An auditor sees every page and no button that changes anything.
    dashboard.sign_in(auditor_email, PASSWORD)
    assert dashboard.one("#role").text == "auditor"
    # (the figures now count the money given back on Alice's dispute too)
    now = admin.get("/v1/admin/analytics").json()
    assert int(dashboard.value('[data-figure="month.payments"]')) == now["totals"]["payments"]
    assert dashboard.value("#open-tickets") == "1"
    assert dashboard.value("#open-disputes") == "1"
    dashboard.screenshot("12-auditor-overview")
    for link in ("/admin/users?q=" + alice.user["email"], "/admin/reviews", "/admin/dead-letters",
                 "/admin/reconciliation", "/admin/tickets", "/admin/disputes",
                 f"/admin/disputes/{other_dispute_id}", f"/admin/tickets/{other_id}"):
        dashboard.open(link)
        assert dashboard.path() == link.split("?")[0]
        assert dashboard.change_buttons() == [], link
    assert dashboard.one("#ticket-status").text == "open"
    assert [m.text for m in dashboard.all("#messages li .body")] == ["How do I add one?"]
    dashboard.screenshot("13-auditor-ticket")
    dashboard.open(f"/admin/disputes/{other_dispute_id}")
    assert dashboard.value("#amount") == "100"
    assert dashboard.one("#dispute").get_attribute("data-status") == "open"
    dashboard.screenshot("14-auditor-dispute")
    decide = dashboard.post(f"/admin/disputes/{other_dispute_id}/resolve",
                            {"csrf_token": dashboard.csrf_token(), "outcome": "customer"})
    assert decide == 403
    assert "your role does not allow this" in dashboard.one("h1").text
    assert [d["id"] for d in admin.get("/v1/admin/disputes", params={"status": "open"}).json()[
        "data"]] == [other_dispute_id]
    reply = dashboard.post(f"/admin/tickets/{other_id}/reply",
                           {"csrf_token": dashboard.csrf_token(), "body": "auditors cannot"})
    assert reply == 403
    assert "your role does not allow this" in dashboard.one("h1").text
    assert len(admin.get(f"/v1/support/tickets/{other_id}").json()["messages"]) == 1
    dashboard.open("/admin/reconciliation")
    dashboard.screenshot("15-auditor-reconciliation")
    dashboard.open("/admin/users?q=" + alice.user["email"])
    assert dashboard.one(f"{row} .state").text == "frozen"
    dashboard.screenshot("16-auditor-users")
    unfreeze = dashboard.post(f"/admin/users/{alice.user['id']}/unfreeze",
                              {"csrf_token": dashboard.csrf_token()})
    assert unfreeze == 403
    assert "your role does not allow this" in dashboard.one("h1").text
    assert admin.get("/v1/admin/users", params={"q": alice.user["email"]}).json()[
        "data"][0]["frozen"] is True
    assert sorted(path.name for path in ARTIFACTS.iterdir()) == [
        "01-sign-in.png", "02-review-queue.png", "03-overview.png",
        "04-chart-volume-by-day.png", "05-chart-volume-by-type.png", "06-users-frozen.png",
        "07-dead-letters.png", "08-tickets-open.png", "09-ticket-answered.png",
        "10-disputes-open.png", "11-dispute-decided.png", "12-auditor-overview.png",
        "13-auditor-ticket.png", "14-auditor-dispute.png", "15-auditor-reconciliation.png",
        "16-auditor-users.png"]
