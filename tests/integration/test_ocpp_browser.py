"""The dashboard page in a real browser while a charge point charges: the session appears,
its amount so far grows with each MeterValues, and it shows completed, without a reload."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from ocpp.v16 import call
from playwright.sync_api import expect, sync_playwright

from clients.charge_point import charge_point, register, timestamp
from tests.integration.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    UI_TIMEOUT_MS,
    DeviceThread,
    make_member,
    sign_in,
)

pytestmark = pytest.mark.integration


class Charger(DeviceThread):
    """A charge point in a loop of its own (test_browser's thread, charging instead of
    streaming): a session of 2 then 5 kWh, `delivered` once charged, stopped on `release`."""

    def __init__(self, stack, cp_id: str, password: str) -> None:
        super().__init__(stack, password, readings=[])
        self.cp_id = cp_id

    async def _stream(self) -> None:
        t0 = datetime.now(UTC) - timedelta(minutes=5)
        async with charge_point(self.stack.http_base, self.cp_id, self.token) as cp:
            start = call.StartTransaction(1, "04A2B3C4", 10_000, timestamp(t0))
            tid = (await cp.call(start)).transaction_id
            await cp.call(call.StatusNotification(1, "NoError", "Charging"))
            for minutes, wh in ((1, 12_000), (2, 15_000)):
                await asyncio.sleep(1)
                await cp.call(
                    call.MeterValues(1, [register(wh, t0 + timedelta(minutes=minutes))], tid)
                )
            self.delivered.set()
            while not self.release.is_set():
                await asyncio.sleep(0.1)
            await cp.call(call.StopTransaction(15_000, timestamp(t0 + timedelta(minutes=3)), tid))


def test_a_charging_session_counts_up_on_the_dashboard(stack):
    account = stack.create_account()
    tariff = stack.create_tariff(unit_price="0.40")
    cp_id = f"CP-{uuid.uuid4().hex[:8]}"
    body = {"account": account, "tariff": tariff, "name": "Garage", "kind": "ocpp"}
    meter = stack.api_ok("POST", "/api/v1/meters/", {**body, "charge_point_id": cp_id}, 201)
    stack.api_ok("POST", f"/api/v1/accounts/{account}/id-tags/", {"id_tag": "04A2B3C4"}, 201)
    username, password = make_member(stack, account)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(page, stack, account, username, password)
            expect(page.locator("#charging-card")).to_be_hidden()
            charger = Charger(stack, cp_id, meter["token"])
            charger.start()
            try:
                assert charger.delivered.wait(60) and charger.outcome is None, charger.outcome
                amount = page.locator("#charging tbody tr td.num").nth(1)
                # 5 kWh from meterStart at 0.40, added up from the charge events.
                expect(amount).to_have_attribute("data-value", "2.000000", timeout=UI_TIMEOUT_MS)
                expect(page.locator("#charging tbody tr td").first).to_have_text("1 · Charging")
                page.screenshot(path=str(ARTIFACTS / "dashboard-charging.png"), full_page=True)
            finally:
                charger.release.set()
                charger.join(30)
            expect(amount).to_contain_text("(completed)", timeout=UI_TIMEOUT_MS)
            assert errors == [], errors
        finally:
            browser.close()
