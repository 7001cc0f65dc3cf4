"""device_code.files: whatever lies at a path a device function reads, the function gets the content
or one UnusableFile (FileMissing when nothing is there), promptly, with a one-line reason."""
from __future__ import annotations

import json
import os
import socket

import pytest
from device_test_support import returns_promptly
from hypothesis import given
from hypothesis import strategies as st

from device_code.files import FileMissing, UnusableFile, read_bytes, read_json, read_text, replace_whole

CAP = 10_000


def test_a_small_json_file_is_read(tmp_path):
    path = tmp_path / "station.json"
    path.write_text('{"altitude_m": 512.5}')
    assert read_json(path, CAP) == {"altitude_m": 512.5}
    assert read_text(path, CAP) == '{"altitude_m": 512.5}' and read_bytes(path, 21) == b'{"altitude_m": 512.5}'


@pytest.mark.parametrize("place", ["missing", "under a file"])
def test_nothing_at_the_path_is_file_missing(tmp_path, place):
    path = tmp_path / "missing.json" if place == "missing" else tmp_path / "file" / "missing.json"
    (tmp_path / "file").write_text("")
    with pytest.raises(FileMissing, match="no such file"):
        read_json(path, CAP)


def unix_socket(path):
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    return listener


@pytest.mark.parametrize("make", [os.mkfifo, os.mkdir, unix_socket, lambda path: "/dev/zero"],
                         ids=["a FIFO", "a folder", "a socket", "a device that never ends"])
def test_what_is_no_regular_file_is_refused_without_blocking(tmp_path, make):
    path = tmp_path / "history.json"
    made = make(path)
    path = made if isinstance(made, str) else path
    with pytest.raises(UnusableFile) as refused:
        returns_promptly(lambda: read_bytes(path, CAP))
    assert not isinstance(refused.value, FileMissing) and str(refused.value).startswith(str(path))
    if isinstance(made, socket.socket):
        made.close()


def test_a_file_larger_than_the_cap_is_refused(tmp_path):
    path = tmp_path / "metadata.json"
    path.write_bytes(b" " * 10 + b"1")
    assert read_json(path, 11) == 1
    with pytest.raises(UnusableFile, match="larger than 10 bytes"):
        read_json(path, 10)


@pytest.mark.parametrize("content, reason", [
    (b"", "not JSON"),
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not UTF-8 text"),
    (b"[" * 5000, "nested deeper"),
    (b"1" * 5000, "number too long"),
    (json.dumps({"readings": [[1] * 3]}).encode()[:-1], "not JSON"),
])
def test_content_no_parser_can_hold_is_one_short_reason(tmp_path, content, reason):
    path = tmp_path / "history.json"
    path.write_bytes(content)
    with pytest.raises(UnusableFile, match=reason) as refused:
        read_json(path, CAP)
    assert not isinstance(refused.value, FileMissing)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < len(str(path)) + 100


# Bytes in general, and what breaks parsers: deep nesting, long numbers, broken encodings.
hostile_documents = (
    st.binary(max_size=200)
    | st.integers(0, 3000).map(lambda depth: b"[" * depth + b"]" * depth)
    | st.integers(0, 6000).map(lambda digits: b"[" + b"9" * digits + b"]")
    | st.tuples(st.sampled_from([b"[", b'{"a":', b"-", b'"\\u', b"1e", b"\xc3"]), st.integers(1, 3000)).map(
        lambda part: part[0] * part[1])
)


@given(content=hostile_documents)
def test_any_bytes_give_a_value_or_unusable_file(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("files") / "file.json"
    path.write_bytes(content)
    try:
        read_json(path, CAP)
    except UnusableFile as error:
        assert "\n" not in str(error)


def test_replace_whole_puts_the_new_file_in_one_rename_and_keeps_the_old_one_on_failure(tmp_path):
    target = tmp_path / "data.json"
    target.write_text("old")
    replace_whole(target, lambda file: file.write("new"), durable=True)
    assert target.read_text() == "new"

    def fails_halfway(file) -> None:
        file.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        replace_whole(target, fails_halfway)
    assert target.read_text() == "new" and sorted(path.name for path in tmp_path.iterdir()) == ["data.json"]
    replace_whole(target, lambda file: file.write(b"\x00bytes"), binary=True)
    assert target.read_bytes() == b"\x00bytes"
