"""The demo bank's pages: server-rendered HTML with inline CSS and scripts, nothing from a CDN.

Every page carries the tracker's inline stub (docs/browser-tracking.md) and logs a page visit;
the tracker drops it until the visitor has agreed to tracking in the consent banner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from waypost.demo.alerts import PLAYBOOK_NAME, THRESHOLD, Alert
from waypost.demo.data import CONSENT, LOAN_TYPE

WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class Visitor:
    """A logged-in customer of the demo bank."""

    email: str
    first: str
    last: str


@dataclass(frozen=True)
class Frame:
    """What every page shows around its content."""

    tracker_src: str
    publishable_key: str
    consent_short: str
    consent_full: str
    cookie_level: str | None
    visitor: Visitor | None


def js(value: object) -> str:
    """A JSON literal that is safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: #1d2733; background: #f4f6f9; }
header { background: #0b3d91; color: #fff; }
header .bar, main, footer { max-width: 56rem; margin: 0 auto; padding: 0 1.25rem; }
header .bar { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.5rem;
        min-height: 4rem; padding-top: .5rem; padding-bottom: .5rem; }
header a { color: #fff; text-decoration: none; }
header .brand { font-weight: 700; font-size: 1.25rem; margin-right: auto; }
main { padding-top: 2rem; padding-bottom: 8rem; }
h1 { font-size: 2rem; margin: 0 0 1rem; }
.card { background: #fff; border-radius: .5rem; padding: 1.5rem; margin-bottom: 1.5rem;
        box-shadow: 0 1px 3px rgba(0, 0, 0, .12); }
.hero { background: linear-gradient(120deg, #0b3d91, #1f6fd1); color: #fff; }
.button, button { display: inline-block; border: 0; border-radius: .375rem; padding: .6rem 1.2rem;
        font: inherit; font-weight: 600; cursor: pointer; background: #f5a623; color: #1d2733;
        text-decoration: none; }
button.secondary { background: #dfe4ea; }
label { display: block; margin: .75rem 0 .25rem; font-weight: 600; }
input { font: inherit; padding: .5rem; width: 100%; max-width: 20rem; border: 1px solid #b8c2cc;
        border-radius: .25rem; }
.result { font-size: 1.25rem; font-weight: 700; margin-top: 1rem; }
.note { color: #5b6776; font-size: .875rem; }
footer { color: #5b6776; font-size: .875rem; padding-bottom: 2rem; }
footer button { background: none; padding: 0; color: #0b3d91; text-decoration: underline;
        font-weight: 400; }
#consent-banner { position: fixed; left: 0; right: 0; bottom: 0; background: #fff;
        border-top: 3px solid #0b3d91; box-shadow: 0 -2px 8px rgba(0, 0, 0, .15); }
#consent-banner .inner { max-width: 56rem; margin: 0 auto; padding: 1rem 1.25rem; }
#consent-banner .actions { display: flex; flex-wrap: wrap; gap: .75rem; margin-top: .75rem; }
body { overflow-wrap: break-word; }
/* A phone: the brand on a line of its own, the links below it, and tighter spacing. */
@media (max-width: 600px) {
  header .bar { gap: .25rem 1rem; }
  header .brand { flex-basis: 100%; }
  h1 { font-size: 1.6rem; }
  main { padding-top: 1.25rem; }
  .card { padding: 1rem; }
}
""".strip()

# The snippet of docs/browser-tracking.md, as a site would paste it.
STUB = """(function (w, d, name, src, key) {
    w.WaypostObject = name;
    w[name] = w[name] || function () { (w[name].q = w[name].q || []).push(arguments); };
    var s = d.createElement("script");
    s.async = true; s.src = src; s.setAttribute("data-key", key);
    d.head.appendChild(s);
  })(window, document, "wp", %s, %s);"""

# Accepting sets the cookie level first, so that the tracker may keep the contact that the
# consent creates, then logs the visit of the page the visitor accepted on. Declining lowers the
# level first, which deletes the contact cookie at once; the tracker still holds the contact for
# this page, to revoke the consent with.
BANNER_SCRIPT = """
var banner = document.getElementById("consent-banner");
document.getElementById("consent-accept").addEventListener("click", function () {
  wp("cookielevel", "visitor");
  wp("consent", {consent: %(consent)s, agree: true});
  wp("pagevisit");
  banner.hidden = true;
});
document.getElementById("consent-decline").addEventListener("click", function () {
  wp("cookielevel", "essential");
  wp("consent", {consent: %(consent)s, agree: false});
  banner.hidden = true;
});
document.getElementById("privacy-settings").addEventListener("click", function () {
  banner.hidden = false;
});
wp("pagevisit");
"""


def page(frame: Frame, title: str, content: str, script: str = "") -> str:
    """A whole page: header, ``content``, the consent banner, and the page's ``script``."""
    if frame.visitor is None:
        account = '<a href="/login">Log in</a>'
    else:
        account = (
            f'<a href="/account">{escape(frame.visitor.first or frame.visitor.email)}</a>'
            '<form method="post" action="/logout" style="margin:0">'
            '<button class="secondary" type="submit">Log out</button></form>'
        )
    agreed = frame.cookie_level in ("visitor", "all")
    state = "You allow tracking now." if agreed else "You do not allow tracking now."
    stub = STUB % (js(frame.tracker_src), js(frame.publishable_key))
    banner_script = BANNER_SCRIPT % {"consent": js(CONSENT)}
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{escape(title)} · Waypost Bank</title>
<style>
{CSS}
</style>
<script>
  {stub}
</script>
</head>
<body>
<header><div class="bar">
  <a class="brand" href="/">Waypost Bank</a>
  <a href="/">Home</a>
  <a href="/loans">Loans</a>
  <a href="/offers">Offers</a>
  <a href="/alerts">Alerts</a>
  {account}
</div></header>
<main>
{content}
</main>
<footer>
  A demo of Waypost's browser tracking: open the Waypost admin API to see what it logged.
  <button id="privacy-settings" type="button">Privacy settings</button>
</footer>
<div id="consent-banner" role="dialog" aria-label="Tracking consent"
     {"hidden" if frame.cookie_level is not None else ""}>
  <div class="inner">
    <strong>Your privacy</strong>
    <p>{frame.consent_short}</p>
    <details><summary>More</summary>{frame.consent_full}</details>
    <p class="note">{state}</p>
    <div class="actions">
      <button id="consent-accept" type="button">Accept tracking</button>
      <button id="consent-decline" class="secondary" type="button">Essential cookies only</button>
    </div>
  </div>
</div>
<script>
{banner_script}
{script}
</script>
</body>
</html>
"""


def home(frame: Frame) -> str:
    content = """
<section class="card hero">
  <h1>Your home, sooner.</h1>
  <p>Fixed-rate loans from 3.9% a year, decided within a day.</p>
  <a id="btnCTA" class="button" href="/loans#offers">See our special offers!</a>
</section>
<section class="card">
  <h2>Plan your loan</h2>
  <p>Our <a href="/loans">loan calculator</a> shows your monthly payment in a second.</p>
</section>
"""
    # The link navigates at once: the tracker's keepalive fetch (or beacon) outlives the page.
    script = """
document.getElementById("btnCTA").addEventListener("click", function () {
  wp("click", {value: "btnCTA"});
});
"""
    return page(frame, "Home", content, script)


# Ortto's form of a custom activity: the amount is the type's primary decimal field, sent as a
# string so that no digit is lost.
LOAN_SCRIPT = """
document.getElementById("calculator").addEventListener("submit", function (event) {
  event.preventDefault();
  var amount = Number(document.getElementById("amount").value);
  var months = Number(document.getElementById("years").value) * 12;
  var rate = Number(document.getElementById("rate").value) / 100 / 12;
  var monthly = rate ? amount * rate / (1 - Math.pow(1 + rate, -months)) : amount / months;
  document.getElementById("result").textContent = "Monthly payment: $" + monthly.toFixed(2);
  wp("activity", {activity_id: %(type)s, attributes: {"dec:cm:amount": String(amount)}});
});
"""


def loans(frame: Frame) -> str:
    content = """
<h1>Loan calculator</h1>
<form id="calculator" class="card">
  <label for="amount">Loan amount (USD)</label>
  <input id="amount" name="amount" type="number" min="1000" step="500" value="50000" required>
  <label for="years">Years</label>
  <input id="years" name="years" type="number" min="1" max="40" value="20" required>
  <label for="rate">Yearly interest rate (%)</label>
  <input id="rate" name="rate" type="number" min="0" step="0.1" value="3.9" required>
  <p><button id="calculate" type="submit">Calculate</button></p>
  <div id="result" class="result" aria-live="polite"></div>
</form>
<section id="offers" class="card">
  <h2>Special offers</h2>
  <p>First-home loans at 3.9% fixed for ten years, with no arrangement fee.</p>
</section>
"""
    script = LOAN_SCRIPT % {"type": js(LOAN_TYPE)}
    return page(frame, "Loans", content, script)


def offers(frame: Frame, member: bool) -> str:
    """The offers page: a personal loan offer for members of the "Used the loan calculator"
    group, an invitation to try the calculator for everyone else."""
    if member:
        offer = """
<section id="personal-offer" class="card hero">
  <h2>A personal rate for your loan</h2>
  <p>You used our loan calculator recently, so we have set aside a personal rate for your loan:
  <strong>3.4% fixed</strong> for ten years, half a point below our advertised rate, and no
  arrangement fee.</p>
  <a id="offer-cta" class="button" href="/login">Claim your personal rate</a>
</section>
"""
    else:
        offer = """
<section id="generic-offer" class="card">
  <h2>First-home loans from 3.9%</h2>
  <p>Fixed for ten years, with no arrangement fee. Want a rate of your own? Try our
  <a href="/loans">loan calculator</a>, then come back: we will have a personal offer for
  you.</p>
  <a id="offer-cta" class="button" href="/loans">Try the loan calculator</a>
</section>
"""
    content = f"""
<h1>Offers</h1>
{offer}
<p class="note">This page is personalized on the server: the bank's backend asks Waypost whether
you are in the contact group <em>Used the loan calculator</em> (a loan calculation in the last
30 days). Waypost updates the group within a second of your calculation. Without tracking
consent, everyone sees the same page.</p>
"""
    script = """
document.getElementById("offer-cta").addEventListener("click", function () {
  wp("click", {value: this.closest("section").id});
});
"""
    return page(frame, "Offers", content, script)


def login(frame: Frame, error: str = "") -> str:
    problem = f'<p class="note" role="alert">{escape(error)}</p>' if error else ""
    content = f"""
<h1>Log in</h1>
<form class="card" method="post" action="/login">
  {problem}
  <label for="email">Email</label>
  <input id="email" name="email" type="email" required>
  <label for="first">First name</label>
  <input id="first" name="first">
  <label for="last">Last name</label>
  <input id="last" name="last">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required>
  <p><button id="login" type="submit">Log in</button></p>
  <p class="note">This is a demo: any email and password log you in.</p>
</form>
"""
    return page(frame, "Log in", content)


def account(frame: Frame, visitor: Visitor, identity_hash: str) -> str:
    content = f"""
<h1>Welcome, {escape(visitor.first or visitor.email)}</h1>
<section class="card">
  <p>Current account: <strong>$12,480.22</strong></p>
  <p class="note">Signed in as {escape(visitor.email)}.</p>
</section>
"""
    # The hash comes from this site's backend, which knows who logged in: with it, Waypost may
    # join this browser's contact to the contact that already has the email.
    identity = {
        "email": visitor.email,
        "first": visitor.first or None,
        "last": visitor.last or None,
        "hash": identity_hash,
    }
    return page(frame, "Your account", content, f'wp("identify", {js(identity)});')


def alerts(frame: Frame, received: list[Alert], enabled: bool) -> str:
    """The advisers' page: the loan alerts the bank's backend received from Waypost."""
    threshold = f"{int(THRESHOLD):,}"
    if not enabled:
        intro = (
            "<p>Loan alerts are off: this Waypost may not call the demo's address on this "
            "machine. Start it with <code>waypost serve --demo</code>, or set "
            "<code>WAYPOST_WEBHOOK_ALLOW_PRIVATE=1</code> for <code>waypost serve</code>.</p>"
        )
    else:
        intro = (
            f'<p>When a visitor\'s <a href="/loans">loan calculation</a> reaches '
            f"${threshold}, Waypost's playbook <em>{escape(PLAYBOOK_NAME)}</em> calls this "
            "bank's backend with a signed webhook; the backend verifies the signature and "
            "lists the alert here. Reload to see new ones.</p>"
        )
    if received:
        rows = "".join(
            f"<tr><td>{escape(a.received_at.strftime('%H:%M:%S'))}</td>"
            f"<td>{escape(a.amount or '')}</td><td>{escape(a.email or 'not known')}</td>"
            f"<td><code>{escape(a.contact)}</code></td></tr>"
            for a in received
        )
        table = (
            '<table id="alerts"><thead><tr><th>Received (UTC)</th><th>Amount</th>'
            f"<th>Email</th><th>Contact</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        table = '<p id="alerts">No alert yet.</p>'
    content = f'<h1>Loan alerts</h1>\n<section class="card">{intro}{table}</section>'
    return page(frame, "Loan alerts", content)
