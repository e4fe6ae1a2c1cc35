"""The dashboard page in a real browser.

Debian's Chromium, headless, driven through chromedriver by Selenium (scripts/test installs
`chromium` and `chromium-driver` when missing; nothing is downloaded by the driver). A writer
and a reader process of the real binary run over a real redis-server. The page must show a
tick for a symbol it has never seen, pushed to the writer's /ingest, within one second and
without a reload (it arrives over /api/v1/stream); with the writer stopped, the stale banner
must appear. Screenshots are kept as test artifacts in target/artifacts/."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import repo

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = repo.ROOT / "target" / "artifacts"
# Processes of our own start in well under this; it bounds a broken start, it is no measure.
START_PATIENCE = 60
# What the issue asks of the page: a new tick shown within one second, no reload.
SHOWN_WITHIN = 1.0
# The reader's staleness budget in this test, and its patience for the banner: the writer's
# silence is noticed after three missed heartbeats (1 s each), the budget after 3 s.
STALENESS_BUDGET = "3s"
BANNER_PATIENCE = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(what: str, probe, patience: float = START_PATIENCE, process: subprocess.Popen | None = None):
    """Polls `probe` until it returns a true value; separate processes leave nothing to await."""
    deadline = time.monotonic() + patience
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited: {process.stderr.read().decode()[-2000:]}")
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def http(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def ticks(*rows: tuple[str, float, int, datetime]) -> bytes:
    lines = [json.dumps({"symbol": s, "price": p, "volume": v, "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")})
             for s, p, v, ts in rows]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Bridge:
    writer: subprocess.Popen
    reader: subprocess.Popen
    ingest: str
    url: str


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def bridge() -> Iterator[Bridge]:
    """redis-server, a writer fed only by /ingest, and a reader, on free loopback ports."""
    binary = repo.build_dataplane()
    data = tempfile.mkdtemp(prefix="cb-dashboard-redis-")
    redis_port, ingest_port, reader_port = free_port(), free_port(), free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes = [redis]
    try:
        until("redis-server", lambda: connectable(redis_port), process=redis)
        tiers = ["--redis", f"redis://127.0.0.1:{redis_port}"]
        writer = start([str(binary), "writer", *tiers, "--source", "none",
                        "--ingest-listen", f"127.0.0.1:{ingest_port}", "--publish-interval", "100ms"])
        processes.append(writer)
        reader = start([str(binary), "reader", *tiers, "--listen", f"127.0.0.1:{reader_port}",
                        "--staleness-budget", STALENESS_BUDGET])
        processes.append(reader)
        bridge = Bridge(writer, reader, f"http://127.0.0.1:{ingest_port}/ingest", f"http://127.0.0.1:{reader_port}")
        until("the writer's ingest", lambda: http(bridge.ingest.replace("/ingest", "/healthz"))[0] == 200,
              process=writer)
        until("the reader ready", lambda: http(f"{bridge.url}/readyz")[0] == 200, process=reader)
        yield bridge
    finally:
        for process in reversed(processes):
            stop(process)
        shutil.rmtree(data, ignore_errors=True)


def connectable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert CHROMIUM.is_file() and CHROMEDRIVER.is_file(), \
        "Debian's chromium and chromium-driver are needed (scripts/test installs them)"
    profile = tempfile.mkdtemp(prefix="cb-dashboard-chromium-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1200,1400"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# Symbol, opening price, and how it moves: a few shapes so the page has something to show.
MARKET = [("AAPL", 190.0, 3.0, 7.0, 0.05), ("AMZN", 180.0, 2.0, 4.0, -0.04), ("GOOG", 165.0, 1.5, 9.0, 0.02),
          ("MSFT", 410.0, 2.5, 5.0, -0.03), ("NVDA", 120.0, 4.0, 3.0, 0.08), ("TSLA", 250.0, 6.0, 11.0, -0.06)]


def seed_market(bridge: Bridge) -> None:
    """Two minutes of trading, one tick a second per symbol, so the chart has bars."""
    now = datetime.now(timezone.utc)
    rows = []
    for i in range(120):
        ts = now - timedelta(seconds=120 - i)
        for n, (symbol, price, swing, period, drift) in enumerate(MARKET):
            moved = price + swing * math.sin(i / period) + drift * i
            rows.append((symbol, round(moved, 2), 100 + 37 * ((i + n) % 5), ts))
    status, body = http(bridge.ingest, ticks(*rows))
    assert status == 202, body


def shown(driver: webdriver.Chrome, symbol: str) -> bool:
    return bool(driver.find_elements(By.CSS_SELECTOR, f'#tickers tr[data-symbol="{symbol}"]'))


def test_dashboard_updates_live_and_shows_the_stale_banner(bridge: Bridge, browser: webdriver.Chrome):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    seed_market(bridge)
    browser.get(bridge.url + "/")
    WebDriverWait(browser, START_PATIENCE).until(lambda d: shown(d, "AAPL") and shown(d, "MSFT"))
    WebDriverWait(browser, START_PATIENCE).until(
        lambda d: d.find_element(By.ID, "status").text.startswith("live stream"))
    WebDriverWait(browser, START_PATIENCE).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#chart path.close"))
    assert not browser.find_element(By.ID, "banner").is_displayed(), browser.find_element(By.ID, "banner").text
    browser.execute_script("window.__notReloaded = true;")

    assert not shown(browser, "NEWCO")
    status, body = http(bridge.ingest, ticks(("NEWCO", 42.5, 1000, datetime.now(timezone.utc))))
    assert status == 202, body
    WebDriverWait(browser, SHOWN_WITHIN, poll_frequency=0.02).until(
        lambda d: shown(d, "NEWCO"), message=f"NEWCO not shown within {SHOWN_WITHIN} s of its tick")
    assert browser.execute_script("return window.__notReloaded === true;"), "the page was reloaded"
    row = browser.find_element(By.CSS_SELECTOR, '#tickers tr[data-symbol="NEWCO"]').text
    assert "42.50" in row, row
    status_line = browser.find_element(By.ID, "status").text
    assert "answered from L" in status_line and "data age" in status_line, status_line
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

    stop(bridge.writer)
    banner = WebDriverWait(browser, BANNER_PATIENCE).until(
        lambda d: (b := d.find_element(By.ID, "banner")).is_displayed() and b)
    assert "stale" in banner.text.lower(), banner.text
    browser.save_screenshot(str(ARTIFACTS / "dashboard-stale.png"))
