"""Every file a device function reads, opened one way, so that nothing at its path can stop the function.

The functions run unattended for months and read files that others put in place: the station file
(install.sh), the model artifact's metadata.json and model.tflite (the model component), their own
reading history, the CPU thermal zone (the kernel). Each is read here:
- opened non-blocking: a FIFO in the file's place would otherwise block the open until a writer comes;
- a regular file only, checked on the opened descriptor (no check-then-open race): no FIFO, socket,
  folder, or device such as /dev/zero, which never ends;
- at most `max_bytes` read: a larger file is refused, never read whole;
- every way the content fails to decode (not UTF-8, not JSON, nested deeper than the parser
  recurses, an integer with more digits than Python converts) is the one error UnusableFile, whose
  message is one short line: the path and what is wrong.
The JSON value is the caller's to validate. Its numbers are as JSON gave them: an integer may have
400 digits, which no float holds; `contracts.finite_number` says whether a value is a finite float.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def replace_whole(path: Path, write: Callable[[IO], None], *, binary: bool = False, durable: bool = False) -> None:
    """Put a new file at `path` in one rename, so that no reader ever sees half of it: `write` fills a temporary
    file in the same folder (the rename stays on one file system), which then replaces `path`; on any failure the
    temporary file is removed and what was at `path` stays. `durable`: on disk before the rename. Text is UTF-8,
    newlines as written. An OSError is the caller's to report."""
    text = {} if binary else {"encoding": "utf-8", "newline": ""}
    scratch = tempfile.NamedTemporaryFile("wb" if binary else "w", dir=path.parent, prefix=f".{path.name}.",
                                          suffix=".partial", delete=False, **text)
    try:
        with scratch:
            write(scratch)
            if durable:
                scratch.flush()
                os.fsync(scratch.fileno())
        os.replace(scratch.name, path)
    except BaseException:
        Path(scratch.name).unlink(missing_ok=True)
        raise


class UnusableFile(Exception):
    """The file cannot be used; the message is "<path>: <why>"."""


class FileMissing(UnusableFile):
    """Nothing at the path: for some files (the station file, a first start's history) a documented
    default applies."""


def _strerror(error: OSError) -> str:
    return error.strerror or type(error).__name__


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The content of the regular file at `path`, if it is at most `max_bytes` long."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):  # NotADirectoryError: a parent is a file
        raise FileMissing(f"{path}: no such file") from None
    except OSError as error:
        raise UnusableFile(f"{path}: {_strerror(error)}") from None
    try:
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise UnusableFile(f"{path}: not a regular file")
            content = handle.read(max_bytes + 1)
    except OSError as error:
        raise UnusableFile(f"{path}: {_strerror(error)}") from None
    if len(content) > max_bytes:
        raise UnusableFile(f"{path}: larger than {max_bytes} bytes")
    return content


def read_text(path: Path, max_bytes: int) -> str:
    """read_bytes, decoded as UTF-8."""
    try:
        return read_bytes(path, max_bytes).decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnusableFile(f"{path}: not UTF-8 text (byte {error.start})") from None


class InvalidJson(ValueError):
    """Text that is not JSON a caller can hold; the message says why in a few words."""


def parse_json(text: str, **hooks: Any) -> Any:
    """`text` parsed by json.loads (with `hooks`, which may raise InvalidJson themselves); every way it
    fails is one InvalidJson: not JSON, nested deeper than the parser recurses, or an integer with more
    digits than Python converts."""
    try:
        return json.loads(text, **hooks)
    except InvalidJson:
        raise
    except json.JSONDecodeError as error:
        raise InvalidJson(f"not JSON (line {error.lineno} column {error.colno})") from None
    except RecursionError:
        raise InvalidJson("JSON nested deeper than the parser recurses") from None
    except ValueError:  # the only other: an integer longer than sys.get_int_max_str_digits()
        raise InvalidJson("JSON holding a number too long to convert") from None


def read_json(path: Path, max_bytes: int) -> Any:
    """read_text, parsed as JSON."""
    text = read_text(path, max_bytes)
    try:
        return parse_json(text)
    except InvalidJson as problem:
        raise UnusableFile(f"{path}: {problem}") from None
