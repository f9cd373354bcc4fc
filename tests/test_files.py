"""Atomic writes: a file is replaced whole or left as it was, and no temporary file is left behind."""

import os

import pytest

from engine.errors import LabError
from engine.files import atomic_write, check_writable_folder, write_text
from engine.jsonl import write_json_lines


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "keep.jsonl"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as fh:
        fh.write("half a file")
        raise RuntimeError("the run failed")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["keep.jsonl"]


def test_a_write_that_ends_replaces_the_file_with_the_usual_permissions(tmp_path):
    path = tmp_path / "out.md"
    write_text(path, "new ✓\n")
    assert path.read_text(encoding="utf-8") == "new ✓\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with atomic_write(tmp_path / "out.bin", "wb") as fh:
        fh.write(b"\x00\x01")
    assert (tmp_path / "out.bin").read_bytes() == b"\x00\x01"


def test_a_generator_that_fails_midway_leaves_the_jsonl_file_as_it_was(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_json_lines(path, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise LabError("bad row")

    with pytest.raises(LabError):
        write_json_lines(path, rows())
    assert path.read_text() == '{"a": 1}\n'


def test_a_missing_folder_is_refused_by_name_and_not_created(tmp_path):
    with pytest.raises(LabError, match=r"--out .*nope/x.jsonl: the folder .*nope does not exist"):
        check_writable_folder(tmp_path / "nope" / "x.jsonl", "--out")
    with pytest.raises(LabError, match="does not exist"):
        write_text(tmp_path / "nope" / "x.md", "text")
    assert not (tmp_path / "nope").exists()
    with pytest.raises(LabError, match="is a folder"):
        check_writable_folder(tmp_path)
