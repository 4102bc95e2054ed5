"""The live dashboard in a real browser: sign in, watch charges arrive without a reload.

Headless Chromium from Debian's package (scripts/ensure-chromium), driven by
Playwright; `playwright install` is never run. The screenshot is left in
test-artifacts/dashboard.png for a human to look at.
"""

import asyncio
import json
import threading
import uuid

import pytest
from playwright.sync_api import expect, sync_playwright

from devtools.stack import REPO_ROOT
from tests.integration.stack import Device, connect_device, expect_refused, reading

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
UI_TIMEOUT_MS = 20_000


def make_member(stack, account: str) -> tuple[str, str]:
    username, password = f"viewer-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from billing.models import AccountMember\n"
        f"user = get_user_model().objects.create_user({username!r}, password={password!r})\n"
        f"AccountMember.objects.create(user=user, account_id={account!r})\n"
    )
    stack.manage("shell", "-c", code)
    stack.secrets.add(password)
    return username, password


class DeviceThread(threading.Thread):
    """A device streaming readings from its own event loop, connected until `release`."""

    def __init__(self, stack, token: str, readings: list[dict]) -> None:
        super().__init__(daemon=True)
        self.stack, self.token, self.readings = stack, token, readings
        self.delivered = threading.Event()
        self.release = threading.Event()
        self.outcome: dict | BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._stream())
        except BaseException as error:
            self.outcome = error
            self.delivered.set()

    async def _stream(self) -> None:
        async with connect_device(self.stack, self.token) as ws:
            device = Device(ws)
            for message in self.readings:
                # One at a time, so the page sees the total count up in steps.
                self.outcome = await device.deliver([message])
                await asyncio.sleep(0.3)
            self.delivered.set()
            while not self.release.is_set():
                await asyncio.sleep(0.1)


def sign_in(page, stack, account: str, username: str, password: str) -> None:
    """The dashboard asks for a sign-in, then comes back to itself, live."""
    page.goto(f"{stack.http_base}/accounts/{account}/")
    assert "/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/accounts/{account}/", timeout=UI_TIMEOUT_MS)
    expect(page.locator("#connection")).to_have_text("Live", timeout=UI_TIMEOUT_MS)


def test_dashboard_updates_live_after_signing_in(stack):
    provisioned = stack.provision(meters=2, unit_price="0.25")
    meter = provisioned.meter
    username, password = make_member(stack, provisioned.account)
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            sign_in(page, stack, provisioned.account, username, password)
            total = page.locator("#total")
            expect(total).to_have_attribute("data-value", "0.000000")
            row = page.locator(f'tr[data-meter="{meter}"]')
            expect(row.locator("td.status")).to_have_text("Offline")
            page.evaluate("window.__not_reloaded = true")

            device = DeviceThread(
                stack, provisioned.token, [reading(f"b-{n}", "2") for n in range(3)]
            )
            device.start()
            try:
                assert device.delivered.wait(60), "the device got no acks"
                assert not isinstance(device.outcome, BaseException), device.outcome
                # 3 x 2 kWh at 0.25: the total, the meter's row and its status, live.
                expect(total).to_have_attribute("data-value", "1.500000", timeout=UI_TIMEOUT_MS)
                expect(total).to_contain_text("1.50")
                expect(row.locator("td.usage")).to_have_attribute("data-value", "6")
                expect(row.locator("td.amount")).to_have_attribute("data-value", "1.500000")
                expect(row.locator("td.amount")).to_contain_text("€")
                expect(row.locator("td.status")).to_have_text("Online")
                expect(row.locator("td.last")).not_to_have_text("\u2013")
                assert page.evaluate("window.__not_reloaded === true"), "the page reloaded"
                page.wait_for_timeout(700)  # the total's count-up animation
                page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
                page.set_viewport_size({"width": 375, "height": 812})
                page.wait_for_timeout(300)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 375, f"the page scrolls sideways at 375 px ({width} px)"
                page.screenshot(path=str(ARTIFACTS / "dashboard-375.png"), full_page=True)
            finally:
                device.release.set()
                device.join(30)
            expect(row.locator("td.status")).to_have_text("Offline", timeout=UI_TIMEOUT_MS)
            assert errors == [], errors
            session_cookie = next(
                c["value"] for c in page.context.cookies() if c["name"] == "sessionid"
            )
        finally:
            browser.close()

    asyncio.run(_session_socket_checks(stack, provisioned.account, session_cookie))


async def _session_socket_checks(stack, account: str, session_cookie: str) -> None:
    """The session cookie opens the socket from our Origin, and not from another site's."""
    from websockets.asyncio.client import connect

    url = f"{stack.ws_base}/ws/accounts/{account}/"
    cookie = {"Cookie": f"sessionid={session_cookie}"}
    async with connect(
        url, additional_headers=cookie, origin=stack.http_base, open_timeout=10
    ) as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (snapshot["type"], snapshot["total"]) == ("snapshot", "1.500000")
    foreign = connect(url, additional_headers=cookie, origin="http://evil.example", open_timeout=10)
    await expect_refused(foreign, 4403)


def test_a_prepaid_dashboard_counts_the_balance_down_and_shows_alerts(stack):
    provisioned = stack.provision(meters=1, unit_price="0.25")
    account = provisioned.account
    stack.api_ok(
        "POST", f"/api/v1/accounts/{account}/credits/", {"amount": "1", "idempotency_key": "k"}, 201
    )
    stack.api_ok("PATCH", f"/api/v1/accounts/{account}/", {"cutoff_at": "0"})
    alert = {"kind": "balance_below", "threshold": "0.5"}
    stack.api_ok("POST", f"/api/v1/accounts/{account}/alerts/", alert, 201)
    username, password = make_member(stack, account)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(page, stack, account, username, password)
            balance = page.locator("#balance")
            expect(balance).to_have_attribute("data-value", "1.000000")
            expect(page.locator("#alerts li")).to_have_count(0)
            # 3 x 2 kWh at 0.25: the balance 0.50 (the alert), 0.00 (cut off), -0.50.
            device = DeviceThread(
                stack, provisioned.token, [reading(f"p-{n}", "2") for n in range(3)]
            )
            device.start()
            try:
                assert device.delivered.wait(60), "the device got no acks"
                expect(balance).to_have_attribute("data-value", "-0.500000", timeout=UI_TIMEOUT_MS)
                expect(page.locator("#alerts li")).to_have_count(1, timeout=UI_TIMEOUT_MS)
                expect(page.locator("#alerts li")).to_contain_text("Balance fell to")
                expect(page.locator("#balance-card")).to_have_class("card balance cut-off")
                page.wait_for_timeout(300)
                page.screenshot(path=str(ARTIFACTS / "dashboard-prepaid.png"), full_page=True)
            finally:
                device.release.set()
                device.join(30)
            assert errors == [], errors
        finally:
            browser.close()
