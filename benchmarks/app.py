"""`dancenet app` as a user meets it: page load, Generate -> playing video, memory while working.

    python benchmarks/app.py [--repeats 3]

Starts `dancenet app` (bundled model) in its own process and drives it with headless Chromium
(Debian's chromium + chromium-driver, selenium from the app extra). Prints:
- page load: from navigation until the Generate button and the model's recommended temperatures
  are on the page (targets: < 2 s);
- Generate: from the click until a 10 s dance is playable in the page (<video> readyState >= 2),
  beside the same dance made by `dancenet generate` from a terminal (start-up and model load
  included there, not in the page: the app holds the model) (target: < 5 s);
- the app process's resident memory (VmRSS, and its peak VmHWM) after generating, and while a
  training it started runs (the training itself runs in a child process, reported apart)
  (target: < 1.5 GB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


def children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(part) for part in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", default=None, help="unused (run_all.py passes it)")
    arguments = parser.parse_args()
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        print("skipped: needs Debian's chromium and chromium-driver")
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_app import dancer_mp4

    work = Path(tempfile.mkdtemp(prefix="dancenet-app-bench-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "THP_MEM_ALLOC_ENABLE": "1"}
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "dancenet.cli", "app", "--port", str(port),
                               "--runs", str(work / "runs")], cwd=work, env=environment,
                              stdout=open(work / "server.log", "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if server.poll() is not None:
                raise SystemExit((work / "server.log").read_text())
            time.sleep(0.2)
    startup = time.perf_counter() - started

    options = Options()
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={work / 'profile'}", "--window-size=1300,1400"):
        options.add_argument(argument)
    options.binary_location = chromium
    browser = webdriver.Chrome(options=options, service=Service(driver_path))
    wait = lambda condition, seconds=120: WebDriverWait(browser, seconds, poll_frequency=0.05).until(condition)  # noqa: E731
    try:
        loads, generations = [], []
        for _ in range(arguments.repeats):
            clock = time.perf_counter()
            browser.get(url)
            wait(lambda d: d.find_elements(By.ID, "dance-generate") and d.execute_script(
                "const e = document.querySelector('#dance-sigma input[type=number]');"
                "return e && e.value === '0.75';"))
            loads.append(time.perf_counter() - clock)
        for seed in range(arguments.repeats):
            field = browser.find_element(By.CSS_SELECTOR, "#dance-seed input")
            field.clear()
            field.send_keys(str(seed + 1))
            previous = browser.execute_script(
                "const v = document.querySelector('#dance-video video'); return v ? v.src : '';")
            clock = time.perf_counter()
            browser.find_element(By.ID, "dance-generate").click()
            wait(lambda d: d.execute_script(
                "const v = document.querySelector('#dance-video video');"
                "return v && v.src !== arguments[0] && v.readyState >= 2 && v.duration > 9;", previous))
            generations.append(time.perf_counter() - clock)
        after_generate = rss_mb(server.pid)

        clock = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dancenet.cli", "generate", "-o", str(work / "cli.mp4"),
                        "--seconds", "10", "--seed", "1", "--quiet"], check=True, env=environment)
        cli_seconds = time.perf_counter() - clock

        # a training started from the page: upload, check, start, then sample memory for 30 s
        browser.find_elements(By.CSS_SELECTOR, "button[role=tab]")[1].click()
        video = dancer_mp4(work / "dance.mp4", seconds=60)
        browser.find_element(By.CSS_SELECTOR, "#train-upload input[type=file]").send_keys(str(video))
        text = lambda d, name: d.execute_script(  # noqa: E731
            f"const e = document.getElementById('{name}'); return e ? e.innerText : '';")
        wait(lambda d: "dance" in text(d, "train-upload"))
        browser.find_element(By.ID, "train-check").click()
        wait(lambda d: "of dance" in text(d, "train-check-message"))
        wait(lambda d: d.find_element(By.ID, "train-start").is_enabled())
        browser.find_element(By.ID, "train-start").click()
        peak_app, peak_child = after_generate[0], 0.0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            peak_app = max(peak_app, rss_mb(server.pid)[0])
            for child in children(server.pid):
                try:
                    peak_child = max(peak_child, rss_mb(child)[0])
                except OSError:
                    pass
            time.sleep(0.5)
        during_training = rss_mb(server.pid)
        browser.find_element(By.ID, "train-cancel").click()
    finally:
        browser.quit()
        server.send_signal(2)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)

    print("## dancenet app (bundled model, headless Chromium on this machine)\n")
    print("| measure | figure | target |")
    print("|---|---:|---:|")
    print(f"| server start (process -> first HTTP 200) | {startup:.1f} s | |")
    print(f"| page load to usable (median of {len(loads)}) | {statistics.median(loads):.2f} s "
          f"(min {min(loads):.2f}, max {max(loads):.2f}) | < 2 s |")
    print(f"| Generate -> 10 s dance playing (median of {len(generations)}) | "
          f"{statistics.median(generations):.2f} s (min {min(generations):.2f}, max {max(generations):.2f}) | < 5 s |")
    print(f"| same 10 s by `dancenet generate` in a terminal (start-up + load + write) | {cli_seconds:.2f} s | |")
    print(f"| app RSS after generating (peak so far) | {after_generate[0]:.0f} MB ({after_generate[1]:.0f} MB) | < 1.5 GB |")
    print(f"| app RSS while a training runs (peak so far) | {during_training[0]:.0f} MB ({during_training[1]:.0f} MB) | < 1.5 GB |")
    print(f"| the training child process, peak RSS sampled | {peak_child:.0f} MB | |")


if __name__ == "__main__":
    main()
