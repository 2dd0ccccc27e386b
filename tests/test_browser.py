"""The real UI in a real browser: `rag ui` serving a small index, driven by headless Chromium.

Asks a question in the chat, waits for the streamed answer and its sources, uploads a file
through the file uploader and sees it indexed, and saves a screenshot.

    RAG_UI_MODEL=default RAG_SCREENSHOT=docs/ui.png .venv/bin/pytest tests/test_browser.py

also writes the README's screenshot (with the default model, which answers properly; the
tiny model used by default here is only fast).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import IngestPipeline
from rag.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SAMPLES = PROJECT_ROOT / "sample_docs"
DOC = "gannet_rock_lighthouse.md"
OTHER_DOC = "tidewater_staff_handbook.pdf"  # a PDF, so sources with pages show too
QUESTION = "How many steps does a keeper climb to reach the lantern room?"
MODEL = os.environ.get("RAG_UI_MODEL", "tiny")
# Used only when sample_docs/ is missing: the facts the question needs.
_FALLBACK = ("# The Gannet Rock Lighthouse\n\n## The tower and its light\n\nA spiral staircase "
             "of 137 steps winds up through the storerooms to the lantern room.\n")


def _need_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's Chromium at /usr/bin/chromium (`make browser`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("needs playwright (pip install -e '.[dev]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"`rag ui` exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"`rag ui` not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path: Path, embedder) -> Iterator[str]:
    """`rag ui` (the real command) on a free port over a fresh index of sample documents."""
    _need_browser()
    docs = tmp_path / "docs"
    docs.mkdir()
    if (SAMPLES / DOC).is_file():
        for name in (DOC, OTHER_DOC):
            if (SAMPLES / name).is_file():
                shutil.copy(SAMPLES / name, docs / name)
    else:
        (docs / DOC).write_text(_FALLBACK, encoding="utf-8")
    index = tmp_path / "indexes" / "sample_docs"
    report = IngestPipeline(Settings(index_dir=index), embedder).run([docs], show_bar=False)
    assert report.added and not report.failed

    port = _free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAG_MODEL=MODEL,
               RAG_UPLOAD_DIR=str(tmp_path / "uploads"))
    env.pop("RAG_CONFIG", None)
    if MODEL == "tiny":  # it rambles to the token limit; a short one keeps the test quick
        env["RAG_MAX_NEW_TOKENS"] = "48"
    log = tmp_path / "server.log"
    rag = Path(sys.executable).with_name("rag")
    with open(log, "wb") as out:
        # its own process group: `rag ui` starts Streamlit as a child, and both must go
        proc = subprocess.Popen(
            [str(rag), "ui", "--index", str(index), "--server.port", str(port),
             "--server.headless", "true", "--server.fileWatcherType", "none"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _documents(page) -> int:
    return int(page.locator('[data-testid="stMetricValue"]').first.inner_text())


@pytest.mark.timeout(600)
def test_chat_answers_with_sources_and_upload_is_indexed(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server)
            chat = page.get_by_placeholder("Ask a question about your documents")
            expect(chat).to_be_enabled(timeout=120_000)  # index and embedder loaded
            before = _documents(page)

            chat.fill(QUESTION)
            chat.press("Enter")
            # the timings caption is written after the last piece: the answer is complete
            timings = page.get_by_text(re.compile(r"retrieval \d+ ms .* total [\d.]+ s"))
            expect(timings).to_be_visible(timeout=300_000)
            messages = page.locator('[data-testid="stChatMessage"]')
            expect(messages).to_have_count(2)
            assert QUESTION in messages.nth(0).inner_text()
            reply = messages.nth(1)
            answer = reply.locator('[data-testid="stMarkdownContainer"]').first.inner_text()
            assert answer.strip() and "▌" not in answer  # streamed in, cursor gone
            if MODEL != "tiny":  # the tiny model cannot be trusted with the fact
                assert "137" in answer
            assert not page.locator('[data-testid="stAlertContentError"]').count()
            assert DOC in reply.inner_text()  # the source's file name
            if MODEL != "tiny":  # the tiny model's answer may share too few words to mark
                expect(reply.locator("mark").first).to_be_visible()  # supporting text marked
            # every citation link leads to a source anchor on this page, not a new tab
            links = reply.locator('a[href^="#src-"]')
            for href, target in links.evaluate_all(
                    "els => els.map(e => [e.getAttribute('href'), e.getAttribute('target')])"):
                assert page.locator(href).count() == 1 and target != "_blank", href
            if MODEL != "tiny":  # a real model cites its passages
                links.first.click()
                assert page.evaluate("location.hash") == links.first.get_attribute("href")

            upload = tmp_path / "ferry_timetable.md"
            upload.write_text("# Ferry timetable\n\nThe Port Alder ferry leaves at 07:15 "
                              "and 16:40 on weekdays.\n", encoding="utf-8")
            page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files(
                str(upload))
            expect(page.get_by_text(upload.name).first).to_be_visible(timeout=30_000)
            page.get_by_role("button", name="Add to index").click()
            expect(page.get_by_text(re.compile(r"Added 1, .* failed 0"))).to_be_visible(
                timeout=120_000)
            expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text(
                str(before + 1))
            assert (tmp_path / "uploads" / upload.name).is_file()

            shot = tmp_path / "ui.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            target = os.environ.get("RAG_SCREENSHOT")
            if target:
                out = Path(target) if Path(target).is_absolute() else PROJECT_ROOT / target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, out)
        finally:
            browser.close()
