#!/usr/bin/env python3
"""Asks rust-analyzer, over its language-server protocol, what an editor would: the type of a
capture inside a `remote!` body and of a parameter inside a `#[remote_fn]` body (hover), and
the methods offered after `capture.` inside a body (completion). Prints what it got and exits
non-zero if an answer is missing or wrong.

Needs the rust-analyzer binary (`rustup component add rust-analyzer`); not part of `.ci/run`,
which must not download toolchain components. Run from the workspace root:

    python3 tools/ide-check.py
"""

import json
import os
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE = os.path.join(ROOT, "examples", "functions.rs")
URI = "file://" + FILE


class Server:
    def __init__(self):
        self.proc = subprocess.Popen(
            ["rust-analyzer"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.next_id = 0
        self.replies = {}
        self.quiescent = threading.Event()
        self.lock = threading.Condition()
        threading.Thread(target=self.read, daemon=True).start()

    def send(self, message):
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def read(self):
        out = self.proc.stdout
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            message = json.loads(out.read(length))
            if "id" in message and "method" in message:
                # A request from the server (configuration, progress tokens): answer it.
                result = [{}] if message["method"] == "workspace/configuration" else None
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            elif "id" in message:
                with self.lock:
                    self.replies[message["id"]] = message
                    self.lock.notify_all()
            elif message.get("method") == "experimental/serverStatus":
                if message["params"].get("quiescent"):
                    self.quiescent.set()

    def request(self, method, params, timeout=120):
        self.next_id += 1
        ident = self.next_id
        self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        deadline = time.time() + timeout
        with self.lock:
            while ident not in self.replies:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(method)
                self.lock.wait(left)
            return self.replies.pop(ident)

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})


def position(text, marker, offset_in_marker):
    """The line and character of `marker`'s character `offset_in_marker` in `text`."""
    at = text.index(marker) + offset_in_marker
    line = text.count("\n", 0, at)
    character = at - (text.rfind("\n", 0, at) + 1)
    return {"line": line, "character": character}


def hover_text(server, text, marker, offset):
    reply = server.request(
        "textDocument/hover",
        {"textDocument": {"uri": URI}, "position": position(text, marker, offset)},
    )
    result = reply.get("result") or {}
    contents = result.get("contents", {})
    return contents.get("value", "") if isinstance(contents, dict) else str(contents)


def main():
    text = open(FILE).read()
    server = Server()
    server.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": "file://" + ROOT,
            "capabilities": {
                "textDocument": {
                    "hover": {"contentFormat": ["plaintext"]},
                    "completion": {"completionItem": {"snippetSupport": False}},
                },
                "experimental": {"serverStatusNotification": True},
            },
            "initializationOptions": {"cargo": {"buildScripts": {"enable": True}}},
        },
    )
    server.notify("initialized", {})
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": URI, "languageId": "rust", "version": 1, "text": text}},
    )
    if not server.quiescent.wait(600):
        print("rust-analyzer did not finish loading the workspace within 10 minutes")
        return 1
    failures = 0
    checks = [
        # (what, marker, offset of the hovered identifier in it, what the hover must show)
        ("a capture inside remote!", "words.iter()", 0, "Vec<String>"),
        ("a local of the body", "longest.len()", 0, "String"),
        ("a #[remote_fn] parameter", "text.split_whitespace()", 0, "String"),
        ("the value of remote!", "let counted =", 4, "usize"),
    ]
    for what, marker, offset, expected in checks:
        shown = hover_text(server, text, marker, offset)
        ok = expected in shown
        failures += not ok
        print(f"hover on {what}: {'ok' if ok else 'MISSING'} ({' '.join(shown.split())[:80]!r})")

    # Completion after `words.` inside the body, as an editor asks while the user types.
    # The user starts a new statement: the body is not valid Rust until it is finished.
    typing = "let first = words."
    edited = text.replace("let longest =", typing + "\n        let longest =", 1)
    server.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": URI, "version": 2},
            "contentChanges": [{"text": edited}],
        },
    )
    reply = server.request(
        "textDocument/completion",
        {"textDocument": {"uri": URI}, "position": position(edited, typing, len(typing))},
    )
    result = reply.get("result") or []
    items = result.get("items", []) if isinstance(result, dict) else result
    labels = {item["label"].split("(")[0] for item in items}
    for method in ["iter", "len", "push"]:
        ok = method in labels
        failures += not ok
        print(f"completion of `words.` offers `{method}`: {'ok' if ok else 'MISSING'}")
    server.proc.kill()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
