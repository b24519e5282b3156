"""`dancenet app` in a real headless Chromium: generate a dance, train on an upload, a bad upload.

Needs the app extra (`pip install 'dancenet[app]'`: Gradio, selenium) and Debian's `chromium` +
`chromium-driver` (`make test` installs all of them). Set DANCENET_SCREENSHOTS=DIR to keep the
screenshots taken along the way.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'dancenet[app]'")
pytest.importorskip("selenium", reason="the app extra is not installed: pip install 'dancenet[app]'")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("no chromium + chromedriver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from test_app import dancer_mp4  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`dancenet app` as a user starts it, in its own process, on a free local port."""
    root = tmp_path_factory.mktemp("app")
    port = free_port()
    log = open(root / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "dancenet.cli", "app", "--port", str(port),
                                "--runs", str(root / "runs")], cwd=root, stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
                               # Ctrl-C stops it even where the suite runs in the background
                               # (a shell's `&` ignores SIGINT, and children inherit that)
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("the app did not start:\n" + (root / "server.log").read_text()[-3000:])
            time.sleep(0.5)
    yield url, root
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the app did not stop within 30 s of Ctrl-C")
    finally:
        log.close()


@pytest.fixture(scope="module")
def browser():
    options = Options()
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1300,1500", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(argument)
    profile = tempfile.mkdtemp(prefix="dancenet-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver, name):
    folder = os.environ.get("DANCENET_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def wait(driver, condition, seconds=60, message=""):
    return WebDriverWait(driver, seconds, poll_frequency=0.2).until(condition, message)


def text_of(driver, element_id):
    return driver.execute_script(f"const e = document.getElementById('{element_id}'); "
                                 "return e ? e.innerText : '';")


def open_tab(driver, label):
    tab = wait(driver, lambda d: [b for b in d.find_elements(By.CSS_SELECTOR, "button[role=tab]")
                                  if b.text.strip() == label], message=f"tab {label}")[0]
    tab.click()


def upload(driver, path):
    field = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#train-upload input[type=file]"))[0]
    field.send_keys(str(path))
    wait(driver, lambda d: Path(path).stem in text_of(d, "train-upload"), message="upload shown")


def test_generate_plays_a_dance_in_the_page(server, browser):
    url, _ = server
    browser.get(url)
    wait(browser, lambda d: d.find_elements(By.ID, "dance-generate"))
    # the recommended temperatures of the bundled model are filled in (not the slider defaults)
    wait(browser, lambda d: d.execute_script(
        "return document.querySelector('#dance-sigma input[type=number]').value") == "0.75",
        message="recommended spread temperature")
    browser.find_element(By.ID, "dance-generate").click()
    duration = wait(browser, lambda d: d.execute_script(
        "const v = document.querySelector('#dance-video video');"
        "return v && v.readyState >= 2 && v.duration > 0 ? v.duration : null;"),
        message="a playable <video>")
    assert duration == pytest.approx(10.0, abs=0.5)
    link = browser.execute_script("const a = document.querySelector('#dance-mp4 a');"
                                  "return a ? a.href : '';")
    assert link.endswith("dance.mp4")  # the download
    screenshot(browser, "dance")


def test_bad_upload_is_a_message_in_the_page(server, browser, tmp_path):
    url, root = server
    browser.get(url)
    open_tab(browser, "Train")
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 100)
    upload(browser, notes)
    browser.find_element(By.ID, "train-check").click()
    wait(browser, lambda d: "cannot be read as a video" in text_of(d, "train-check-message"),
         message="the bad upload's message")
    assert "notes.mp4" in text_of(browser, "train-check-message")
    assert not browser.find_element(By.CSS_SELECTOR, "#train-start").is_enabled()
    screenshot(browser, "bad-upload")
    assert not (root / "runs").exists()  # nothing written to the runs folder


def test_upload_train_reload_and_cancel(server, browser, tmp_path):
    url, root = server
    video = dancer_mp4(tmp_path / "my dance.mp4", seconds=8)
    browser.get(url)
    open_tab(browser, "Train")
    upload(browser, video)
    browser.find_element(By.ID, "train-check").click()
    wait(browser, lambda d: "8 s of dance" in text_of(d, "train-check-message"), message="checked")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#train-sheet img"), message="sheet")
    screenshot(browser, "checked")
    name = browser.find_element(By.CSS_SELECTOR, "#train-name textarea, #train-name input")
    name.clear()
    name.send_keys("browser-test")
    start = browser.find_element(By.ID, "train-start")
    wait(browser, lambda d: start.is_enabled(), message="start enabled")
    start.click()
    wait(browser, lambda d: "learning her shapes" in text_of(d, "train-status"), seconds=120,
         message="training under way")
    browser.refresh()  # progress survives a page reload
    open_tab(browser, "Train")
    wait(browser, lambda d: "browser-test" in text_of(d, "train-status")
         and "left" in text_of(d, "train-status"), message="progress after reload")
    screenshot(browser, "training")
    cancel = browser.find_element(By.ID, "train-cancel")
    wait(browser, lambda d: cancel.is_enabled(), message="cancel enabled")
    cancel.click()
    wait(browser, lambda d: "cancelled" in text_of(d, "train-status"), seconds=300,
         message="cancelled")
    assert (root / "runs" / "browser-test" / "pipeline.json").is_file()
    assert not list((root / "runs").glob(".*partial*"))
