#!/usr/bin/env python3
"""Opens the chat page of `collie serve` in headless Chromium, sends a message and checks a streamed reply
(run by scripts/test.sh after swift test).

Starts `collie serve` on a free loopback port with the tiny chat model of Tests/CollieServerTests/Fixtures (plus
the bundled LLaMA-2 tokenizer) and Debian's chromium with a DevTools port; through the DevTools protocol
(websocket-client) it types a message into the page's text box, clicks Send, waits until the reply has finished
streaming, checks that it arrived in several chunks and is the same text the API gives for that conversation,
and saves a screenshot (default build/chat-page.png). Stops Chromium and the server at the end; exits non-zero
on failure.

    python3 scripts/checks/check_chat_page.py [--collie .build/debug/collie] [--screenshot FILE]

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import add_collie_argument, chat_model_folder, repository_path, start_serve, stop  # noqa: E402

MESSAGE = "Hello, Collie! Tell me a story."


def start_chromium(tmp):
    profile = os.path.join(tmp, "profile")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise SystemExit("chromium is not installed (scripts/setup.sh installs Debian's chromium)")
    process = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                                f"--user-data-dir={profile}", "--window-size=1000,700", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.time() + 60
    while time.time() < deadline:
        if os.path.exists(port_file):
            lines = open(port_file).read().split()
            if lines:
                return process, int(lines[0])
        time.sleep(0.1)
    process.kill()
    raise SystemExit("chromium did not open its DevTools port")


class Page:
    """A minimal DevTools-protocol client for one tab."""

    def __init__(self, port):
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")


def main():
    parser = argparse.ArgumentParser()
    add_collie_argument(parser)
    parser.add_argument("--screenshot", default=repository_path("build", "chat-page.png"))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="collie-chat-page-")
    server, base = start_serve(args.collie, chat_model_folder(tmp))
    browser = None
    try:
        browser, port = start_chromium(tmp)
        page = Page(port)
        page.call("Page.enable")
        page.call("Page.navigate", url=base + "/")
        page.wait("document.getElementById('model') && document.getElementById('model').textContent.startsWith('model:')")
        # Type into the box and press Send, as a person would.
        page.evaluate(f"document.getElementById('temperature').value = '0'; "
                      f"document.getElementById('maxTokens').value = '40'; "
                      f"document.getElementById('input').value = {json.dumps(MESSAGE)}; "
                      f"document.getElementById('send').click(); true")
        page.wait("document.querySelector('.message.assistant') !== null")
        page.wait("document.querySelector('.message.assistant').dataset.done === 'true'", timeout=120)
        reply = page.evaluate("document.querySelector('.message.assistant').textContent")
        chunks = int(page.evaluate("document.querySelector('.message.assistant').dataset.chunks || '0'"))
        errors = page.evaluate("Array.from(document.querySelectorAll('.error')).map(e => e.textContent)")
        os.makedirs(os.path.dirname(os.path.abspath(args.screenshot)), exist_ok=True)
        png = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
        with open(args.screenshot, "wb") as f:
            f.write(png)
        assert not errors, f"the page shows errors: {errors}"
        assert reply and chunks > 1, f"expected a streamed reply, got {chunks} chunks: {reply!r}"
        # The same conversation through the API gives the same text.
        model = json.load(urllib.request.urlopen(base + "/v1/models"))["data"][0]["id"]
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": MESSAGE}], "max_tokens": 40,
                           "temperature": 0}).encode()
        request = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        expected = json.load(urllib.request.urlopen(request))["choices"][0]["message"]["content"]
        assert reply == expected, f"page shows {reply!r}, API gives {expected!r}"
        print(f"ok: chat page streamed a {len(reply)}-character reply in {chunks} chunks; "
              f"screenshot {args.screenshot} ({len(png)} bytes)")
    finally:
        if browser:
            stop(browser, signal.SIGTERM, timeout=10)
        stop(server)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
