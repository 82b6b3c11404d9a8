"""record_dir / record_id / mpd_path rules of the recorder spec, and refused base_dirs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liveion.recorder.paths import (
    BadPath,
    RecordPath,
    check_relative_path,
    next_record_path,
    record_path,
)


def test_default_layout_is_stream_and_timestamp() -> None:
    path = record_path("room1", 1762842203)
    assert (path.record_dir, path.record_id, path.mpd_path) == (
        "room1/1762842203", "1762842203", "room1/1762842203/manifest.mpd")


@pytest.mark.parametrize(("base_dir", "record_dir", "record_id"), [
    ("custom/1718200000", "custom/1718200000", "1718200000"),
    ("custom/1718200000/", "custom/1718200000", "1718200000"),
    ("a/b/c", "a/b/c", ""),
    ("events/room1-final", "events/room1-final", ""),
    ("short/123456789", "short/123456789", ""),
    ("long/17182000001", "long/17182000001", "17182000001"),
])
def test_base_dir_is_used_verbatim(base_dir: str, record_dir: str, record_id: str) -> None:
    path = record_path("room1", 1762842203, base_dir)
    assert (path.record_dir, path.record_id) == (record_dir, record_id)
    assert path.mpd_path == f"{record_dir}/manifest.mpd"


@pytest.mark.parametrize("base_dir", [
    "../etc", "a/../../b", "a/./b", "/abs/path", "C:/windows", "a\\b", "a//b", "", "/",
    "a/b c", "a/\x00", "..",
])
def test_escaping_or_malformed_base_dir_is_refused(base_dir: str) -> None:
    with pytest.raises(BadPath):
        record_path("room1", 1762842203, base_dir)


def test_next_part_replaces_the_timestamp_and_never_reuses_a_directory() -> None:
    first = record_path("room1", 1762842203)
    assert next_record_path(first, 1762842300).record_dir == "room1/1762842300"
    # A restart within the same second still gets a directory of its own.
    same_second = next_record_path(first, 1762842203)
    assert same_second.record_dir == "room1/1762842204"
    assert same_second.record_id == "1762842204"


def test_next_part_of_a_base_dir_without_timestamp_goes_below_it() -> None:
    first = record_path("room1", 1762842203, "events/final")
    nxt = next_record_path(first, 1762842300)
    assert nxt == RecordPath("events/final/1762842300", "1762842300")
    assert next_record_path(nxt, 1762842301).record_dir == "events/final/1762842301"


@given(st.lists(st.integers(min_value=1_000_000_000, max_value=9_999_999_999), min_size=1,
                max_size=30))
def test_successive_parts_are_always_distinct(times: list[int]) -> None:
    path = record_path("s", times[0])
    seen = {path.record_dir}
    for now in times[1:]:
        path = next_record_path(path, now)
        assert path.record_dir not in seen
        seen.add(path.record_dir)
        assert check_relative_path(path.record_dir) == path.record_dir
