"""Bad input for every command, table-driven (issue 11).

Each case runs ``dancenet.cli.main`` in-process on a fresh copy of the same small world (BVH
files, a prepared dataset, a run holding the bundled model, a video, an image folder) and
asserts what a user is promised: exit code 2, one line ``dancenet: error: ...`` naming the file
or flag, every input byte-identical afterwards, and nothing written anywhere (no partial output,
nothing outside the named output). A kill -9 during ``prepare`` is tested with a subprocess.
"""

import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import bvh_text, write_synthetic_bvh  # noqa: E402

from dancenet.cli import main  # noqa: E402
from dancenet.generate import BUNDLED_DIRECTORY  # noqa: E402


def png_header_claiming(path, side):
    """A small PNG whose header claims side x side pixels: 1-bit, zlib-compressed zero rows."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + (side + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def chain_bvh(joints, nested=True):
    """A BVH whose joints form one chain ``nested`` deep (else all children of the root)."""
    lines = ["HIERARCHY", "ROOT r", "{", "OFFSET 0 0 0", "CHANNELS 3 Xposition Yposition Zposition"]
    for index in range(joints):
        lines += [f"JOINT j{index}", "{", "OFFSET 0 1 0", "CHANNELS 1 Zrotation"]
        if not nested:
            lines.append("}")
    lines += ["End Site", "{", "OFFSET 0 1 0", "}"] + ["}"] * ((joints if nested else 0) + 1)
    lines += ["MOTION", "Frames: 2", "Frame Time: 0.0333"] + [" ".join(["0"] * (3 + joints))] * 2
    return "\n".join(lines) + "\n"


def tree(path):
    """{relative name: sha256 or 'dir' or 'link->target'} of everything under ``path``."""
    result = {}
    for item in sorted(Path(path).rglob("*")):
        name = str(item.relative_to(path))
        if item.is_symlink():
            result[name] = f"link->{os.readlink(item)}"
        elif item.is_dir():
            result[name] = "dir"
        elif item.is_file():
            result[name] = hashlib.sha256(item.read_bytes()).hexdigest()
        else:  # a named pipe: reading it would block
            result[name] = "special"
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The pristine world every case copies: built once."""
    root = tmp_path_factory.mktemp("world") / "w"
    root.mkdir()
    (root / "bvh").mkdir()
    write_synthetic_bvh(root / "bvh/a.bvh", frames=70)
    write_synthetic_bvh(root / "bvh/b.bvh", frames=70)
    assert main(["prepare", str(root / "bvh"), "--out", str(root / "data"), "--quiet"]) == 0
    run = root / "run"
    run.mkdir()
    for item in BUNDLED_DIRECTORY.iterdir():
        shutil.copy(item, run / item.name)
    assert main(["generate", str(run), "-o", str(root / "in.mp4"), "--seconds", "1", "--scale", "1",
                 "--quiet"]) == 0
    (root / "imgs").mkdir()
    for index in range(4):
        image = np.zeros((48, 64), np.uint8)
        image[8:40, 10 + 4 * index:30 + 4 * index] = 255
        Image.fromarray(image).save(root / f"imgs/{index}.png")
    (root / "outside.bin").write_bytes((root / "data/frames.bin").read_bytes())
    return root


def hostile_dataset(root, name, change):
    """A copy of the dataset whose manifest ``change(manifest, folder)`` edits."""
    folder = root / name
    shutil.copytree(root / "data", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest, folder)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _frames_out(manifest, folder, file):
    manifest["frames"]["file"] = file
    (folder / "frames.bin").unlink()


def _link_out(manifest, folder):
    (folder / "frames.bin").unlink()
    (folder / "frames.bin").symlink_to(folder.parent / "outside.bin")


def _empty_frames(manifest, folder):
    manifest.update(height=0, num_frames=0)
    (folder / "frames.bin").write_bytes(b"")


def _mkdir_with(folder, files):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def write(path, data):
    Path(path).write_bytes(data if isinstance(data, bytes) else data.encode())


# (id, argv with {placeholders} relative to the world, expected text in the message, setup(root))
CASES = [
    # --- prepare: outputs that are, hold, or sit in a source; folders dancenet did not make
    ("prepare-out-is-source", "prepare bvh --out bvh --overwrite", "is also an input", None),
    ("prepare-out-inside-source", "prepare bvh --out bvh/ds", "inside the input folder", None),
    ("prepare-out-holds-source", "prepare bvh/a.bvh --out bvh --overwrite", "holds the input", None),
    ("prepare-out-user-folder", "prepare bvh --out mine --overwrite", "did not write (keep.txt)",
     lambda r: _mkdir_with(r / "mine", {"keep.txt": "mine"})),
    ("prepare-out-user-file", "prepare bvh --out notes.txt --overwrite", "not a folder",
     lambda r: write(r / "notes.txt", "mine")),
    ("prepare-out-dataset-plus-file", "prepare bvh --out ds2 --overwrite", "did not write (notes.txt)",
     lambda r: (shutil.copytree(r / "data", r / "ds2"), write(r / "ds2/notes.txt", "x"))),
    ("prepare-out-dataset-no-overwrite", "prepare bvh --out data", "--overwrite", None),
    ("prepare-out-symlink-to-source", "prepare bvh --out link --overwrite", "is also an input",
     lambda r: (r / "link").symlink_to(r / "bvh")),
    ("prepare-missing-source", "prepare nothing.mp4 --out o", "nothing.mp4", None),
    # --- prepare: corrupt, truncated, empty, oversized sources
    ("bvh-empty", "prepare e.bvh --out o", "e.bvh", lambda r: write(r / "e.bvh", "")),
    ("bvh-truncated", "prepare t.bvh --out o", "t.bvh",
     lambda r: write(r / "t.bvh", (r / "bvh/a.bvh").read_bytes()[:3000])),
    ("bvh-binary", "prepare g.bvh --out o", "g.bvh",
     lambda r: write(r / "g.bvh", bytes(random.Random(0).randrange(256) for _ in range(4000)))),
    ("bvh-deep-5000", "prepare deep.bvh --out o", "more than 2000 joints",
     lambda r: write(r / "deep.bvh", chain_bvh(5000))),
    ("bvh-wide-5000", "prepare wide.bvh --out o", "more than 2000 joints",
     lambda r: write(r / "wide.bvh", chain_bvh(5000, nested=False))),
    ("bvh-named-pipe", "prepare pipe.bvh --out o", "not a regular file", lambda r: os.mkfifo(r / "pipe.bvh")),
    ("bvh-frames-header-huge", "prepare f.bvh --out o", "1000000000000",
     lambda r: write(r / "f.bvh", bvh_text(70).replace("Frames: 70", "Frames: 1000000000000"))),
    ("bvh-nan-values", "prepare n.bvh --out o", "not a finite number",
     lambda r: write(r / "n.bvh", bvh_text(70).rstrip("\n").rsplit("\n", 1)[0] + "\n" +
                     " ".join(["nan"] * 60) + "\n")),
    ("bvh-channel-count-huge", "prepare c.bvh --out o", "channel count",
     lambda r: write(r / "c.bvh", bvh_text(70).replace("CHANNELS 6", "CHANNELS 99999999999", 1))),
    ("fps-huge", "prepare bvh --out o --fps 1e9", "--fps", None),
    ("fps-inf", "prepare bvh --out o --fps inf", "--fps", None),
    ("fps-nan", "prepare bvh --out o --fps nan", "--fps", None),
    ("fps-text", "prepare bvh --out o --fps fast", "--fps", None),
    ("source-fps-tiny-bvh", "prepare bvh --out o --source-fps 1e-6", "limit is 1000000 frames", None),
    ("source-fps-tiny-images", "prepare imgs --out o --source-fps 1e-6", "limit is 1000000 frames", None),
    ("size-huge", "prepare bvh --out o --size 100000x100000", "--size", None),
    ("size-mistyped", "prepare bvh --out o --size 48x32x1", "--size", None),
    ("size-negative", "prepare bvh --out o --size -48x32", "--size", None),
    ("video-random-bytes", "prepare bad.mp4 --out o", "bad.mp4",
     lambda r: write(r / "bad.mp4", bytes(random.Random(1).randrange(256) for _ in range(20000)))),
    ("video-empty", "prepare zero.mp4 --out o", "zero.mp4", lambda r: write(r / "zero.mp4", b"")),
    ("video-truncated", "prepare cut.mp4 --out o", "cut.mp4",
     lambda r: write(r / "cut.mp4", (r / "in.mp4").read_bytes()[:3000])),
    ("image-bomb", "prepare bomb --out o", "bomb/0.png",
     lambda r: ((r / "bomb").mkdir(), png_header_claiming(r / "bomb/0.png", 20000))),
    ("image-over-limit", "prepare big --out o", "the limit is 67108864 pixels",
     lambda r: ((r / "big").mkdir(), png_header_claiming(r / "big/0.png", 8300))),
    ("image-corrupt", "prepare badimg --out o", "badimg/0.png",
     lambda r: ((r / "badimg").mkdir(), write(r / "badimg/0.png", b"\x89PNG\r\n\x1a\nxx"))),
    ("image-mixed-sizes", "prepare mixed --out o", "one size",
     lambda r: ((r / "mixed").mkdir(), Image.new("L", (8, 8)).save(r / "mixed/0.png"),
                Image.new("L", (9, 8)).save(r / "mixed/1.png"))),
    # --- info / preview: hostile manifests
    ("manifest-parent-path", "info m", "points outside",
     lambda r: hostile_dataset(r, "m", lambda m, f: _frames_out(m, f, "../outside.bin"))),
    ("manifest-absolute-path", "info m", "points outside",
     lambda r: hostile_dataset(r, "m", lambda m, f: _frames_out(m, f, str(r / "outside.bin")))),
    ("manifest-symlink-out", "info m", "link leading outside",
     lambda r: hostile_dataset(r, "m", _link_out)),
    ("manifest-joints-outside", "info m", "points outside",
     lambda r: hostile_dataset(r, "m", lambda m, f: m["joints"].update(file="../../x.npy"))),
    ("manifest-list", "info m", "not a dancenet dataset manifest",
     lambda r: _mkdir_with(r / "m", {"manifest.json": "[1, 2]"})),
    ("manifest-empty", "info m", "not valid JSON", lambda r: _mkdir_with(r / "m", {"manifest.json": ""})),
    ("manifest-deeply-nested", "info m", "not valid JSON",
     lambda r: _mkdir_with(r / "m", {"manifest.json": "[" * 100000 + "]" * 100000})),
    ("manifest-zero-height", "info m", "between 8 and", lambda r: hostile_dataset(r, "m", _empty_frames)),
    ("manifest-clip-past-data", "info m", "inconsistent",
     lambda r: hostile_dataset(r, "m", lambda m, f: m["clips"][0].update(stop=10**9))),
    ("manifest-string-count", "info m", "whole number",
     lambda r: hostile_dataset(r, "m", lambda m, f: m.update(num_frames="70"))),
    ("manifest-huge-count", "info m", "inconsistent",
     lambda r: hostile_dataset(r, "m", lambda m, f: m.update(num_frames=10**12))),
    ("preview-hostile-manifest", "preview m -o s.png", "points outside",
     lambda r: hostile_dataset(r, "m", lambda m, f: _frames_out(m, f, "../outside.bin"))),
    ("preview-out-is-manifest", "preview data -o data/manifest.json", "inside the input folder", None),
    ("preview-out-inside-dataset", "preview data -o data/sheet.png", "inside the input folder", None),
    ("preview-per-clip-huge", "preview data -o s.png --per-clip 1000000000", "--per-clip", None),
    ("preview-per-clip-zero", "preview data -o s.png --per-clip 0", "--per-clip", None),
    # --- train vae / encode / reconstruct
    ("train-out-is-dataset", "train vae data --out data --overwrite --epochs 1", "inside the input folder data", None),
    ("train-hostile-manifest", "train vae m --out r2 --epochs 1", "points outside",
     lambda r: hostile_dataset(r, "m", lambda m, f: _frames_out(m, f, "../outside.bin"))),
    ("encode-corrupt-weights", "encode r3 data", "vae.safetensors",
     lambda r: (shutil.copytree(r / "run", r / "r3"), write(r / "r3/vae.safetensors", bytes(300)))),
    ("encode-truncated-json", "encode r3 data", "vae.json",
     lambda r: (shutil.copytree(r / "run", r / "r3"), write(r / "r3/vae.json", '{"format": '))),
    ("encode-hostile-manifest", "encode run m", "points outside",
     lambda r: hostile_dataset(r, "m", lambda m, f: _frames_out(m, f, "../outside.bin"))),
    ("reconstruct-out-is-input", "reconstruct run in.mp4 -o in.mp4", "is also an input", None),
    ("reconstruct-out-inside-dataset", "reconstruct run data -o data/recon.mp4", "inside the input folder", None),
    ("reconstruct-out-holds-run", "reconstruct run in.mp4 -o .", "holds the input", None),
    ("reconstruct-corrupt-video", "reconstruct run bad.mp4 -o rec.mp4", "bad.mp4",
     lambda r: write(r / "bad.mp4", bytes(random.Random(1).randrange(256) for _ in range(20000)))),
    # --- generate
    ("generate-seconds-huge", "generate run -o g.mp4 --seconds 1e9", "--seconds", None),
    ("generate-seconds-1e300", "generate run -o g.mp4 --seconds 1e300", "--seconds", None),
    ("generate-seconds-nan", "generate run -o g.mp4 --seconds nan", "--seconds", None),
    ("generate-seconds-text", "generate run -o g.mp4 --seconds long", "--seconds", None),
    ("generate-scale-huge", "generate run -o g.mp4 --scale 100000 --seconds 1", "--scale", None),
    ("generate-seed-huge", f"generate run -o g.mp4 --seed {2 ** 70} --seconds 1", "--seed", None),
    ("generate-seed-negative", "generate run -o g.mp4 --seed -1 --seconds 1", "--seed", None),
    ("generate-motion-path", "generate run -o g.mp4 --motion ../run/motion --seconds 1", "--motion", None),
    ("generate-motion-dotdot", "generate run -o g.mp4 --motion .. --seconds 1", "--motion", None),
    ("generate-out-is-run", "generate run -o run --seconds 1", "holds the input", None),
    ("generate-out-is-model-file", "generate run -o run/vae.json --seconds 1", "is also an input", None),
    ("generate-out-user-pngs", "generate run -o photos --seconds 1", "did not write (holiday.png)",
     lambda r: (r / "photos").mkdir() or Image.new("L", (8, 8)).save(r / "photos/holiday.png")),
    ("generate-out-extension", "generate run -o g.avi --seconds 1", "g.avi", None),
    ("generate-corrupt-motion-json", "generate r5 -o g.mp4 --seconds 1", "motion.json",
     lambda r: (shutil.copytree(r / "run", r / "r5"), write(r / "r5/motion.json", "{]"))),
    ("generate-prime-unknown", "generate run -o g.mp4 --prime nosuch:5 --seconds 1", "nosuch", None),
    ("generate-temperature-nan", "generate run -o g.mp4 --temperature nan", "--temperature", None),
    ("generate-missing-run", "generate nothing -o g.mp4", "nothing", None),
    # --- evaluate / evaluate-video
    ("evaluate-video-out-user-folder", "evaluate-video in.mp4 --reference data -o mine",
     "did not write (sub, thesis.txt)",
     lambda r: _mkdir_with(r / "mine", {"metrics.json": "{}", "thesis.txt": "mine", "sub/x": "y"})),
    ("evaluate-video-out-fake-report", "evaluate-video in.mp4 --reference data -o mine",
     "not a report made by dancenet", lambda r: _mkdir_with(r / "mine", {"metrics.json": "{}"})),
    ("evaluate-video-out-is-dataset", "evaluate-video in.mp4 --reference data -o data", "is also an input", None),
    ("evaluate-video-out-holds-video", "evaluate-video vids/v.mp4 --reference data -o vids", "holds the input",
     lambda r: ((r / "vids").mkdir(), shutil.copy(r / "in.mp4", r / "vids/v.mp4"))),
    ("evaluate-video-corrupt", "evaluate-video bad.mp4 --reference data -o e", "bad.mp4",
     lambda r: write(r / "bad.mp4", bytes(random.Random(1).randrange(256) for _ in range(20000)))),
    ("evaluate-video-hostile-reference", "evaluate-video in.mp4 --reference m -o e", "points outside",
     lambda r: hostile_dataset(r, "m", lambda m, f: _frames_out(m, f, "../outside.bin"))),
    ("evaluate-seconds-huge", "evaluate run --reference data --seconds 1e9 -o e", "--seconds", None),
    ("evaluate-samples-huge", "evaluate run --reference data --seconds 1 --samples 1000000000 -o e",
     "--samples", None),
    ("evaluate-motion-path", "evaluate run --reference data --motion ../x -o e", "--motion", None),
    ("evaluate-out-is-run", "evaluate run --reference data --seconds 1 --samples 1 -o run", "holds the input",
     None),
]


@pytest.mark.parametrize("argv, expected, setup", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(world, tmp_path, monkeypatch, capsys, argv, expected,
                                                          setup):
    root = tmp_path / "w"
    shutil.copytree(world, root, symlinks=True)
    monkeypatch.chdir(root)
    if setup is not None:
        setup(root)
    before = tree(tmp_path)
    try:
        code = main(argv.split() + ["--quiet"])
    except SystemExit as exit_:  # pragma: no cover - main returns its codes; kept as a safety net
        code = exit_.code
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("dancenet: error: "), stderr
    assert expected in lines[0], lines[0]
    assert tree(tmp_path) == before  # every input intact, nothing written anywhere, no .partial


def test_deep_bvh_under_the_joint_limit_parses_without_recursion(tmp_path):
    from dancenet.ingest.bvh import parse_bvh

    path = tmp_path / "deep.bvh"
    path.write_text(chain_bvh(1900))
    motion = parse_bvh(path)
    assert motion.skeleton.joint_count == 1902  # root + 1900 + End Site
    assert motion.skeleton.parents[1500] == 1499


def test_an_earlier_dataset_is_replaced_with_overwrite(world, tmp_path, capsys):
    out = tmp_path / "data"
    shutil.copytree(world / "data", out)
    assert main(["prepare", str(world / "bvh/a.bvh"), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert [clip["name"] for clip in json.loads((out / "manifest.json").read_text())["clips"]] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def _partials(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")]


def test_kill_during_prepare_then_the_next_run_succeeds_and_leaves_nothing(tmp_path):
    """kill -9 at a random moment while the dataset is being written; the next prepare of the
    same --out succeeds and removes what the killed one left."""
    source = tmp_path / "bvh"
    source.mkdir()
    for index in range(3):
        write_synthetic_bvh(source / f"take{index}.bvh", frames=1500)
    out = tmp_path / "data"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    chance = random.Random()
    killed_with_leftover = 0
    for attempt in range(2):
        shutil.rmtree(out, ignore_errors=True)
        process = subprocess.Popen([sys.executable, "-m", "dancenet.cli", "prepare", str(source), "--out",
                                    str(out), "--quiet", "--overwrite"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not _partials(tmp_path) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(chance.uniform(0.0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_with_leftover += bool(_partials(tmp_path))
        assert main(["prepare", str(source), "--out", str(out), "--quiet", "--overwrite"]) == 0
        assert _partials(tmp_path) == [], "the next run left the killed run's temporaries"
        assert sorted(p.name for p in out.iterdir()) == ["frames.bin", "joints.npy", "manifest.json"]
    assert killed_with_leftover, "no kill landed while the dataset was being written"


def _mutate(data, chance):
    """``data`` cut short, or with a few bytes replaced, inserted (hostile tokens) or deleted."""
    data = bytearray(data)
    kind = chance.randrange(4)
    if kind == 0:
        return bytes(data[:chance.randrange(len(data))])
    for _ in range(chance.randrange(1, 8)):
        if not data:
            break
        index = chance.randrange(len(data))
        if kind == 1:
            data[index] = chance.randrange(256)
        elif kind == 2:
            data[index:index] = chance.choice([b"9999999999", b"-1", b"nan", b"{", b"}", b"\x00", b"1e308",
                                               b"JOINT x {", b"\n", b'"..", '])
        else:
            del data[index:index + chance.randrange(1, 50)]
    return bytes(data)


def test_randomly_damaged_inputs_never_crash(world, tmp_path, capsys):
    """Seeded random damage to a BVH file, a manifest, a video and an image: every outcome is a
    success or one line with exit 2, never a traceback, and the damaged input is left as it was
    (the seed is fixed, so a failure reproduces)."""
    chance = random.Random(20261129)
    image = tmp_path / "one.png"
    Image.fromarray(np.pad(np.full((20, 20), 255, np.uint8), 14)).save(image)
    originals = {"bvh": (world / "bvh/a.bvh").read_bytes(), "manifest": (world / "data/manifest.json").read_bytes(),
                 "mp4": (world / "in.mp4").read_bytes(), "png": image.read_bytes()}
    for trial in range(120):
        kind = ("bvh", "manifest", "mp4", "png")[trial % 4]
        work = tmp_path / f"t{trial}"
        work.mkdir()
        damaged = _mutate(originals[kind], chance)
        if kind == "manifest":
            shutil.copytree(world / "data", work / "d")
            source = work / "d/manifest.json"
            source.write_bytes(damaged)
            argv = [["info", work / "d"], ["preview", work / "d", "-o", work / "s.png"]][trial % 8 // 4]
        else:
            name = {"bvh": "x.bvh", "mp4": "x.mp4", "png": "imgs/0.png"}[kind]
            source = work / name
            source.parent.mkdir(exist_ok=True)
            source.write_bytes(damaged)
            argv = ["prepare", work / (name if kind != "png" else "imgs"), "--out", work / "o"]
        code = main([str(part) for part in argv] + ["--quiet"])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 0 or (code == 2 and len(lines) == 1 and lines[0].startswith("dancenet: error: ")), \
            (trial, kind, code, lines)
        assert source.read_bytes() == damaged
        assert code == 0 or not (work / "o").exists()
