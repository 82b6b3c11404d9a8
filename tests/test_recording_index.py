"""The local recordings index (JSON lines): what liveman pages through, acks and prunes,
and what a restarted node reads to find recordings a crash left open."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from liveion.recorder.index import RecordingEntry, RecordingIndex, record_name


class FakeClock:
    """Injected time (µs) so ordering is decided by the test, not the machine."""

    def __init__(self, t: int = 1_718_200_000_000_000) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def entry(stream: str, record: str, **kw: object) -> RecordingEntry:
    fields: dict[str, object] = {
        "record": record, "stream": stream, "record_dir": f"{stream}/{record}",
        "mpd_path": f"{stream}/{record}/manifest.mpd", "start_ts": int(record) * 1_000_000,
        "node_alias": "node-a"}
    fields.update(kw)
    return RecordingEntry(**fields)  # type: ignore[arg-type]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_list_orders_by_update_and_pages_without_skipping(tmp_path: Path) -> None:
    clock = FakeClock()
    index = RecordingIndex(tmp_path / "index.json", clock=clock)
    index.upsert(entry("room1", "1718200000"))
    index.upsert(entry("room2", "1718200100"))
    index.upsert(entry("room1", "1718200200"))
    # All three were stored in the same clock microsecond: still distinct and ordered.
    stamps = [e.updated_at for e in index.list()]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    clock.t += 5_000_000
    index.update("room1", "1718200000", status="Completed", end_ts=clock.t,
                 duration_ms=42_000)

    keys = [e.key for e in index.list()]
    assert keys == ["room2/1718200100", "room1/1718200200", "room1/1718200000"]
    assert [e.key for e in index.list(stream="room1")] == ["room1/1718200200",
                                                           "room1/1718200000"]
    # Paging with limit 1 and since_ts = the last updated_at visits every entry once.
    seen: list[str] = []
    since = 0
    while page := index.list(since_ts=since, limit=1):
        seen.append(page[0].key)
        since = page[0].updated_at
    assert seen == keys
    done = index.get("room1", "1718200000")
    assert done is not None and done.status == "Completed" and done.duration_ms == 42_000
    assert done.to_session() == {
        "id": "1718200000", "stream": "room1", "start_ts": 1_718_200_000_000_000,
        "end_ts": clock.t, "duration_ms": 42_000,
        "mpd_path": "room1/1718200000/manifest.mpd", "status": "Completed"}
    assert "end_ts" not in index.list()[0].to_session()  # absent, like Live777, not null


def test_limit_zero_means_100(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / "index.json")
    for i in range(130):
        index.upsert(entry("s", str(1_718_200_000 + i)))
    assert len(index.list(limit=0)) == 100
    assert len(index.list(limit=120)) == 120
    assert len(index.list(limit=1000)) == 130


def test_ack_then_delete_acked(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    index = RecordingIndex(path)
    for record in ("1718200000", "1718200001", "1718200002"):
        index.upsert(entry("room1", record, status="Completed"))
    assert index.delete_acked([("room1", "1718200000")]) == 0  # not acked yet: kept
    assert index.ack([("room1", "1718200000"), ("room1", "1718200001"),
                      ("room9", "nope")]) == 2
    assert index.ack([("room1", "1718200000")]) == 1  # a retried PATCH answers the same
    assert [e.record for e in index.list()] == ["1718200002"]  # Acked are not listed
    assert index.delete_acked([("room1", "1718200000"), ("room1", "1718200002")]) == 1
    assert index.get("room1", "1718200000") is None
    assert index.get("room1", "1718200002") is not None  # never acked: not deleted

    again = RecordingIndex(path)  # what was acked and deleted stays so after a restart
    assert again.get("room1", "1718200000") is None
    acked = again.get("room1", "1718200001")
    assert acked is not None and acked.status == "Acked"
    assert len(again) == 2


def test_torn_last_line_is_ignored_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    index = RecordingIndex(path)
    index.upsert(entry("room1", "1718200000"))
    index.upsert(entry("room1", "1718200001", status="Completed"))
    with path.open("a") as f:  # the process died in the middle of an append
        f.write('{"record":"1718200002","stream":"roo')

    reopened = RecordingIndex(path)
    assert sorted(e.record for e in reopened.list()) == ["1718200000", "1718200001"]
    reopened.upsert(entry("room1", "1718200003"))
    # The new line was not glued onto the torn one: every line parses, nothing lost.
    for line in lines(path):
        json.loads(line)
    third = RecordingIndex(path)
    assert sorted(e.record for e in third.list()) == ["1718200000", "1718200001",
                                                      "1718200003"]


def test_compaction_bounds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    clock = FakeClock()
    index = RecordingIndex(path, clock=clock)
    for i in range(1000):  # a long recording whose duration is updated again and again
        clock.t += 1000
        index.upsert(entry("room1", "1718200000", duration_ms=i))
        index.upsert(entry("room2", "1718200000", duration_ms=i))
    assert len(lines(path)) <= 200
    reloaded = RecordingIndex(path)
    got = reloaded.get("room1", "1718200000")
    assert got is not None and got.duration_ms == 999
    assert len(reloaded) == 2
    assert reloaded.list()[-1].updated_at == index.list()[-1].updated_at
    index.compact()
    assert len(lines(path)) == 2


CHILD = r"""
import sys
from liveion.recorder.index import RecordingEntry, RecordingIndex
index = RecordingIndex(sys.argv[1])
for record in ("1718200000", "1718200100"):
    index.upsert(RecordingEntry(record=record, stream="cam", record_dir="cam/" + record,
                                mpd_path="cam/" + record + "/manifest.mpd",
                                start_ts=int(record) * 10**6))
index.update("cam", "1718200000", status="Completed", end_ts=1718200050 * 10**6,
             duration_ms=50_000)
print("ready", flush=True)
sys.stdin.read()
"""


def test_active_entries_survive_a_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "recordings" / "index.json"  # the directory is created on demand
    with subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    index = RecordingIndex(path)
    assert [(e.stream, e.record) for e in index.active()] == [("cam", "1718200100")]
    index.update("cam", "1718200100", status="Failed")
    assert RecordingIndex(path).active() == []


def test_reads_live777_index_files(tmp_path: Path) -> None:
    # A line as Live777 writes it (field order and nulls as serde produces them).
    live777 = ('{"record":"1718200000","stream":"room1","record_dir":"room1/1718200000",'
               '"mpd_path":"room1/1718200000/manifest.mpd","start_ts":1718200000000000,'
               '"end_ts":null,"duration_ms":null,"status":"Active","node_alias":null,'
               '"updated_at":1718200000000001}')
    path = tmp_path / "lines.json"
    path.write_text(live777 + "\n")
    got = RecordingIndex(path).get("room1", "1718200000")
    assert got is not None and got.status == "Active" and got.end_ts is None
    array = tmp_path / "array.json"
    array.write_text("[" + live777 + "]")
    assert len(RecordingIndex(array)) == 1


def test_bad_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    good = json.dumps(entry("room1", "1718200000", updated_at=7).to_json())
    path.write_text("garbage\n" + '{"record": 5}\n' + good + "\n"
                    + json.dumps({**entry("x", "1").to_json(), "status": "Weird"}) + "\n")
    index = RecordingIndex(path)
    assert [e.key for e in index.list()] == ["room1/1718200000"]


def test_unwritable_index_keeps_working_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    path.mkdir()  # a directory where the file should be: every read and write fails
    index = RecordingIndex(path)
    assert index.write_error is not None and "index.json" in index.write_error
    index.upsert(entry("room1", "1718200000"))
    assert [e.record for e in index.list()] == ["1718200000"]


def test_record_name() -> None:
    assert record_name("1718200000", "room1/1718200000") == "1718200000"
    assert record_name("", "custom/dir") == "custom/dir"


def test_upsert_by_fields_and_playback_listing(tmp_path: Path) -> None:
    index = RecordingIndex(tmp_path / "index.json")
    stored = index.upsert(stream="cam", record="custom/dir", record_dir="custom/dir",
                          mpd_path="custom/dir/manifest.mpd", start_ts=5, status="Completed",
                          duration_ms=1000)
    assert stored.key == "cam/custom/dir" and stored.updated_at > 0
    assert index.get("cam", "custom/dir") == stored
    with pytest.raises(ValueError, match="unknown recording status"):
        index.upsert(stream="cam", record="1", record_dir="cam/1", mpd_path="m", start_ts=1,
                     status="Paused")
    index.ack([("cam", "custom/dir")])
    assert index.list() == []
    # Playback still finds acked recordings: the files are still there.
    assert [e.record for e in index.list(include_acked=True)] == ["custom/dir"]
    assert index.streams() == ["cam"] and [e.record for e in index.for_stream("cam")] \
        == ["custom/dir"]
