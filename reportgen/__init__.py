"""reportgen: 项目支出绩效自评表 from YAML — load → validate → score → render → convert → bundle."""

import functools

__version__ = "0.1.0"


@functools.cache
def code_digest() -> str:
    """The sha256 of reportgen's own code (its modules and its font settings), which the build's
    fingerprints and the check cache depend on besides the inputs. The version alone would not
    do: code updated without a new version number, a corrected rule say, must not leave what
    the old code built or found standing as if nothing had changed."""
    import hashlib
    from pathlib import Path

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256(__version__.encode())
    for path in sorted([*root.rglob("*.py"), *root.glob("fonts/*.conf")]):
        digest.update(b"\0%s\0%s" % (path.relative_to(root).as_posix().encode(), path.read_bytes()))
    return digest.hexdigest()
