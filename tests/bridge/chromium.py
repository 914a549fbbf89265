"""A headless Chromium driven over the Chrome DevTools Protocol, for the tests (and the measurements) of the page
of `streamvideo serve --web`.

The system's Chromium (Debian's `chromium` package, which .ci/run installs), spoken to directly: CDP is JSON
over a WebSocket, and the `websockets` library the page's server needs already speaks it, so the tests need no
browser-driver package and no browser download, and work with whichever Chromium version the system has (the few
commands used here, Page.navigate, Runtime.evaluate, Input.dispatchKeyEvent, Page.captureScreenshot, have been
stable for years).

    with Chromium() as browser:
        page = browser.page
        page.navigate("http://127.0.0.1:8000/")
        page.wait_for("window.streamvideo.framesDrawn > 10")
        page.press("ArrowUp")
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.sync.client import connect

EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# KeyboardEvent.code -> (key, Windows virtual key code), for the keys the tests press
KEYS = {"ArrowUp": ("ArrowUp", 38), "ArrowDown": ("ArrowDown", 40), "ArrowLeft": ("ArrowLeft", 37),
        "ArrowRight": ("ArrowRight", 39), "Space": (" ", 32), "Enter": ("Enter", 13), "KeyP": ("p", 80),
        "KeyR": ("r", 82), "KeyV": ("v", 86), "KeyW": ("w", 87)}
START_TIMEOUT = 60.0


def find_chromium() -> str | None:
    """The Chromium to drive: $STREAMVIDEO_CHROMIUM, else the first of EXECUTABLES on the PATH; None if none."""
    explicit = os.environ.get("STREAMVIDEO_CHROMIUM")
    return explicit or next(filter(None, map(shutil.which, EXECUTABLES)), None)


class Chromium:
    """A headless Chromium process with a fresh profile, and its first tab (`page`)."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900):
        executable = executable or find_chromium()
        if executable is None:
            raise FileNotFoundError(f"no Chromium found (looked for {', '.join(EXECUTABLES)} on the PATH)")
        self.profile = Path(tempfile.mkdtemp(prefix="streamvideo-chromium-"))
        self.downloads = self.profile / "downloads"
        self.log = open(self.profile / "chromium.log", "wb")
        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "--autoplay-policy=no-user-gesture-required", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT)
        try:
            port = self._port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=START_TIMEOUT) as reply:
                target = next(t for t in json.load(reply) if t["type"] == "page")
            self.page = Page(target["webSocketDebuggerUrl"])
            self.page.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(self.downloads))
        except BaseException:
            self.close()
            raise

    def _port(self) -> int:
        """The DevTools port, from the file Chromium writes into its profile once it listens."""
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Chromium exited (rc {self.process.returncode}): "
                                   f"{(self.profile / 'chromium.log').read_text(errors='replace')[-2000:]}")
            if active.exists() and active.read_text().strip():
                return int(active.read_text().split()[0])
            time.sleep(0.05)
        raise TimeoutError(f"Chromium did not open its DevTools port within {START_TIMEOUT:g} s")

    def close(self) -> None:
        if getattr(self, "page", None) is not None:
            self.page.close()
        self.process.kill()
        self.process.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab, over its DevTools WebSocket: commands answered in order, events kept aside."""

    def __init__(self, url: str):
        self.socket = connect(url, max_size=None, open_timeout=START_TIMEOUT)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        rid = next(self.ids)
        self.socket.send(json.dumps({"id": rid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.socket.recv(timeout=max(0.0, deadline - time.monotonic())))
            if message.get("id") == rid:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def navigate(self, url: str, timeout: float = 60.0) -> None:
        """Open `url` and wait for its load event."""
        self.events.clear()
        result = self.call("Page.navigate", url=url)
        if result.get("errorText"):
            raise RuntimeError(f"cannot open {url}: {result['errorText']}")
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=max(0.0, deadline - time.monotonic()))))

    def evaluate(self, expression: str, timeout: float = 60.0):
        """The value of a JavaScript expression in the page (a promise is awaited); raises on a JS exception."""
        result = self.call("Runtime.evaluate", timeout, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(f"{expression!r} threw: {details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60.0):
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still {value!r} after {timeout:g} s")
            time.sleep(0.05)

    def key(self, code: str, down: bool) -> None:
        """Press (down) or release a key, as a real keyboard would: trusted DOM key events with this `code`."""
        key, virtual = KEYS[code]
        text = {"Enter": "\r", " ": " "}.get(key, key if len(key) == 1 else "")
        params = {"type": ("keyDown" if text else "rawKeyDown") if down else "keyUp", "code": code, "key": key,
                  "windowsVirtualKeyCode": virtual, "nativeVirtualKeyCode": virtual}
        if down and text:
            params["text"] = text
        self.call("Input.dispatchKeyEvent", **params)

    def press(self, code: str) -> None:
        self.key(code, True)
        self.key(code, False)

    def type_text(self, text: str) -> None:
        """Type text into the focused element."""
        self.call("Input.insertText", text=text)

    def screenshot(self, path: str | Path, clip_to: str | None = None) -> None:
        """Save the tab as a PNG; `clip_to`: only the top-left part that holds this element (a CSS selector)."""
        params = {}
        if clip_to is not None:
            right, bottom = self.evaluate(f"(() => {{ const r = document.querySelector('{clip_to}')"
                                          ".getBoundingClientRect(); return [r.right, r.bottom]; })()")
            params["clip"] = {"x": 0, "y": 0, "width": right, "height": bottom, "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self) -> None:
        self.socket.close()
