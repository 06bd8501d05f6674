"""Helpers for the tests of reportgen serve: a server on a free loopback port, in a thread."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from reportgen.serve import bind, make_server
from reportgen.serve.workspace import Workspace

from .conftest import DATA

START_SECONDS = 10


@dataclass
class Running:
    url: str
    port: int
    workspace: Workspace

    def request(self, method: str, path: str, body: dict | bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
        """A raw request: the path is sent as given (no normalizing of ../ or %2e; only characters
        outside ASCII are percent-encoded, as a browser does)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = json.dumps(body).encode("utf-8") if isinstance(body, dict) else body
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        try:
            connection.request(method, quote(path, safe="/%?=&.:"), body=data, headers=sent)
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", errors="replace")
        finally:
            connection.close()

    def token(self) -> str:
        status, page = self.request("GET", "/")
        assert status == 200
        start = page.index('name="csrf-token" content="') + len('name="csrf-token" content="')
        return page[start : page.index('"', start)]

    def post(self, path: str, body: dict | bytes, origin: bool = True) -> tuple[int, dict]:
        headers = {"X-CSRF-Token": self.token()}
        if origin:
            headers["Origin"] = self.url.rstrip("/")
        status, text = self.request("POST", path, body, headers)
        return status, json.loads(text)


@contextlib.contextmanager
def serving(data: Path, out: Path) -> Iterator[Running]:
    """``reportgen serve`` on 127.0.0.1 with a free port, stopped afterwards."""
    sock = bind("127.0.0.1", 0)
    server, workspace = make_server(data, out, sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_SECONDS
    while not server.started:
        assert time.monotonic() < deadline, "reportgen serve did not start"
        time.sleep(0.02)
    port = sock.getsockname()[1]
    try:
        yield Running(f"http://127.0.0.1:{port}/", port, workspace)
    finally:
        server.should_exit = True
        thread.join(START_SECONDS)
        workspace.close()
        sock.close()


def copy_data(target: Path) -> Path:
    """The seed data folder, copied: the tests write into it."""
    shutil.copytree(DATA, target, ignore=shutil.ignore_patterns("regions"))
    return target
