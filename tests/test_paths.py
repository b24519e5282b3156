"""The guards every command uses (dancenet.paths) and the cleanup of killed writers' temporaries
(dancenet.atomic), tested directly."""

import os
import subprocess
import sys

import pytest

from dancenet.atomic import atomic_directory, atomic_file, remove_stale_partials, remove_stale_partials_in
from dancenet.errors import DancenetError, one_line, user_errors
from dancenet.paths import check_name, check_output, check_replaceable, member, run_files


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_check_output_refuses_the_input_its_folder_and_a_folder_holding_it(tmp_path):
    source = tmp_path / "src"
    (source / "deep").mkdir(parents=True)
    (source / "take.bvh").write_text("x")
    (tmp_path / "link").symlink_to(source)
    for output, message in [(source, "is also an input"), (tmp_path / "link", "is also an input"),
                            (source / "deep/out", "inside the input folder"), (tmp_path, "holds the input"),
                            (tmp_path / "link/new", "inside the input folder")]:
        with pytest.raises(DancenetError, match=message):
            check_output(output, [source, None], "--out")
    with pytest.raises(DancenetError, match="holds the input"):
        check_output(source, [source / "take.bvh"])
    assert check_output(tmp_path / "elsewhere", [source]) == tmp_path / "elsewhere"
    # a file input: an output beside it is fine, the file itself is not
    assert check_output(source / "take.mp4", [source / "take.bvh"]) == source / "take.mp4"


def test_check_replaceable_replaces_only_dancenets_own_folder(tmp_path):
    def made(folder):
        return (folder / "manifest.json").is_file()

    def allowed(name):
        return name in {"manifest.json", "frames.bin"}

    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "manifest.json").write_text("{}")
    assert check_replaceable(ours, made, allowed, "a dataset") == ours
    with pytest.raises(DancenetError, match="pass --overwrite"):
        check_replaceable(ours, made, allowed, "a dataset", overwrite=False)
    (ours / "thesis.txt").write_text("mine")
    with pytest.raises(DancenetError, match=r"did not write \(thesis.txt\)"):
        check_replaceable(ours, made, allowed, "a dataset")
    unmarked = tmp_path / "unmarked"
    unmarked.mkdir()
    (unmarked / "frames.bin").write_bytes(b"")
    with pytest.raises(DancenetError, match="not a dataset made by dancenet"):
        check_replaceable(unmarked, made, allowed, "a dataset")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DancenetError, match="not a folder"):
        check_replaceable(tmp_path / "file", made, allowed, "a dataset")
    (tmp_path / "empty").mkdir()
    assert check_replaceable(tmp_path / "empty", made, allowed, "a dataset", overwrite=False)
    assert check_replaceable(tmp_path / "absent", made, allowed, "a dataset", overwrite=False)


def test_member_keeps_data_files_inside_their_folder(tmp_path):
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (tmp_path / "secret").write_text("x")
    (folder / "out").symlink_to(tmp_path / "secret")
    assert member(folder, "frames.bin", "frames.file") == folder / "frames.bin"
    assert member(folder, "sub/frames.bin", "frames.file") == folder / "sub/frames.bin"
    for name, message in [("../secret", "points outside"), (str(tmp_path / "secret"), "points outside"),
                          ("sub/../../secret", "points outside"), ("out", "link leading outside"),
                          ("", "must be a file name"), (None, "must be a file name"), (3, "must be a file name")]:
        with pytest.raises(DancenetError, match=message):
            member(folder, name, "frames.file", source=folder / "manifest.json")


@pytest.mark.parametrize("name", ["motion", "motion-2", "take_01.v2", "a" * 100])
def test_plain_names_pass(name):
    assert check_name(name, "--name") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", ".hidden", "-x", "a\\b", "a" * 101, "x\x00"])
def test_paths_are_not_names(name):
    with pytest.raises(DancenetError, match="--name"):
        check_name(name, "--name")


def test_run_files_lists_what_a_command_reads(tmp_path):
    for name in ("vae.json", "vae.safetensors", "motion.json", "fast.json", "latents.npz", "dance.mp4"):
        (tmp_path / name).write_text("x")
    (tmp_path / "vae-train").mkdir()
    assert [p.name for p in run_files(tmp_path, ("vae", "fast"))] == ["fast.json", "latents.npz", "vae.json",
                                                                     "vae.safetensors"]
    assert run_files(None) == [] and run_files(tmp_path / "missing") == []


def test_killed_writers_temporaries_go_on_the_next_write_live_ones_stay(tmp_path):
    target = tmp_path / "data"
    pid = dead_pid()
    stale_folder = tmp_path / f".data.{pid}.abcd1234.partial"
    stale_folder.mkdir()
    (stale_folder / "frames.bin").write_bytes(bytes(1000))
    live = tmp_path / f".data.{os.getppid()}.efgh5678.partial"
    live.mkdir()
    other = tmp_path / f".other.{pid}.ijkl9012.partial"
    other.mkdir()
    with atomic_directory(target) as folder:
        (folder / "x").write_text("new")
    assert not stale_folder.exists() and live.is_dir() and other.is_dir()
    stale_file = tmp_path / f".dance.{pid}.mnop3456.partial.mp4"
    stale_file.write_bytes(b"half")
    with atomic_file(tmp_path / "dance.mp4") as temporary:
        temporary.write_bytes(b"whole")
    assert not stale_file.exists() and (tmp_path / "dance.mp4").read_bytes() == b"whole"


def test_a_folder_caught_between_the_renames_of_a_replace_is_put_back(tmp_path):
    target = tmp_path / "data"
    backup = tmp_path / ".data.old"
    backup.mkdir()
    (backup / "manifest.json").write_text("old")
    assert remove_stale_partials(target) == []
    assert (target / "manifest.json").read_text() == "old" and not backup.exists()
    backup.mkdir()  # beside an existing target, a leftover backup is removed
    remove_stale_partials(target)
    assert not backup.exists() and target.is_dir()


def test_one_line_and_user_errors():
    assert one_line(DancenetError("a.bvh: line 3:\nbad")) == "a.bvh: line 3: bad"
    assert one_line(FileNotFoundError(2, "No such file or directory", "x.mp4")) == "x.mp4: No such file or directory"
    assert one_line(MemoryError()).startswith("not enough memory")
    with pytest.raises(DancenetError, match=r"^clip.mp4: cannot be read as a video \(boom\)$"):
        with user_errors("clip.mp4", "cannot be read as a video", KeyError, ValueError):
            raise ValueError("boom")
    with pytest.raises(ZeroDivisionError):  # not listed: a bug keeps its traceback
        with user_errors("clip.mp4", "cannot be read as a video", ValueError):
            1 / 0


def test_a_folders_dead_writers_temporaries_all_go_live_ones_and_other_files_stay(tmp_path):
    pid = dead_pid()
    stale = [tmp_path / f".vae.{pid}.ab12cd34.partial.safetensors",
             tmp_path / f".checkpoint.{pid}.x_9y8z7w.partial.pt",
             tmp_path / f".motion.v2.{pid}.qq11rr22.partial.json"]
    live = tmp_path / f".metrics.{os.getpid()}.ss33tt44.partial.csv"
    kept = [tmp_path / "vae.safetensors", tmp_path / ".hidden-notes", live]
    for path in stale + kept:
        path.write_text("x")
    assert sorted(remove_stale_partials_in(tmp_path)) == sorted(stale)
    assert all(path.exists() for path in kept) and not any(path.exists() for path in stale)
    assert remove_stale_partials_in(tmp_path / "missing") == []
