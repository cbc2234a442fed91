"""Photograph pages of the documentation site in headless Chromium, as a phone and a desktop.

Chromium's `--screenshot` flag cannot make a window narrower than 500 pixels, and a phone's
window is narrower: so this drives Chromium over its DevTools protocol, through the pipe
that `--remote-debugging-pipe` opens (no network port, no third-party client), and has it
emulate each window (`Emulation.setDeviceMetricsOverride`), a phone's as a touch device.
`scripts/docs-screenshots` builds and serves the site, then runs this.

Usage: docs_screenshots.py CHROMIUM BASE_URL OUT_DIR PROFILE_DIR NAME=PATH...
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# name, width, height, mobile
WINDOWS = [("narrow", 390, 844, True), ("wide", 1400, 900, False)]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


class Chromium:
    """One headless Chromium, spoken to over its DevTools pipe (fd 3 in, fd 4 out)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chromium, self._write = os.pipe()
        self._read, from_chromium = os.pipe()

        def wire_pipes() -> None:
            # Copies first, so that neither end is overwritten before it is moved; dup2
            # leaves fds 3 and 4 inheritable, which os.pipe's own fds are not.
            chromium_in, chromium_out = os.dup(to_chromium), os.dup(from_chromium)
            os.dup2(chromium_in, 3)
            os.dup2(chromium_out, 4)

        self._process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=wire_pipes,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chromium)
        os.close(from_chromium)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        """Wait until an event named `method` has arrived (and forget the events so far)."""
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(self._receive())
        self.events.clear()

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe (did it start?)")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def close(self) -> None:
        # Chromium may already be gone; closing is best effort.
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._write)
        os.close(self._read)


def photograph(chromium: Chromium, url: str, out: Path, window: tuple[str, int, int, bool]) -> None:
    """Open `url` in a fresh tab with the given window and save what it shows to `out`."""
    _, width, height, mobile = window
    target = chromium.call("Target.createTarget", url="about:blank")["targetId"]
    session = chromium.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    chromium.call(
        "Emulation.setDeviceMetricsOverride",
        session,
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=mobile,
    )
    chromium.call("Emulation.setTouchEmulationEnabled", session, enabled=mobile)
    chromium.call("Page.enable", session)
    chromium.call("Page.navigate", session, url=url)
    chromium.wait_for("Page.loadEventFired")
    # Let the theme's script settle the layout (navigation, tables, copy buttons).
    chromium.call(
        "Runtime.evaluate",
        session,
        expression="document.fonts.ready.then(() => new Promise(r => setTimeout(r, 300)))",
        awaitPromise=True,
    )
    shot = chromium.call("Page.captureScreenshot", session, format="png")
    out.write_bytes(base64.b64decode(shot["data"]))
    chromium.call("Target.closeTarget", targetId=target)


def main(argv: list[str]) -> int:
    binary, base, out_dir, profile, *pages = argv
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chromium = Chromium(binary, Path(profile))
    try:
        for page in pages:
            name, _, path = page.partition("=")
            for window in WINDOWS:
                file = out / f"{name}-{window[0]}.png"
                photograph(chromium, base + path, file, window)
                print(f"{file}  ({path} at {window[1]}x{window[2]})")
    finally:
        chromium.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
