"""Headless Chromium for the help-desk tests (the console's pages, WebRTC's media.js), and
WebRTC kept on loopback: aioice leaves 127.0.0.1 out by default, Chromium is told to allow it,
so nothing leaves the machine and a host with only `lo` runs these tests too."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


@contextlib.contextmanager
def headless_chromium(*extra_args: str) -> Iterator[Any]:
    """One headless Chromium driven through Debian's chromedriver, closed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.fail("chromium and chromedriver are needed: bash scripts/setup.sh installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", *extra_args):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# Chromium flags for a WebRTC call without a person: a fake camera and microphone, no prompt
MEDIA_FLAGS = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
               "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns",
               "--autoplay-policy=no-user-gesture-required")


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


@contextlib.contextmanager
def ice_on_loopback() -> Iterator[None]:
    """aiortc's ICE candidates on 127.0.0.1 only, for as long as the block runs."""
    import aioice.ice

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aioice.ice, "get_host_addresses", _loopback_only)
        yield
