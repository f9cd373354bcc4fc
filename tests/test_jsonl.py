"""The JSONL reader: every bad line named as file:line (or handed to on_bad and skipped), memory bounded."""

import pytest

from engine.errors import LabError
from engine.jsonl import MAX_LINE_BYTES, json_lines


def read(path):
    bad: list[tuple[int, str]] = []
    good = list(json_lines(path, on_bad=lambda line, reason: bad.append((line, reason))))
    return good, bad


def test_bytes_that_are_not_utf8_name_the_line_and_can_be_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n\n{"c": 3}\n')
    with pytest.raises(LabError, match=r"t\.jsonl:2: not UTF-8 \(byte 0xe9 at column 11\)"):
        list(json_lines(path))
    assert read(path) == ([(1, {"a": 1}), (4, {"c": 3})], [(2, "not UTF-8 (byte 0xe9 at column 11)")])


def test_deeply_nested_brackets_are_a_bad_line_not_a_recursion_error(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + '\n{"ok": true}\n')
    with pytest.raises(LabError, match=r"t\.jsonl:1: not usable JSON \(brackets nested too deeply\)"):
        list(json_lines(path))
    assert read(path) == ([(2, {"ok": True})], [(1, "not usable JSON (brackets nested too deeply)")])


def test_a_line_over_the_limit_is_refused_and_the_next_lines_keep_their_numbers(tmp_path):
    path = tmp_path / "t.jsonl"
    with open(path, "wb") as fh:
        fh.write(b'{"a": 1}\n"' + b"x" * (MAX_LINE_BYTES + 10) + b'"\n{"b": 2}')
    with pytest.raises(LabError, match=r"t\.jsonl:2: line of 16,777,229 bytes, over the limit of 16 MiB"):
        list(json_lines(path))
    good, bad = read(path)
    assert good == [(1, {"a": 1}), (3, {"b": 2})]
    assert [line for line, _ in bad] == [2]


def test_not_json_and_missing_files(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1}\n{nope\n')
    with pytest.raises(LabError, match=r"t\.jsonl:2: not valid JSON"):
        list(json_lines(path))
    with pytest.raises(LabError, match="no such file"):
        list(json_lines(tmp_path / "missing.jsonl"))
