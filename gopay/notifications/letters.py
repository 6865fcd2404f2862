"""What each notice says: its title and body, and the e-mail (text and HTML) that carries it.

Titles and bodies are rendered when a notice is read or sent, from its type and the data the
event gave it, so every channel says the same thing in the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, Template, select_autoescape

from gopay.aggregates.money import CURRENCIES, Money

# Currencies whose amounts have no minor unit; every other one has two decimals here.
WHOLE_UNIT_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF"})

# Title and body of each type, as Jinja2 text over the notice's data.
WORDING: Mapping[str, tuple[str, str]] = {
    "transfer.received": ("You received {{ money(amount, currency) }}",
                          ("{{ counterparty or 'Someone' }} sent you {{ money(amount, currency) }}"
                          "{% if reference %}: {{ reference }}{% endif %}.")),
    "topup.succeeded": ("Top-up of {{ money(amount, currency) }} received",
                        "{{ money(amount, currency) }} was added to your wallet."),
    "topup.failed": ("Top-up of {{ money(amount, currency) }} failed",
                     ("Your top-up of {{ money(amount, currency) }} did not go through"
                     "{% if reason %} ({{ reason | replace('_', ' ') }}){% endif %}. "
                     "Nothing was taken from your wallet.")),
    "payout.paid": ("Payout of {{ money(amount, currency) }} sent",
                    "{{ money(amount, currency) }} is on its way to your account."),
    "payout.failed": ("Payout of {{ money(amount, currency) }} failed",
                      ("Your payout of {{ money(amount, currency) }} could not be made"
                      "{% if reason %} ({{ reason | replace('_', ' ') }}){% endif %}; "
                      "the money is back in your wallet.")),
    "payment_request.received": ("{{ money(amount, currency) }} requested",
                                 ("You were asked to pay {{ money(amount, currency) }}"
                                 "{% if note %}: {{ note }}{% endif %}.")),
    "login.new_device": ("New sign-in on another device",
                         ("Your account was signed in to on a device it had not seen before"
                         "{% if address %} from {{ address }}{% endif %}. If this was not you, "
                         "lock the device and reset your password now.")),
    "kyc.decided": ("Identity check {{ 'approved' if decision == 'approve' else 'not approved' }}",
                    ("{% if decision == 'approve' %}Your identity is verified: your higher limits "
                    "apply now.{% else %}We could not verify your identity"
                    "{% if reason %} ({{ reason }}){% endif %}.{% endif %}")),
    "review.decided": ("Payment {{ 'approved' if decision == 'approve' else 'not carried out' }}",
                       ("{% if decision == 'approve' %}Your payment of {{ money(amount, currency) }} "
                       "passed review and went through.{% else %}Your payment of "
                       "{{ money(amount, currency) }} was stopped after review and the money was "
                       "released.{% endif %}")),
    "support.reply": ("Support replied to your ticket",
                      "{{ excerpt }}{% if truncated %}…{% endif %} Reply in the app to continue."),
    "security.password_changed": ("Your password was changed",
                                  ("Your GoPay password was changed and every session was signed "
                                  "out. If this was not you, contact support at once.")),
    "security.two_factor_changed": ("Two-factor authentication turned {{ 'on' if enabled else 'off' }}",
                                    ("Two-factor authentication is now {{ 'on' if enabled else 'off' }} "
                                    "for your account. If this was not you, contact support at once.")),
}


def money(amount: int | None, currency: str | None) -> str:
    if amount is None or currency is None:
        return "money"
    if currency in CURRENCIES:  # with its own minor digits: 0, 2 or 3
        return f"{Money(amount, currency).in_major_units(grouped=True)} {currency}"
    if currency in WHOLE_UNIT_CURRENCIES:
        return f"{amount:,} {currency}"
    return f"{amount / 100:,.2f} {currency}"


@cache
def _environment() -> Environment:
    environment = Environment(loader=PackageLoader("gopay.notifications", "templates"),
                              autoescape=select_autoescape(["html"]), keep_trailing_newline=True)
    environment.globals["money"] = money
    return environment


@cache
def _wording(kind: str) -> tuple[Template, Template]:
    # Plain text: the HTML template escapes it when it goes into an e-mail.
    text = Environment(autoescape=False)  # noqa: S701 - plain text; notice.html escapes it
    text.globals["money"] = money
    title, body = WORDING[kind]
    return text.from_string(title), text.from_string(body)


@dataclass(frozen=True)
class Letter:
    """A notice as an e-mail: to whom, its subject, and its two parts."""

    recipient: str
    subject: str
    text: str
    html: str


def title_and_body(kind: str, data: Mapping[str, Any]) -> tuple[str, str]:
    """What the notice says, in every channel."""
    if kind not in WORDING:
        return kind, ""
    title, body = _wording(kind)
    return title.render(data), body.render(data)


def letter(recipient: str, full_name: str, kind: str, data: Mapping[str, Any]) -> Letter:
    """The e-mail of a notice, from the `notice.txt` and `notice.html` templates."""
    title, body = title_and_body(kind, data)
    values = {"full_name": full_name, "title": title, "body": body, "type": kind}
    environment = _environment()
    return Letter(recipient, f"GoPay: {title}",
                  environment.get_template("notice.txt").render(values),
                  environment.get_template("notice.html").render(values))

