"""The catalog: the shipped benchmark's shape, user catalogs merged after it, and clear errors."""

import json
import struct

import pytest

from vf3d.benchmark.catalog import BENCHMARK_CATALOG, load_catalog
from vf3d.common.errors import VF3DInputError


def test_benchmark_is_16_scenes_by_3_styles():
    catalog = load_catalog([BENCHMARK_CATALOG])
    benchmark = {k: s for k, s in catalog.scenes.items() if s.category != "demo"}
    assert len(benchmark) == 16 and len(catalog.styles) == 3
    counts = {c: sum(s.category == c for s in benchmark.values()) for c in ("object-centric", "indoor", "outdoor",
                                                                            "transition")}
    assert counts == {"object-centric": 4, "indoor": 2, "outdoor": 8, "transition": 2}
    # The demo is the cottage shot at a small size (tiny models on a CPU).
    assert catalog.demo == ("demo", "photo")
    demo = catalog.scene("demo")
    assert demo.source == catalog.scene("cottage").source and (demo.width, demo.height) == (256, 176)
    assert catalog.style("photo_winter").prompt.endswith(", winter")
    assert all(s.source.is_file() for s in catalog.scenes.values())
    assert all(s.reference.is_file() for s in catalog.styles.values())


def test_user_catalog_paths_are_relative_to_it(tmp_path):
    user = tmp_path / "mine.json"
    user.write_text(json.dumps({"scenes": [{"key": "shot", "source": "a/shot.glb", "trajectory": "a/t.json",
                                            "render": {"width": 368, "height": 240}}]}))
    catalog = load_catalog([BENCHMARK_CATALOG, user])
    shot = catalog.scene("shot")
    assert shot.source == tmp_path / "a" / "shot.glb" and shot.trajectory == tmp_path / "a" / "t.json"
    assert (shot.width, shot.height, shot.category) == (368, 240, "user")
    with pytest.raises(VF3DInputError, match="shot.glb: scene 'shot': file not found"):
        shot.input_files()
    (tmp_path / "a").mkdir()
    # the smallest GLB: 12-byte header, one JSON chunk (its references are read: none)
    shot.source.write_bytes(b"glTF" + struct.pack("<II", 2, 24) + struct.pack("<I4s", 4, b"JSON") + b"{}  ")
    shot.trajectory.write_text("{}")
    assert shot.input_files() == [shot.source, shot.trajectory]


@pytest.mark.parametrize("scenes, words", [
    ([{"key": "cottage", "source": "x.blend"}], ["'cottage' is already defined"]),
    ([{"key": "Bad Key", "source": "x.blend"}], ["Bad Key", "must match"]),
    ([{"key": "ok"}], ["'source'"]),
    ([{"key": "ok", "source": "x.blend", "category": "space"}], ["category"]),
])
def test_bad_user_catalog(tmp_path, scenes, words):
    user = tmp_path / "mine.json"
    user.write_text(json.dumps({"scenes": scenes}))
    with pytest.raises(VF3DInputError) as error:
        load_catalog([BENCHMARK_CATALOG, user])
    assert str(error.value).startswith(str(user))
    for word in words:
        assert word in str(error.value)


def test_a_post_prompt_schedule_spreads_over_the_anchors(tmp_path):
    """Paper Fig. 8: a post-prompt per anchor; fewer prompts than anchors are spread evenly, more are refused."""
    (tmp_path / "look.png").write_bytes(b"")
    scenes = [{"key": "s", "source": "s.blend"}]
    styles = [{"key": "seasons", "reference": "look.png", "identifier": "a scene in qqq style",
               "post_prompt": ["summer", "autumn", "winter"]},
              {"key": "winter", "reference": "look.png", "identifier": "a scene in qqq style", "post_prompt": "winter"}]
    (tmp_path / "c.json").write_text(json.dumps({"scenes": scenes, "styles": styles}))
    catalog = load_catalog([tmp_path / "c.json"])
    seasons, winter = catalog.style("seasons"), catalog.style("winter")
    assert seasons.post_prompt is None and seasons.post_prompt_schedule == ("summer", "autumn", "winter")
    assert seasons.anchor_post_prompts(3) == ["summer", "autumn", "winter"]
    assert seasons.anchor_post_prompts(6) == ["summer", "summer", "autumn", "autumn", "winter", "winter"]
    assert seasons.anchor_post_prompts(4) == ["summer", "summer", "autumn", "winter"]
    assert winter.anchor_post_prompts(2) == ["winter", "winter"] and not winter.post_prompt_schedule
    with pytest.raises(VF3DInputError, match="3 post-prompts for 2 anchors"):
        seasons.anchor_post_prompts(2)
    for bad in ([], [""], [3], 5):
        styles[0]["post_prompt"] = bad
        (tmp_path / "c.json").write_text(json.dumps({"scenes": scenes, "styles": styles}))
        with pytest.raises(VF3DInputError, match="'post_prompt' must be"):
            load_catalog([tmp_path / "c.json"])
