"""Pages checked as a person sees them: a headless Chromium opens an HTML file and reports its
console errors, the images that do not decode, its visible text and a full-page screenshot.

Used through the session-scoped ``browser`` fixture (tests/conftest.py):

    view = inspect_page(browser, path, "report-instructor")
    assert view.console_errors == [] and view.images and view.broken_images == []

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``; ``AUTOGRADER_CHROMIUM`` / ``AUTOGRADER_CHROMEDRIVER`` point
elsewhere) and the ``selenium`` client (the ``test`` extra). Selenium Manager is never used:
both paths are given, so nothing is downloaded. Without them the tests skip, unless
``AUTOGRADER_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where they fail.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("AUTOGRADER_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("AUTOGRADER_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1024"]
MAX_SCREENSHOT_HEIGHT = 16_000  # Chromium refuses taller captures


def artifacts_dir() -> Path:
    """``$AUTOGRADER_ARTIFACTS`` when set, else ``test-artifacts/`` in the repository."""
    return Path(os.environ.get("AUTOGRADER_ARTIFACTS") or REPO / "test-artifacts")


def screenshots_dir() -> Path:
    return artifacts_dir() / "screenshots"


def browser_required() -> bool:
    return os.environ.get("AUTOGRADER_REQUIRE_BROWSER", "") == "1"


def missing() -> str | None:
    """Why no browser can be started here, or None."""
    problems = []
    if importlib.util.find_spec("selenium") is None:
        problems.append("the Python package selenium is not installed (pip install -e '.[test]')")
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (path.is_file() and os.access(path, os.X_OK)):
            problems.append(f"{path} not found (Debian package {package})")
    return "; ".join(problems) or None


@dataclass(frozen=True)
class ImageView:
    alt: str
    src: str               # the first 80 characters (a data: URL is long)
    natural_width: int
    natural_height: int
    problem: str | None    # None when the image decoded

    @property
    def embedded(self) -> bool:
        return self.src.startswith("data:")


@dataclass(frozen=True)
class PageView:
    path: Path
    title: str
    console_errors: list[str]   # SEVERE browser-log entries: console.error, uncaught exceptions, failed loads
    images: list[ImageView]     # every <img>, in document order
    text: str                   # document.body.innerText: what is rendered (closed <details> left out)
    html: str                   # the DOM after scripts ran (document.documentElement.outerHTML)
    by_id: dict[str, str]       # innerText of every element that has an id, by id
    screenshot: Path            # full-page PNG under screenshots_dir()
    log: list[dict] = field(default_factory=list, repr=False)  # every browser-log entry, all levels

    @property
    def broken_images(self) -> list[ImageView]:
        return [image for image in self.images if image.problem is not None]

    @property
    def embedded_images(self) -> list[ImageView]:
        return [image for image in self.images if image.embedded]


def start_browser(profile_dir: Path):
    """A headless Chromium under chromedriver, with a fresh profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


# Resolves with one record per <img>: decoded, or why not (img.decode() rejects on a broken image).
_IMAGES_JS = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
Promise.allSettled(images.map(img => img.decode())).then(results => done(images.map((img, i) => ({
  alt: img.alt || "", src: (img.getAttribute("src") || "").slice(0, 80),
  complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
  error: results[i].status === "rejected" ? String(results[i].reason) : null,
}))));
"""


def inspect_page(browser, html_path: Path, screenshot_name: str) -> PageView:
    """Open ``html_path`` (file:// URL) in ``browser`` and report what a reader would meet:
    console errors, images that fail to decode, the visible text; save a full-page screenshot
    as ``screenshots_dir()/<screenshot_name>.png``."""
    path = Path(html_path).resolve()
    browser.get_log("browser")  # drain what earlier pages logged
    browser.get(path.as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    images = []
    for record in browser.execute_async_script(_IMAGES_JS):
        problem = record["error"]
        if problem is None and not record["complete"]:
            problem = "not complete"
        elif problem is None and record["width"] == 0:
            problem = "naturalWidth is 0"
        images.append(ImageView(record["alt"], record["src"], record["width"], record["height"], problem))
    text = browser.execute_script("return document.body ? document.body.innerText : ''")
    html = browser.execute_script("return document.documentElement.outerHTML")
    by_id = browser.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('[id]'), e => [e.id, e.innerText]))")
    screenshot = _full_page_screenshot(browser, screenshot_name)
    log = browser.get_log("browser")
    errors = [entry["message"] for entry in log if entry.get("level") == "SEVERE"]
    return PageView(path=path, title=browser.title, console_errors=errors, images=images, text=text,
                    html=html, by_id=by_id, screenshot=screenshot, log=log)


def _full_page_screenshot(browser, name: str) -> Path:
    metrics = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    width, height = max(1, int(size["width"])), max(1, min(int(size["height"]), MAX_SCREENSHOT_HEIGHT))
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    })
    folder = screenshots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name).removesuffix('.png')}.png"
    target.write_bytes(base64.b64decode(shot["data"]))
    return target
