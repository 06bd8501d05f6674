"""``reportgen serve``: a local web page where a clerk fills in, checks and builds the forms.

The page is served on 127.0.0.1 only (another address only when asked for, with a warning),
needs nothing from the internet (its script and style are in ``static/``) and reads and writes
only the project files of its data folder; builds go to the output folder, as ``reportgen build``.
"""

from __future__ import annotations

import socket
import threading
import webbrowser
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host headers the server answers to: its own address and port, by IP or as localhost."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if host not in LOOPBACK:
        names.add(f"[{host}]" if ":" in host else host)
        if host in ("0.0.0.0", "::"):
            names.add(socket.gethostname().lower())
            names.update(_addresses())
    return {f"{name}:{port}" for name in names}


def _addresses() -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return set()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: a free one, chosen by the system)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    return sock


def make_server(data: Path, out: Path | None, sock: socket.socket):
    """A uvicorn server for the data folder on a bound socket; ``server.run(sockets=[sock])``."""
    import uvicorn

    from .app import create_app
    from .workspace import Workspace

    host, port = sock.getsockname()[:2]
    workspace = Workspace(data, out)
    app = create_app(workspace, allowed_hosts(host, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    return uvicorn.Server(config), workspace


def run_server(data: Path, out: Path | None, host: str, port: int, open_browser: bool, say=print) -> None:
    """Serve until Ctrl-C."""
    from ..convert import office_allocator
    from ..errors import UsageError

    office_allocator()  # a wrong REPORTGEN_LIBREOFFICE_MALLOC is said now, not at the first build
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise UsageError(f"无法在 {host}:{port} 上监听：{exc.strerror or exc}；可用 --port 换一个端口") from exc
    server, workspace = make_server(data, out, sock)
    actual = sock.getsockname()[1]
    url = f"http://127.0.0.1:{actual}/" if host in LOOPBACK or host in ("0.0.0.0", "::") else f"http://{host}:{actual}/"
    if host not in LOOPBACK:
        say(f"警告：正在监听 {host}，本机以外的电脑也能打开此页面，并读写 {workspace.data} 中的项目文件。")
    say(f"reportgen serve：数据文件夹 {workspace.data}，输出文件夹 {workspace.out}")
    say(f"请在浏览器中打开 {url}（按 Ctrl-C 结束）")
    if open_browser:
        threading.Timer(0.5, webbrowser.open, [url]).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn hands Ctrl-C and kill back once it has stopped
        pass
    finally:
        workspace.close()
    say("reportgen serve 已结束。")
