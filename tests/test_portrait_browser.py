"""The portrait page in a real browser: Debian's chromium, headless, phone-sized, driven by
selenium through Debian's chromedriver, against the real app listening on a loopback port.

Checks what only a browser can: the page renders (heading, the chart's SVG laid out and
visible), the console stays free of errors (a missing favicon, a blocked resource or a policy
violation would show there), and a screenshot is kept in test-artifacts/ for people to look at.

Chromium is a separate process that pytest-socket cannot police, so it is started with every
background service off and a resolver that knows no host but loopback.
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.app import LINKS, create_app
from bot.simulator.server import TencentSimulator
from profile_store.db import Database
from tests import callback_kit as kit
from tests.portrait_kit import page_shop, today
from tests.tag_kit import person_of

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PHONE_SIZE = (390, 844)  # CSS pixels of a common phone
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    f"--window-size={PHONE_SIZE[0]},{PHONE_SIZE[1]}",
    # Nothing in the background may reach the internet (updates, metrics, sync, safe browsing …).
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--metrics-recording-only",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--disable-features=OptimizationHints,MediaRouter,Translate",
    # And should something try anyway, no name resolves but loopback.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    # On CI (scripts/test installs them) a missing browser is a failure, not a skip.
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()) and os.environ.get("CI") != "true",
        reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
    ),
]


@dataclass
class Seen:
    title: str
    heading: str
    chart_visible: bool
    chart_size: dict[str, Any]
    bars: int
    widths: list[int]  # the viewport's, and the page's (wider: sideways scrolling)
    console: list[dict[str, Any]]
    screenshot: Path


def _browse(url: str, screenshot: Path) -> Seen:
    """Blocking selenium calls: run in a thread, so the app keeps serving on the event loop."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    # A phone, not a narrow desktop window: headless chromium keeps windows at least 500 px wide,
    # and only mobile emulation honours the page's viewport meta as a phone's browser does.
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": PHONE_SIZE[0], "height": PHONE_SIZE[1], "pixelRatio": 2}}
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would go to the network) is never asked.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        chart = WebDriverWait(driver, 10).until(
            expected_conditions.visibility_of_element_located((By.ID, "category-chart"))
        )
        seen = Seen(
            title=driver.title,
            heading=driver.find_element(By.TAG_NAME, "h1").text,
            chart_visible=chart.is_displayed(),
            chart_size=dict(chart.size),
            bars=len(chart.find_elements(By.CSS_SELECTOR, "g.bar rect")),
            widths=driver.execute_script(
                "return [window.innerWidth, document.documentElement.scrollWidth]"
            ),
            console=list(driver.get_log("browser")),
            screenshot=screenshot,
        )
        # The whole page, not only the first screen: the chart and timeline are further down.
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        content = metrics["cssContentSize"]
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": content["width"], "height": content["height"], "scale": 1},
            },
        )
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        return seen
    finally:
        driver.quit()


async def test_portrait_page_renders_in_headless_chromium_without_console_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'browser.db'}"
    db = Database(url)
    runner: web.AppRunner | None = None
    try:
        await page_shop(today()).load(db, tmp_path / "shop")
        person = await person_of(db, "member_id:M1")
        async with TencentSimulator() as sim:
            settings = kit.make_settings(
                url, corp_id=sim.corp_id, secret=sim.corp_secret, agent_id=sim.agent_id, api_base=sim.base_url
            )
            app = create_app(settings, db=db, sweep_interval=3600)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            token, _ = app[LINKS].issue(person, "G001")
            seen = await asyncio.to_thread(
                _browse, f"http://127.0.0.1:{port}/p/{token}", ARTIFACTS / "portrait_page.png"
            )
            await runner.cleanup()
            runner = None
    finally:
        if runner is not None:
            await runner.cleanup()
        await db.dispose()

    assert "顾客画像" in seen.title and "欧***" in seen.title
    assert seen.heading.startswith("顾客画像")
    assert seen.chart_visible and seen.chart_size["width"] > 0 and seen.chart_size["height"] > 0
    assert seen.widths[0] == PHONE_SIZE[0] and seen.widths[1] <= seen.widths[0]  # no sideways scrolling
    assert seen.chart_size["width"] <= PHONE_SIZE[0]
    assert seen.bars == 4
    assert [entry for entry in seen.console if entry.get("level") == "SEVERE"] == []
    png = seen.screenshot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
