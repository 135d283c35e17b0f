"""A lesson as a student sees it: JupyterLab in a real browser (Debian's Chromium, driven by playwright).

JupyterLab runs on 127.0.0.1 over a temporary copy of the lesson (autosave must never write
outputs into the committed notebooks). The test opens the lesson, runs every cell from the
Run menu, and checks what a student would check: no traceback anywhere, plots drawn as images,
the quiz widgets answer a click with feedback, the layer explorer reacts to a new choice.
Screenshots go to ``artifacts/browser/`` (kept by CI as test artifacts).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in the current tab
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [pytest.mark.usefixtures("real_engine"), pytest.mark.browser, pytest.mark.slow]


def _need_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright is not installed: ./course.sh test installs it (pip install -e '.[test]')")
    if not CHROMIUM:
        msg = "Chromium is not installed (./course.sh test installs Debian's chromium as root)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 over a temporary folder; stopped (with its kernels) afterwards."""
    _need_browser()
    folder = tmp_path_factory.mktemp("lab")
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(folder / ".jupyter"))
    env.pop("COURSEKIT_NO_ENGINE", None)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={folder}",
           "--LabApp.news_url=", "--ServerApp.port_retries=0"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(folder / "jupyter.log", "w")
    proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (folder / "jupyter.log").read_text()[-2000:])
            time.sleep(0.3)
    yield url, folder
    os.killpg(proc.pid, signal.SIGTERM)  # the server shuts its kernels down (they clean up after themselves)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _run_all(page, name: str, timeout_s: float = 240) -> None:
    """Open a notebook, Run > Run All Cells, wait until every code cell has an execution count."""
    page.goto(name)
    page.wait_for_selector(f"{ACTIVE} .jp-Cell", timeout=60_000)
    # JupyterLab sometimes asks which kernel to use (when it opens the notebook before it has listed the
    # kernels); a student would accept the suggested Python 3, and so do we.
    dialog = page.locator(".jp-Dialog:has-text('Select Kernel') .jp-mod-accept")
    idle = page.locator(f"{ACTIVE} .jp-Notebook-ExecutionIndicator[data-status='idle']")
    deadline = time.monotonic() + 90
    while not idle.is_visible():
        if dialog.is_visible():
            dialog.click()
        if time.monotonic() > deadline:
            page.screenshot(path=str(SHOTS / "kernel-not-idle.png"))
            raise AssertionError("the notebook's kernel did not become idle within 90 s")
        time.sleep(0.3)
    def prompts():
        return page.eval_on_selector_all(f"{ACTIVE} .jp-CodeCell .jp-InputPrompt", "els => els.map(e => e.textContent)")

    for attempt in range(3):  # a click that lands while JupyterLab is still settling can be lost
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        started = time.monotonic() + 15
        while time.monotonic() < started and all(p.strip() in ("[ ]:", "") for p in prompts()):
            time.sleep(0.5)
        if not all(p.strip() in ("[ ]:", "") for p in prompts()):
            break
        page.screenshot(path=str(SHOTS / f"run-all-not-started-{attempt}.png"))
        page.keyboard.press("Escape")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = prompts()
        if now and all(p.strip() not in ("[ ]:", "[*]:", "") for p in now):
            return
        time.sleep(1)
    page.screenshot(path=str(SHOTS / "run-all-timeout.png"))
    raise AssertionError(f"the lesson did not finish running within {timeout_s:.0f} s: prompts {now}")


def _open(lab, lesson: str):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    url, folder = lab
    shutil.copy(ROOT / "notebooks" / f"{lesson}.ipynb", folder / f"{lesson}.ipynb")
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    _run_all(page, f"{url}/lab/tree/{lesson}.ipynb?reset")  # ?reset: a fresh workspace, this tab only
    return pw, browser, page


def _no_tracebacks(page) -> None:
    texts = page.eval_on_selector_all(f"{ACTIVE} .jp-OutputArea-output", "els => els.map(e => e.innerText)")
    bad = [t[:400] for t in texts if "Traceback (most recent call last)" in t or "Error:" in t.split("\n")[0]]
    assert not bad, "a cell shows an error:\n" + "\n---\n".join(bad)


def _answer_first_quiz(page) -> str:
    quiz = page.locator(f"{ACTIVE} .coursekit-quiz").first
    quiz.scroll_into_view_if_needed()
    quiz.locator("input[type=radio]").first.check()
    quiz.locator("button:text-is('Check')").click()
    feedback = quiz.locator("text=/Right|Not quite/")
    feedback.wait_for(timeout=10_000)
    return feedback.inner_text()


def test_images_and_layers_lesson_in_the_browser(lab):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pw, browser, page = _open(lab, "03-images-and-layers")
    try:
        _no_tracebacks(page)
        assert page.locator(f"{ACTIVE} .jp-OutputArea-output img").count() >= 1, "no plot was drawn"
        assert page.locator(f"{ACTIVE} .coursekit-quiz").count() >= 2
        verdict = _answer_first_quiz(page)
        assert verdict.startswith(("✔ Right", "✘ Not quite")), verdict
        page.locator(".coursekit-quiz").first.screenshot(path=str(SHOTS / "03-quiz-answered.png"))
        # the layer explorer, after the clean-up cell ran: pick busybox, then another of its layers
        explorer = page.locator(f"{ACTIVE} .widget-vbox:has(select)").first
        explorer.scroll_into_view_if_needed()
        image, layer = explorer.locator("select").nth(0), explorer.locator("select").nth(1)
        from coursekit.docker import engine
        n_layers = len(engine.client().images.get("coursekit/busybox:v1").attrs["RootFS"]["Layers"])
        image.select_option(label="coursekit/busybox:v1")
        page.wait_for_function("([el, n]) => el.querySelectorAll('select')[1].options.length === n && "
                               "!el.innerText.includes('saving')", arg=[explorer.element_handle(), n_layers],
                               timeout=60_000)
        options = layer.locator("option").all_inner_texts()
        assert len(options) >= 2 and options[0].startswith("0:"), options
        layer.select_option(label=options[0])
        page.wait_for_function("el => el.innerText.includes('1 file: 1 added')", arg=explorer.element_handle(),
                               timeout=30_000)  # layer 0 is the COPY of the one busybox binary
        explorer.screenshot(path=str(SHOTS / "03-layer-explorer.png"))
        page.screenshot(path=str(SHOTS / "03-lesson.png"), full_page=True)
    finally:
        browser.close()
        pw.stop()


def _settled(locator, quiet: float = 2.0, limit: float = 60.0) -> str:
    """The locator's text once it has not changed for ``quiet`` seconds (redraws still queued finish first)."""
    end, text, since = time.monotonic() + limit, locator.inner_text(), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.25)
        now = locator.inner_text()
        if now != text:
            text, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return text


def test_cloud_computing_lesson_sliders_and_sorting_quiz(lab):
    pw, browser, page = _open(lab, "09-cloud-computing")
    try:
        _no_tracebacks(page)
        assert page.locator(f"{ACTIVE} .jp-OutputArea-output img").count() >= 2, "the plots were not drawn"
        # the capacity explorer: move the first slider (the spike's peak) and watch the totals and picture change
        explorer = page.locator(f"{ACTIVE} .widget-vbox:has(.widget-slider)").first
        explorer.scroll_into_view_if_needed()
        readout_before = explorer.locator(".widget-html").first.inner_text()
        picture_before = explorer.locator("img").first.get_attribute("src")
        handle = explorer.locator(".widget-slider .noUi-handle").first
        handle.focus()
        for _ in range(10):
            handle.press("ArrowRight")
        page.wait_for_function("([el, before]) => el.querySelector('.widget-html').innerText !== before",
                               arg=[explorer.element_handle(), readout_before], timeout=30_000)
        page.wait_for_function("([el, before]) => el.querySelector('img').src !== before",
                               arg=[explorer.element_handle(), picture_before], timeout=30_000)  # redrawn
        _settled(explorer.locator(".widget-html").first)  # ten key presses: ten redraws; wait for the last one
        explorer.screenshot(path=str(SHOTS / "09-capacity-slider-moved.png"))
        # the sorting quiz: place every item in the first bin, check, read the explanations
        sq = page.locator(f"{ACTIVE} .coursekit-sortquiz").first
        sq.scroll_into_view_if_needed()
        rows = sq.locator(".widget-toggle-buttons")
        for i in range(rows.count()):
            rows.nth(i).locator("button").first.click()
        sq.locator("button:text-is('Check')").click()
        sq.locator(".widget-html").last.locator("text=/\\d+ of \\d+|right|wrong|✔|✘/i").first.wait_for(timeout=10_000)
        sq.screenshot(path=str(SHOTS / "09-sorting-quiz-checked.png"))
        verdict = _answer_first_quiz(page)
        assert verdict.startswith(("✔ Right", "✘ Not quite")), verdict
    finally:
        browser.close()
        pw.stop()
