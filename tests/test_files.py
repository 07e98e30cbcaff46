"""Outputs a kill cannot corrupt: atomic files, and appended JSON-lines logs without torn lines."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from reward.files import append_jsonl, atomic_write, read_jsonl


def _lines(path):
    return path.read_text().splitlines()


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("half of the new")
        raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_an_append_after_a_torn_line_cuts_it_off(tmp_path):
    log = tmp_path / "log.jsonl"
    append_jsonl(log, [{"step": 1}, {"step": 2}])
    with log.open("a") as f:
        f.write('{"step": 3, "lo')  # what a kill in the middle of a write leaves
    assert read_jsonl(log) == [{"step": 1}, {"step": 2}]  # the reader skips the torn line
    append_jsonl(log, [{"step": 3}])
    assert [json.loads(line) for line in _lines(log)] == [{"step": 1}, {"step": 2}, {"step": 3}]


WRITER = """
import sys
from reward.files import append_jsonl
i = 0
while True:
    append_jsonl(sys.argv[1], [{"step": i, "payload": "x" * 4096}])
    i += 1
"""


def test_a_log_appended_by_a_killed_process_keeps_whole_lines_only(tmp_path):
    log = tmp_path / "log.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log)])
    deadline = time.monotonic() + 60
    while (not log.exists() or log.stat().st_size < 200_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    records = read_jsonl(log)
    assert len(records) > 10 and [r["step"] for r in records] == list(range(len(records)))
    append_jsonl(log, [{"step": "after"}])  # the next run appends to the same log
    parsed = [json.loads(line) for line in _lines(log)]  # every line parses: none is torn
    assert parsed[-1] == {"step": "after"} and parsed[:-1] == records
