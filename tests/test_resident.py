"""A kept reportgen (``reportgen.resident``) runs a command as the command runs it itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reportgen import resident

from .conftest import BASE_PROJECT, kept_reportgen_pid, own_kept_reportgen
from .test_faults import wait_for

IMPORTTIME = ("-X", "importtime")


def command(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, bool]:
    """The command's result (import lines taken out of its errors), and whether the command's own
    process imported the command line (``-X importtime`` lists every import as it happens: a
    command run by a kept reportgen imports none of it)."""
    done = subprocess.run([sys.executable, *IMPORTTIME, "-m", "reportgen", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    imports = [line for line in done.stderr.splitlines(keepends=True) if line.startswith("import time:")]
    done.stderr = "".join(line for line in done.stderr.splitlines(keepends=True) if line not in imports)
    return done, any(line.rstrip().endswith(" reportgen.cli") for line in imports)


@pytest.fixture
def own_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment no kept reportgen serves yet (``own_kept_reportgen``); those started for
    it end with the test."""
    own_kept_reportgen(monkeypatch)
    env = dict(os.environ)
    yield env
    for flags in (IMPORTTIME, ()):
        pid = kept_reportgen_pid(env, *flags, cwd=tmp_path)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)


def kept_pid(env: dict[str, str], cwd: Path) -> int | None:
    return kept_reportgen_pid(env, *IMPORTTIME, cwd=cwd)


def test_a_kept_reportgen_runs_the_next_command_with_the_same_output(tmp_path: Path, own_key: dict) -> None:
    (tmp_path / "项目").mkdir()
    (tmp_path / "项目" / "好.yaml").write_text(BASE_PROJECT, encoding="utf-8")
    (tmp_path / "项目" / "坏.yaml").write_text(BASE_PROJECT.replace("年度: 2022", "年度: 二〇二二"), encoding="utf-8")
    first, imported_here = command("validate", "项目", cwd=tmp_path, env=own_key)
    assert imported_here  # none was kept yet: run here, and one started for the next command
    assert first.returncode == 1
    assert "项目/坏.yaml:2:" in first.stdout
    wait_for(lambda: kept_pid(own_key, tmp_path) is not None)
    second, imported_here = command("validate", "项目", cwd=tmp_path, env=own_key)
    assert not imported_here
    assert (second.returncode, second.stdout, second.stderr) == (first.returncode, first.stdout, first.stderr)


def test_the_kept_reportgen_takes_the_command_s_folder_environment_and_usage(tmp_path: Path, own_key: dict) -> None:
    command("regions", cwd=tmp_path, env=own_key)
    wait_for(lambda: kept_pid(own_key, tmp_path) is not None)
    # made by a command it runs, in the command's working folder
    made, imported_here = command("region", "new", "county", "--from", "national", "--into", "mine", cwd=tmp_path,
                                  env=own_key)
    assert (made.returncode, imported_here) == (0, False), made.stderr
    assert (tmp_path / "mine" / "county" / "rules.yaml").is_file()
    # a setting it did not start with, read by the command it runs
    listed, imported_here = command("regions", cwd=tmp_path, env={**own_key, "REPORTGEN_REGIONS": str(tmp_path / "mine")})
    assert (listed.returncode, imported_here) == (0, False)
    assert any(line.startswith("county") for line in listed.stdout.splitlines()), listed.stdout
    plain, _ = command("regions", cwd=tmp_path, env=own_key)
    assert not any(line.startswith("county") for line in plain.stdout.splitlines())
    # a wrong command line: the same message, naming the program as it was called, and exit 2
    wrong, imported_here = command("build", "--shard", "5/2", cwd=tmp_path, env=own_key)
    alone, _ = command("build", "--shard", "5/2", cwd=tmp_path, env={**own_key, resident.KEEP_VARIABLE: "0"})
    assert imported_here is False
    assert wrong.returncode == alone.returncode == 2
    assert wrong.stderr == alone.stderr
    assert "Usage: python -m reportgen build" in wrong.stderr


def test_a_kept_reportgen_ends_when_unused(tmp_path: Path, own_key: dict) -> None:
    env = {**own_key, resident.KEEP_VARIABLE: "3"}
    command("regions", cwd=tmp_path, env=env)
    wait_for(lambda: kept_pid(env, tmp_path) is not None)  # asking does not count as using it
    wait_for(lambda: kept_pid(env, tmp_path) is None, seconds=20)


def test_no_kept_reportgen_is_started_or_used_when_switched_off(tmp_path: Path, own_key: dict) -> None:
    env = {**own_key, resident.KEEP_VARIABLE: "0"}
    for _ in range(2):
        done, imported_here = command("regions", cwd=tmp_path, env=env)
        assert (done.returncode, imported_here) == (0, True)
    time.sleep(1)
    assert kept_pid(own_key, tmp_path) is None


@pytest.mark.parametrize("value", ["abc", "-1", "inf", "nan", "86401", "10 分钟"])
def test_a_wrong_keep_setting_is_refused_before_anything_is_written(tmp_path: Path, value: str) -> None:
    (tmp_path / "项目").mkdir()
    (tmp_path / "项目" / "好.yaml").write_text(BASE_PROJECT, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "reportgen", "build", "项目", "-o", "out"], cwd=tmp_path,
                          env={**os.environ, resident.KEEP_VARIABLE: value}, capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"错误：环境变量 REPORTGEN_KEEP_REPORTGEN 应为 0 到 86400 之间的秒数"
                           f"（0 表示命令结束后不保持 reportgen 运行），现在是「{value}」\n")
    assert not (tmp_path / "out").exists()


def test_the_key_changes_with_the_code_and_the_installed_packages(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import reportgen

    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    before = resident._key()
    assert resident._key() == before
    (tmp_path / "newly_installed").mkdir()  # what pip does to site-packages
    after_install = resident._key()
    assert after_install != before
    monkeypatch.setattr(reportgen, "code_digest", lambda: "another reportgen")
    assert resident._key() != after_install


def test_only_commands_that_end_are_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    from reportgen.cli import main

    assert sorted([*resident.SERVED, "serve"]) == sorted(main.commands)
    monkeypatch.setenv(resident.KEEP_VARIABLE, "60")
    assert resident._wanted(["build", "data"])
    assert resident._wanted(["--regions", "serve", "validate"])  # the folder's name is no command
    assert not resident._wanted(["serve"])
    assert not resident._wanted(["--help"])
    monkeypatch.setenv(resident.KEEP_VARIABLE, "0")
    assert not resident._wanted(["build", "data"])


def test_the_kept_reportgen_holds_the_built_in_templates_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled before any command (30–50 ms each), under the key ``render`` looks them up by:
    a fork renders the built-in forms and the 汇总表 without compiling them again."""
    from reportgen import render
    from reportgen.bundle import summary_template
    from reportgen.region_folders import templates_root

    monkeypatch.setattr(render, "_COMPILED", {})
    resident._prepare_templates()
    expected = [*templates_root().glob("*/form.docx"), summary_template()]
    assert len(expected) > 8
    assert {path for path, _, _ in render._COMPILED} == {str(path.resolve()) for path in expected}
    compiled = render._COMPILED.copy()
    assert all(render.prepared(path) is compiled[key] for path in expected
               for key in compiled if key[0] == str(path.resolve()))


_WATCHED = """
import signal, socket, threading, time
from reportgen import resident
ours, theirs = socket.socketpair()
stopped = []
signal.signal(signal.SIGTERM, lambda *_: stopped.append(time.monotonic()))
resident._stop_when_gone(ours)
print(threading.active_count())
theirs.send(b"x")  # something else to read: not a close
time.sleep(0.3)
print(len(stopped))
theirs.close()
deadline = time.monotonic() + 10
while not stopped and time.monotonic() < deadline:
    time.sleep(0.01)
print(len(stopped))
"""


def test_a_fork_learns_that_its_command_was_killed_without_a_thread() -> None:
    """The connection's close stops the fork (SIGTERM to itself), and no thread waits for it: a
    fork with threads could not fork the helper that checks half of a large tree."""
    done = subprocess.run([sys.executable, "-c", _WATCHED], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["1", "0", "1"]
