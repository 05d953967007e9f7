"""Loads a page in headless Chromium through chromedriver, waits for the demo's result, saves a
screenshot, and checks what the page shows. Standard library only (the WebDriver protocol is
plain JSON over HTTP).

    python3 browser/screenshot.py PAGE_URL OUT.png
"""
import base64
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

EXPECTED_RESULT = "result: ([42; 43], 44)"
CHROME_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run", "--window-size=1000,700",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}").get("value")


def main(page, out):
    port = free_port()
    driver = subprocess.Popen(["chromedriver", f"--port={port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as profile:
            caps = {"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": "/usr/bin/chromium",
                                       "args": CHROME_ARGS + [f"--user-data-dir={profile}"]},
            }}}
            session = call(base, "POST", "/session", caps)["sessionId"]
            try:
                call(base, "POST", f"/session/{session}/url", {"url": page})
                text = lambda id_: call(base, "POST", f"/session/{session}/execute/sync", {
                    "script": f"return (document.getElementById('{id_}') || {{}}).innerText || ''",
                    "args": []})
                deadline = time.time() + 20
                while time.time() < deadline and EXPECTED_RESULT not in text("result"):
                    if text("status").startswith("failed"):
                        break
                    time.sleep(0.1)
                shot = call(base, "GET", f"/session/{session}/screenshot")
                with open(out, "wb") as f:
                    f.write(base64.b64decode(shot))
                result, steps, status = text("result"), text("steps"), text("status")
            finally:
                call(base, "DELETE", f"/session/{session}")
    finally:
        driver.terminate()
        driver.wait(timeout=10)

    print(f"status: {status}\nsteps:\n{steps}\n{result}\nscreenshot: {out}")
    lines = [l for l in steps.splitlines() if l.strip()]
    ok = (EXPECTED_RESULT in result and len(lines) == 3
          and lines[0].startswith("server") and lines[2].startswith("server")
          and lines[1].startswith("peer-"))
    if not ok:
        sys.exit("the page does not show the demo's three steps and its result")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
