"""The community widget (npm rasa-webchat 1.0.1, installed by scripts/browser.sh) and the plain
socket.io client (npm socket.io-client), each with its default options, against a real server.

rasa-webchat is embedded with its documented snippet (README, "In a <script> tag"), with only the
server's address filled in, on a page of its own origin: a local HTTP server on another port,
which the server under test must allow in CORS_ORIGINS (`page_origin`).
"""

import contextlib
import functools
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.screenshot_pages import CHROMIUM
from harness.servers import ROOT, free_port

NODE_MODULES = ROOT / "tests" / "browser" / "node_modules"
# rasa-webchat's README snippet; the script's address is the local copy of the same file.
PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Help</title></head>
<body>
<script>!(function () {{
  let e = document.createElement("script"),
    t = document.head || document.getElementsByTagName("head")[0];
  (e.src =
    "/rasa-webchat/lib/index.js"),
    (e.async = !0),
    (e.onload = () => {{
      window.WebChat.default(
        {{
          customData: {{ language: "zh" }},
          socketUrl: "{server}",
        }},
        null
      );
    }}),
    t.insertBefore(e, t.firstChild);
}})();
</script>
</body></html>
"""


def require(path: Path, what: str) -> None:
    if path.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed; scripts/browser.sh installs it")
    pytest.skip(f"{what} is not installed (scripts/browser.sh)")


def page_port() -> int:
    """A free port for the page; its origin goes into the server's CORS_ORIGINS first."""
    return free_port()


@contextlib.contextmanager
def embedding_page(port: int, server: str, folder: Path) -> Iterator[str]:
    """Serves a page embedding rasa-webchat, talking to `server`, at http://127.0.0.1:port/."""
    require(NODE_MODULES / "rasa-webchat" / "lib" / "index.js", "rasa-webchat (npm)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(PAGE.format(server=server), encoding="utf-8")
    link = folder / "rasa-webchat"
    if not link.exists():
        link.symlink_to(NODE_MODULES / "rasa-webchat")
    handler = functools.partial(QuietHandler, directory=str(folder))
    site = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        site.shutdown()
        site.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def ask_in_webchat(page_url: str, question: str) -> tuple[list[str], list[str]]:
    """Opens the page in Chromium, opens the widget, asks `question`; returns the texts of the
    bot's messages and the addresses of their links, once an answer with a link has shown."""
    require(Path(CHROMIUM), "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(page_url)
            # the launcher shows only once the socket is connected ("waiting for server" before)
            page.locator(".rw-launcher").click(timeout=30000)
            box = page.locator(".rw-new-message")
            box.wait_for(timeout=30000)
            box.fill(question)
            box.press("Enter")
            page.locator(".rw-response a").first.wait_for(timeout=45000)
            texts = page.locator(".rw-response").all_inner_texts()
            links = page.eval_on_selector_all(".rw-response a", "all => all.map(a => a.href)")
            return texts, links
        finally:
            browser.close()


def socketio_conversations(server: str, questions: list[str]) -> list[dict]:
    """Each question in a conversation of its own, all at once, with socket.io-client's default
    options (tests/browser/socketio_conversations.js)."""
    require(NODE_MODULES / "socket.io-client", "socket.io-client (npm)")
    done = subprocess.run(
        ["node", "socketio_conversations.js", server, json.dumps(questions, ensure_ascii=False)],
        cwd=ROOT / "tests" / "browser",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))
