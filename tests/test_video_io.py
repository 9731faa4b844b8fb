"""mp4 round trip and segment chaining."""

import numpy as np
import pytest

from vf3d.common.video_io import chain_segments, read_mp4, write_mp4


def test_mp4_round_trip(tmp_path):
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(12)]
    write_mp4(frames, tmp_path / "v.mp4", fps=8)
    back = read_mp4(tmp_path / "v.mp4")
    assert len(back) == 12 and back[0].shape == (48, 64, 3)
    assert np.abs(back[5].astype(int) - 50).mean() < 3
    assert not list(tmp_path.glob(".tmp-*"))


def top_level_boxes(path) -> list[str]:
    """The mp4's top-level box types, in file order."""
    data, boxes, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[at + 8:at + 16], "big")
        boxes.append(kind)
        at += size if size else len(data)
    return boxes


def test_mp4_index_comes_before_the_frames_so_browsers_play_it_while_loading(tmp_path):
    write_mp4([np.full((48, 64, 3), 10 * i, np.uint8) for i in range(4)], tmp_path / "v.mp4")
    boxes = top_level_boxes(tmp_path / "v.mp4")
    assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"), boxes


def test_odd_size_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="even sizes"):
        write_mp4([np.zeros((5, 6, 3), np.uint8)], tmp_path / "v.mp4")


def test_chaining_keeps_shared_boundary_frames_once():
    segment = lambda start, end: [np.full((2, 2, 3), f, np.uint8) for f in range(start, end + 1)]  # noqa: E731
    video = chain_segments([segment(0, 45), segment(45, 90), segment(90, 99)])
    assert [int(f[0, 0, 0]) for f in video] == list(range(100))


def test_duplicate_joins_keep_every_segment_whole_as_the_official_code():
    """Official `ggi.py` l. 299-301 saves all 46 frames (`videos[:-3]`) of every segment: the join frame twice."""
    segment = lambda start, end: [np.full((2, 2, 3), f, np.uint8) for f in range(start, end + 1)]  # noqa: E731
    video = chain_segments([segment(0, 45), segment(45, 90), segment(90, 99)], duplicate_joins=True)
    assert [int(f[0, 0, 0]) for f in video] == list(range(46)) + list(range(45, 91)) + list(range(90, 100))
