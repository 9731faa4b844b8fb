"""Every file a shot references (glTF/GLB buffers and images, OBJ material libraries and textures, .blend
libraries) is read only from the shot's folder or an allowed one, symlinks resolved, refused in one line before
Blender opens anything, and part of the scene's content hash."""

import json
import os
import struct
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli
from PIL import Image
from test_input_checks import linking_shot

from vf3d.benchmark.catalog import load_catalog
from vf3d.common.errors import VF3DInputError
from vf3d.common.hashing import content_hash
from vf3d.preprocess.blend_libraries import linked_libraries, stored_library_paths
from vf3d.preprocess.external_references import external_references
from vf3d.preprocess.guidance import describe_shot

W, H = 48, 32
TRIANGLE = struct.pack("<9f", -1, -1, -5, 1, -1, -5, 0, 1, -5)  # glTF (Y up): in front of a camera looking down -z


def gltf_document(buffer_uri: str | None = "tri.bin", image_uri: str | None = None) -> dict:
    """A one-triangle glTF whose vertices are in buffer 0 (at `buffer_uri`, or the GLB's binary chunk if None)."""
    document = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "buffers": [{"byteLength": len(TRIANGLE), **({"uri": buffer_uri} if buffer_uri is not None else {})}],
        "bufferViews": [{"buffer": 0, "byteLength": len(TRIANGLE)}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                       "min": [-1, -1, -5], "max": [1, 1, -5]}],
    }
    if image_uri is not None:
        document["images"] = [{"uri": image_uri}]
    return document


def write_gltf(path: Path, **uris) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gltf_document(**uris)))
    return path


def write_glb(path: Path, document: dict, binary: bytes = TRIANGLE) -> Path:
    """A GLB: 12-byte header, JSON chunk (space-padded), binary chunk."""
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks)
    return path


def write_file(path: Path, content: bytes = TRIANGLE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def write_trajectory(path: Path) -> Path:
    """Two frames of a camera at the origin looking down -z (glTF frame), moving sideways."""
    poses = [[[1, 0, 0, x], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] for x in (0.0, 0.1)]
    path.write_text(json.dumps({"axes": "opengl", "world_up": "y", "width": W, "height": H, "fov_x_deg": 60,
                                "camera_to_world": poses}))
    return path


def write_obj(folder: Path, mtllib: str | None = "m.mtl", mtl: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = (["mtllib " + mtllib] if mtllib else []) + ["v -1 -1 -5", "v 1 -1 -5", "v 0 1 -5", "usemtl a", "f 1 2 3"]
    (folder / "shot.obj").write_text("\n".join(lines) + "\n")
    if mtl is not None:
        (folder / "m.mtl").write_text(mtl)
    return folder / "shot.obj"


def refused(source, *words, allowed=()) -> str:
    with pytest.raises(VF3DInputError) as error:
        external_references(source, allowed)
    message = str(error.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def scene_version(entry) -> str:
    """The scene's data version, as the `scene_source` observation computes it."""
    return "|".join(content_hash(f)[:16] for f in entry.input_files())


# --- glTF / GLB -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, uri", [
    ("buffer_uri", "../../secret/ext.bin"),
    ("buffer_uri", "ABSOLUTE"),
    ("buffer_uri", "..%2F..%2Fsecret%2Fext.bin"),  # percent-encoded: Blender decodes it
    ("image_uri", "../../secret/ext.bin"),
    ("image_uri", "ABSOLUTE"),
])
def test_a_gltf_uri_outside_the_shot_folder_is_refused(tmp_path, kind, uri):
    secret = write_file(tmp_path / "secret" / "ext.bin")
    uri = str(secret) if uri == "ABSOLUTE" else uri
    uris = {"buffer_uri": "tri.bin", kind: uri}
    shot = write_gltf(tmp_path / "work" / "shot" / "shot.gltf", **uris)
    write_file(shot.parent / "tri.bin")
    refused(shot, "shot.gltf", uri, "outside the shot's folder", "--allow-library")


def test_a_glb_with_an_external_uri_is_refused(tmp_path):
    write_file(tmp_path / "secret" / "ext.bin")
    document = gltf_document(buffer_uri=None)
    document["buffers"].append({"uri": "../secret/ext.bin", "byteLength": 36})
    glb = write_glb(tmp_path / "shot" / "shot.glb", document)
    refused(glb, "shot.glb", "'../secret/ext.bin'", "outside the shot's folder")
    embedded = write_glb(tmp_path / "shot" / "embedded.glb", gltf_document(buffer_uri=None))
    assert external_references(embedded) == []


def test_embedded_data_uris_name_no_file(tmp_path):
    import base64

    uri = "data:application/octet-stream;base64," + base64.b64encode(TRIANGLE).decode()
    assert external_references(write_gltf(tmp_path / "shot.gltf", buffer_uri=uri)) == []


def test_etc_passwd_and_malformed_or_missing_files_are_one_line(capsys, tmp_path):
    traj = write_trajectory(tmp_path / "traj.json")
    shot = write_gltf(tmp_path / "a" / "b" / "shot.gltf", buffer_uri="../../../../etc/passwd")
    assert_one_line_error(*run_cli(capsys, "preprocess", shot, "--trajectory", traj, "--out", tmp_path / "o"),
                          "shot.gltf", "../../../../etc/passwd", "outside the shot's folder")
    write_gltf(shot, buffer_uri="gone.bin")
    assert_one_line_error(*run_cli(capsys, "preprocess", shot, "--trajectory", traj, "--out", tmp_path / "o"),
                          "shot.gltf", "'gone.bin'", "does not exist")
    shot.write_text('{"buffers": [')
    assert_one_line_error(*run_cli(capsys, "preprocess", shot, "--trajectory", traj, "--out", tmp_path / "o"),
                          "shot.gltf", "malformed glTF JSON")
    assert not (tmp_path / "o").exists()


def test_preprocess_refuses_an_escaping_gltf_before_blender_and_writes_nothing(capsys, tmp_path, monkeypatch):
    write_file(tmp_path / "secret" / "ext.bin")
    shot = write_gltf(tmp_path / "work" / "shot" / "shot.gltf", buffer_uri="../../secret/ext.bin")
    traj = write_trajectory(tmp_path / "traj.json")
    out = tmp_path / "out"
    from vf3d.preprocess.blender import scene_io
    monkeypatch.setattr(scene_io, "_import_mesh", lambda path: pytest.fail("Blender imported the file"))
    code, err = run_cli(capsys, "preprocess", shot, "--trajectory", traj, "--out", out)
    assert_one_line_error(code, err, str(shot), "'../../secret/ext.bin'", "outside the shot's folder")
    assert not out.exists()


# --- OBJ / MTL --------------------------------------------------------------------------------------------------

def test_an_obj_mtllib_outside_the_shot_folder_is_refused(tmp_path):
    write_file(tmp_path / "secret" / "m.mtl", b"newmtl a\nKd 1 0 0\n")
    shot = write_obj(tmp_path / "work" / "shot", mtllib="../../secret/m.mtl")
    refused(shot, "shot.obj", "'../../secret/m.mtl'", "outside the shot's folder")
    # several libraries on one line: each one is checked
    write_file(shot.parent / "ok.mtl", b"newmtl a\n")
    shot = write_obj(shot.parent, mtllib="ok.mtl ../../secret/m.mtl")
    refused(shot, "shot.obj", "'../../secret/m.mtl'", "outside the shot's folder")


@pytest.mark.parametrize("statement", ["map_Kd {}", "map_Bump -bm 1 {}", "bump -bm 0.5 -o 0 0 0 {}", "disp {}",
                                       "refl -type sphere {}", "map_Ka -s 1 1 1 {}"])
def test_an_absolute_texture_in_an_mtl_is_refused(tmp_path, statement):
    texture = write_file(tmp_path / "secret" / "t.png")
    shot = write_obj(tmp_path / "shot", mtl=f"newmtl a\n{statement.format(texture)}\n")
    refused(shot, "m.mtl", str(texture), "outside the shot's folder")


def test_blender_reads_the_mtl_beside_the_obj_unasked_so_it_is_checked_too(tmp_path):
    texture = write_file(tmp_path / "secret" / "t.png")
    shot = write_obj(tmp_path / "shot", mtllib=None)
    (shot.parent / "shot.mtl").write_text(f"newmtl a\nmap_Kd {texture}\n")
    refused(shot, "shot.mtl", str(texture), "outside the shot's folder")


def test_an_obj_with_its_materials_and_textures_inside_is_accepted_and_hashed(tmp_path):
    shot_dir = tmp_path / "shot"
    Image.new("RGB", (4, 4), (200, 10, 10)).save(write_file(shot_dir / "tex" / "red.png"))
    shot = write_obj(shot_dir, mtl="newmtl a\nKd 1 1 1\nmap_Kd -bm 1 tex/red.png\n")
    found = {ref.stored: ref.path for ref in external_references(shot)}
    assert found == {"m.mtl": shot_dir / "m.mtl", "tex/red.png": shot_dir / "tex" / "red.png"}
    first = describe_shot(shot, W, H, write_trajectory(tmp_path / "traj.json"))
    assert sorted(lib["file"] for lib in first["libraries"]) == ["m.mtl", "tex/red.png"]
    Image.new("RGB", (4, 4), (10, 200, 10)).save(shot_dir / "tex" / "red.png")
    second = describe_shot(shot, W, H, tmp_path / "traj.json")
    assert first["libraries"] != second["libraries"]


# --- symlinks ---------------------------------------------------------------------------------------------------

def test_a_blend_library_through_a_symlinked_subfolder_pointing_outside_is_refused(capsys, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "shot").mkdir()
    (tmp_path / "shot" / "assets").symlink_to(elsewhere, target_is_directory=True)
    shot = linking_shot(tmp_path / "shot" / "shot.blend", tmp_path / "shot" / "assets" / "cube.blend", True)
    assert stored_library_paths(shot) == ["//assets/cube.blend"]  # written as a path inside the shot's folder
    assert (elsewhere / "cube.blend").is_file()
    message = refused(shot, "shot.blend", "//assets/cube.blend", str(elsewhere / "cube.blend"),
                      "outside the shot's folder")
    with pytest.raises(VF3DInputError, match="outside the shot's folder"):
        linked_libraries(shot)
    from vf3d.preprocess.blender import scene_io
    monkeypatch.setattr(scene_io, "_open_blend", lambda path: pytest.fail("Blender opened the file"))
    assert_one_line_error(*run_cli(capsys, "preprocess", shot, "--out", tmp_path / "o", "--width", W,
                                   "--height", H), message)
    # allowing the folder it resolves to (named through another symlink) accepts it
    (tmp_path / "alias").symlink_to(elsewhere, target_is_directory=True)
    (found,) = external_references(shot, [tmp_path / "alias"])
    assert found.path == elsewhere / "cube.blend"


def test_a_gltf_buffer_through_a_symlinked_subfolder_pointing_outside_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write_file(elsewhere / "tri.bin")
    shot = write_gltf(tmp_path / "shot" / "shot.gltf", buffer_uri="data/tri.bin")
    (shot.parent / "data").symlink_to(elsewhere, target_is_directory=True)
    refused(shot, "shot.gltf", "'data/tri.bin'", str(elsewhere / "tri.bin"), "outside the shot's folder")
    # a symlinked file is followed the same way
    (shot.parent / "data").unlink()
    (shot.parent / "data").mkdir()
    (shot.parent / "data" / "tri.bin").symlink_to(elsewhere / "tri.bin")
    refused(shot, "shot.gltf", "'data/tri.bin'", "outside the shot's folder")
    # a symlink that stays inside the shot's folder is fine
    (shot.parent / "data" / "tri.bin").unlink()
    write_file(shot.parent / "real" / "tri.bin")
    (shot.parent / "data" / "tri.bin").symlink_to(shot.parent / "real" / "tri.bin")
    assert [ref.path for ref in external_references(shot)] == [shot.parent / "real" / "tri.bin"]


# --- accepted references are part of the scene's hash -----------------------------------------------------------

def test_a_gltf_buffer_inside_the_shot_folder_is_accepted_and_hashed(tmp_path):
    shot = write_gltf(tmp_path / "shot" / "shot.gltf", buffer_uri="data/tri%20angle.bin")
    buffer = write_file(tmp_path / "shot" / "data" / "tri angle.bin")
    (found,) = external_references(shot)
    assert (found.path, found.stored, found.referenced_from) == (buffer, "data/tri%20angle.bin", shot)
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps({"scenes": [{"key": "tri", "source": "shot/shot.gltf",
                                                    "trajectory": "traj.json"}], "styles": []}))
    write_trajectory(tmp_path / "traj.json")
    entry = load_catalog([catalog_file, *_one_style(tmp_path)]).scene("tri")
    assert entry.input_files() == [shot, tmp_path / "traj.json", buffer]
    before = scene_version(entry)
    first = describe_shot(shot, W, H, tmp_path / "traj.json")  # Blender reads the file as written
    assert [lib["file"] for lib in first["libraries"]] == ["data/tri%20angle.bin"]
    write_file(buffer, struct.pack("<9f", -1, -1, -6, 1, -1, -6, 0, 1, -6))  # the triangle moves back
    assert scene_version(entry) != before
    assert describe_shot(shot, W, H, tmp_path / "traj.json")["libraries"] != first["libraries"]
    os.remove(buffer)
    with pytest.raises(VF3DInputError, match="does not exist"):
        entry.input_files()


def test_an_allowed_folder_is_accepted_for_every_format_and_hashed(tmp_path):
    library = tmp_path / "library"
    buffer = write_file(library / "tri.bin")
    texture = write_file(library / "t.png")
    gltf = write_gltf(tmp_path / "shot" / "shot.gltf", buffer_uri="../library/tri.bin")
    obj = write_obj(tmp_path / "shot", mtl=f"newmtl a\nmap_Kd {texture}\n")
    refused(gltf, "outside the shot's folder")
    refused(obj, "outside the shot's folder")
    assert [ref.path for ref in external_references(gltf, [library])] == [buffer]
    assert [ref.path for ref in external_references(obj, [str(library)])] == [texture, obj.parent / "m.mtl"]
    catalog_file = tmp_path / "catalog.json"
    catalog_file.write_text(json.dumps({"scenes": [
        {"key": "tri", "source": "shot/shot.gltf", "trajectory": "traj.json", "library_paths": ["library"]},
        {"key": "tri_obj", "source": "shot/shot.obj", "trajectory": "traj.json", "library_paths": ["library"]},
        {"key": "tri_denied", "source": "shot/shot.gltf", "trajectory": "traj.json"}], "styles": []}))
    write_trajectory(tmp_path / "traj.json")
    catalog = load_catalog([catalog_file, *_one_style(tmp_path)])
    assert buffer in catalog.scene("tri").input_files() and texture in catalog.scene("tri_obj").input_files()
    with pytest.raises(VF3DInputError, match="outside the shot's folder"):
        catalog.scene("tri_denied").input_files()
    before = scene_version(catalog.scene("tri")), scene_version(catalog.scene("tri_obj"))
    write_file(buffer, b"\0" * 36)
    write_file(texture, b"edited")
    after = scene_version(catalog.scene("tri")), scene_version(catalog.scene("tri_obj"))
    assert before[0] != after[0] and before[1] != after[1]


def _one_style(tmp_path: Path) -> list[Path]:
    """A catalog file with one style (a catalog needs one)."""
    Image.new("RGB", (8, 8)).save(tmp_path / "look.png")
    styles = tmp_path / "styles.json"
    styles.write_text(json.dumps({"styles": [{"key": "look", "reference": "look.png",
                                              "identifier": "a photo in zkx style"}]}))
    return [styles]


def test_blender_can_import_the_hand_written_files(tmp_path):
    """The files these tests write are real shots: the accepted ones open and render."""
    shot = write_gltf(tmp_path / "shot" / "shot.gltf", buffer_uri="tri.bin")
    write_file(tmp_path / "shot" / "tri.bin")
    glb = write_glb(tmp_path / "shot" / "shot.glb", gltf_document(buffer_uri=None))
    traj = write_trajectory(tmp_path / "traj.json")
    for source in (shot, glb):
        assert describe_shot(source, W, H, traj)["num_frames"] == 2
