"""reportgen kept running for the command line, as LibreOffice is kept for the builds.

Python's start and reportgen's imports take about half a second of every command: a quarter of
a one-project rebuild. So a command that found no kept reportgen leaves one
behind when it ends: a process that has imported everything and waits for the next command
(``REPORTGEN_KEEP_REPORTGEN`` seconds, 600 by default; 0 keeps none). The next command does not
import reportgen: it hands that process its arguments, working folder, environment, umask and
its standard input, output and error (the open files themselves, over a Unix socket), and the
kept process forks. The fork runs the command as this process would have, writes to the same
terminal or pipes, and sends back the exit code; Ctrl-C and ``kill`` reach it through the
command. Should the command be killed outright, the fork is stopped as if interrupted.

A kept reportgen serves only commands that would run the same code the same way: the same
Python with the same flags, the same reportgen (its code digest), the same installed packages
(the modification times of the folders Python imports from), the same locale and Python
settings, and the same user. Anything else finds no kept process under its key and runs here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time

TYPE_CHECKING = False  # typing itself is not imported: a command handed over does without it (4 ms)
if TYPE_CHECKING:
    from typing import NoReturn

KEEP_VARIABLE = "REPORTGEN_KEEP_REPORTGEN"
KEEP_SECONDS = 600.0
KEEP_LIMIT = 86400.0
# The commands that end: all but ``serve`` (tests/test_resident.py compares with the command line).
SERVED = ("build", "validate", "score", "fields", "new", "import", "regions", "region", "templates")
_FORWARDED_SIGNALS = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM, signal.SIGHUP: signal.SIGTERM}
_REQUEST_LIMIT = 16 << 20  # arguments and environment; far above any real command


def run(prog_name: str | None = None) -> NoReturn:
    """The ``reportgen`` command: handed to a kept reportgen when one answers, run here otherwise
    (and then a kept one started for the next command)."""
    argv = sys.argv
    try:
        key = _key() if _wanted(argv[1:]) else None
    except ValueError as exc:  # a wrong REPORTGEN_KEEP_REPORTGEN: said before anything is done
        print(f"错误：{exc}", file=sys.stderr)
        os._exit(1)
    if key is not None:
        try:
            code = _forward(_address(key), argv, prog_name)
        except KeyboardInterrupt:  # before the kept one had the command: nothing was done
            print("已中断。", file=sys.stderr)
            os._exit(130)
        if code is not None:
            os._exit(code)
    from .cli import run as run_here

    run_here(prog_name, before_exit=(lambda _code: _start(key)) if key is not None else None)


def serving() -> int | None:
    """The process id of the kept reportgen that would run this process's commands, if any."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect(_address(_key()))
            pid, uid = _peer(connection)
        except OSError:
            return None
    return pid if uid == os.getuid() else None


def keep_seconds() -> float:
    """``KEEP_SECONDS``, or what ``REPORTGEN_KEEP_REPORTGEN`` says (``seconds_from``)."""
    return seconds_from(KEEP_VARIABLE, KEEP_SECONDS, "命令结束后不保持 reportgen 运行")


def seconds_from(variable: str, default: float, zero_means: str) -> float:
    """How long to keep something running, from the environment ``variable`` (``default``
    where it is unset or empty): 0 to ``KEEP_LIMIT`` seconds, as ``--keep-libreoffice``;
    ValueError, in words for the clerk, for anything else: a typo must not pass for a choice."""
    text = os.environ.get(variable, "")
    if not text.strip():
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= KEEP_LIMIT:  # also NaN
        raise ValueError(f"环境变量 {variable} 应为 0 到 {KEEP_LIMIT:g} 之间的秒数"
                         f"（0 表示{zero_means}），现在是「{text}」")
    return seconds


def _wanted(args: list[str]) -> bool:
    """Commands that end (``SERVED``), on Linux (fork, abstract sockets, peer credentials)."""
    if keep_seconds() <= 0 or not sys.platform.startswith("linux"):
        return False
    words = iter(args)
    for word in words:
        if word == "--regions":
            next(words, None)
        elif not word.startswith("-"):
            return word in SERVED
    return False


def _key() -> str:
    """What a kept reportgen must share with this command to run it as this process would."""
    from . import code_digest

    folders = _import_folders()
    stamps = []
    for folder in folders:
        with contextlib.suppress(OSError):
            stamps.append(os.stat(folder).st_mtime_ns)
    settings = sorted((name, value) for name, value in os.environ.items()
                      if name.startswith(("PYTHON", "LC_")) or name == "LANG")
    return hashlib.sha256(json.dumps([
        sys.executable, sys.version, repr(sys.flags), folders, stamps, settings, os.getuid(), code_digest(),
    ]).encode()).hexdigest()


def _import_folders() -> list[str]:
    """Where Python imports from, but the working folder (``python -m`` puts it first, ``-c`` as
    ""), unless reportgen itself comes from there: a kept reportgen serves commands from every folder."""
    cwd = _cwd()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folders = [cwd if entry in ("", os.curdir) else entry for entry in sys.path]
    return [entry for entry in folders if entry is not None and (entry != cwd or entry == here)]


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _address(key: str) -> bytes:
    """An abstract socket (Linux): no file to clean up, gone with the process; whoever holds it
    is checked to be this user (``_same_user``)."""
    return b"\0reportgen-%d-%s" % (os.getuid(), key[:32].encode())


def _peer(connection: socket.socket) -> tuple[int, int]:
    """The process id and user id at the other end."""
    pid, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize("3i")))
    return pid, uid


def _same_user(connection: socket.socket) -> bool:
    return _peer(connection)[1] == os.getuid()


# --- the command's side ------------------------------------------------------------------------


def _forward(address: bytes, argv: list[str], prog_name: str | None) -> int | None:
    """The exit code of the command run by a kept reportgen; None when none ran it."""
    cwd = _cwd()
    streams = (sys.stdin, sys.stdout, sys.stderr)
    if cwd is None or any(stream is None for stream in streams):
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return None
    request = json.dumps({
        "argv": argv, "prog_name": prog_name, "cwd": cwd, "env": dict(os.environ), "umask": _umask(),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "streams": [[stream.encoding, stream.errors, stream.line_buffering] for stream in streams],
    }).encode()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(address)
        if _same_user(connection):
            socket.send_fds(connection, [struct.pack("!I", len(request)), request], [0, 1, 2])
            answers = connection.makefile("rb")
            started = answers.readline()  # nothing: it went away before running anything
        else:
            started = b""
    except OSError:
        started = b""
    if not started:
        connection.close()
        return None
    pid = json.loads(started)["pid"]  # the connection stays open until this process ends: the fork watches it
    for received, sent in _FORWARDED_SIGNALS.items():
        signal.signal(received, lambda _number, _frame, sent=sent: _signal(pid, sent))
    try:
        ended = answers.readline()
    except OSError:
        ended = b""
    if not ended:
        print("reportgen 内部错误：保持运行的 reportgen 未报告结果就结束了（设置 "
              f"{KEEP_VARIABLE}=0 可不使用它）", file=sys.stderr)
        return 3
    return int(json.loads(ended)["exit"])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _signal(pid: int, number: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, number)


def _start(key: str) -> None:
    """A kept reportgen for the next command: started in the background, in a session of its
    own, holding none of this command's files (a pipe reader would otherwise wait for it)."""
    import subprocess  # only here: the command that hands itself over does without it

    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, *subprocess._args_from_interpreter_flags(), "-c",  # type: ignore[attr-defined]
             "import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
             "from reportgen.resident import serve; serve(sys.argv[2], float(sys.argv[3]))",
             json.dumps(_import_folders()),
             key, str(keep_seconds())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd="/", start_new_session=True)


# --- the kept process's side -------------------------------------------------------------------


def serve(key: str, seconds: float) -> None:
    """Import everything, then fork for each command until ``seconds`` pass without one."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(_address(key))  # taken: another one is kept already
    except OSError:
        return
    if _key() != key:  # started otherwise than the command (a Python option not passed on)
        return
    _import_everything()
    if _key() != key:  # reportgen changed while it was imported
        return
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # forks reaped by the system; they outlive this one if need be
    listener.listen(16)
    last = time.monotonic()
    while (left := seconds - (time.monotonic() - last)) > 0:
        if select.select([listener], [], [], left)[0]:
            connection, _ = listener.accept()
            with connection:
                if _fork_for(connection, listener):  # a connection without a command (``serving``) is no use
                    last = time.monotonic()


def _import_everything() -> None:
    """Every module a command may import, before any command: each fork starts from here."""
    import importlib
    import pkgutil

    from . import __path__ as package_path

    for module in pkgutil.iter_modules(package_path):
        if module.name not in ("__main__", "resident", "serve"):
            importlib.import_module(f"reportgen.{module.name}")
    for name in ("_strptime", "docx.enum.section", "docx.opc.constants", "docx.section", "docxcompose.composer",
                 "pypdf", "rich.console", "rich.progress", "yaml.cyaml"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # The pattern of what the fonts draw, compiled into re's cache, which is keyed by the pattern
    # itself: a command whose fonts give the same pattern finds it there (30 ms), others compile
    # their own. The fonts are looked at again by every command.
    from . import glyphs

    glyphs.coverage()
    glyphs.coverage.cache_clear()
    glyphs.font_listing.cache_clear()
    _prepare_templates()
    from . import pdfpages

    pdfpages.key_steps()  # the table that re-encrypting Type 1 fonts needs for every chunk converted (20 ms)


def _prepare_templates() -> None:
    """The built-in regions' forms and the 汇总表, compiled (30–50 ms each, once per command that
    renders): ``render`` keeps them by path, modification time and size, so that a command whose
    templates are the same files uses them and one whose are not compiles its own."""
    from . import render
    from .bundle import summary_template
    from .errors import ReportgenError
    from .region_folders import TEMPLATE_FILE, templates_root

    with contextlib.suppress(ReportgenError, OSError):
        for template in [*sorted(templates_root().glob(f"*/{TEMPLATE_FILE}")), summary_template()]:
            with contextlib.suppress(ReportgenError):
                render.prepared(template)


def _fork_for(connection: socket.socket, listener: socket.socket) -> bool:
    """Read one command and fork to run it; False for a request not from this user, or not whole."""
    fds: list[int] = []
    try:
        connection.settimeout(5)
        if not _same_user(connection):
            return False
        head, fds, _, _ = socket.recv_fds(connection, 4, 3)
        if len(head) < 4 or len(fds) != 3 or (size := struct.unpack("!I", head)[0]) > _REQUEST_LIMIT:
            return False
        body = bytearray()
        while len(body) < size:
            piece = connection.recv(size - len(body))
            if not piece:
                return False
            body += piece
        request = json.loads(body)
        if os.fork() == 0:
            listener.close()
            _run_forked(connection, request, fds)  # never returns
        return True
    except (OSError, ValueError):
        return False
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _run_forked(connection: socket.socket, request: dict, fds: list[int]) -> NoReturn:
    """In the fork: become the command (its files, folder, environment), run it, report."""
    started = False
    try:
        connection.settimeout(None)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        sys.stdin, sys.stdout, sys.stderr = (
            open(fd, mode, encoding=encoding, errors=errors, closefd=False)  # noqa: SIM115 (the command's own)
            for fd, mode, (encoding, errors, _) in zip((0, 1, 2), "rww", request["streams"], strict=True))
        sys.stdout.reconfigure(line_buffering=request["streams"][1][2])
        sys.stderr.reconfigure(line_buffering=request["streams"][2][2], write_through=True)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()  # TZ: the command's dates
        os.umask(request["umask"])
        with contextlib.suppress(OSError):  # `nice reportgen build`; a higher priority is not granted
            os.setpriority(os.PRIO_PROCESS, 0, request["nice"])
        sys.argv = request["argv"]
        import tempfile

        tempfile.tempdir = None  # chosen again from this command's environment
        connection.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        started = True
        _stop_when_gone(connection)
        from .cli import run as run_here

        run_here(request["prog_name"], before_exit=lambda exit_code: _report(connection, exit_code))
    except BaseException:  # nothing may return into the kept process's loop
        with contextlib.suppress(BaseException):  # not started: the command runs it itself
            if started and os.environ.get("REPORTGEN_DEBUG"):
                import traceback

                traceback.print_exc()
            if started:
                print("reportgen 内部错误：保持运行的 reportgen 未能运行此命令"
                      f"（设置 {KEEP_VARIABLE}=0 可不使用它）", file=sys.stderr)
    os._exit(3)


def _report(connection: socket.socket, code: int) -> None:
    with contextlib.suppress(OSError):
        connection.sendall(json.dumps({"exit": code}).encode() + b"\n")


def _stop_when_gone(connection: socket.socket) -> None:
    """A command killed outright (its connection closed) interrupts the fork, as Ctrl-C would.
    The kernel says so with SIGIO (``O_ASYNC``) rather than a thread waiting on the connection:
    a process with threads does not fork, and a build forks a helper to check a large tree
    (``validate.CheckCache.check_ahead``)."""
    import fcntl

    hang_up = select.POLLRDHUP | select.POLLHUP | select.POLLERR
    watch = select.poll()
    watch.register(connection, hang_up)

    def closed(_number: int | None = None, _frame: object = None) -> None:
        if any(events & hang_up for _, events in watch.poll(0)):  # not some other news of the connection
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGIO, closed)
    fd = connection.fileno()
    fcntl.fcntl(fd, fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
    closed()  # closed before the signal was asked for
