"""`dancenet prepare / info / preview` end to end, and their one-line errors for bad input."""

import numpy as np
import pytest
from PIL import Image

from dancenet.cli import main
from dancenet.dataset import Dataset


def write_image_folder(folder, count=6, size=(64, 48)):
    folder.mkdir(parents=True)
    for index in range(1, count + 1):
        frame = np.zeros((size[1], size[0]), np.uint8)
        frame[10:30, 5 + 3 * index: 20 + 3 * index] = 255
        Image.fromarray(frame).save(folder / f"{index}.png")
    return folder


def run_cli(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prepare_info_preview(tmp_path, capsys):
    images = write_image_folder(tmp_path / "imgs")
    out = tmp_path / "data"
    code, stdout, _ = run_cli(["prepare", str(images), "--out", str(out), "--size", "32x24",
                               "--segment", "threshold", "--quiet"], capsys)
    assert code == 0 and Dataset(out).size == (24, 32) and len(Dataset(out)) == 6
    code, stdout, _ = run_cli(["info", str(out)], capsys)
    assert code == 0 and "6 frames" in stdout and "threshold" in stdout
    sheet = tmp_path / "sheet.png"
    code, _, _ = run_cli(["preview", str(out), "-o", str(sheet), "--quiet"], capsys)
    assert code == 0 and Image.open(sheet).size[0] > 32


@pytest.mark.parametrize("extra, message", [
    (["--size", "0x5"], "--size 0x5"),
    (["--size", "big"], "--size big"),
    (["--fps", "-1"], "--fps -1"),
    (["--source-fps", "0"], "--source-fps 0"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, extra, message):
    images = write_image_folder(tmp_path / "imgs")
    code, _, stderr = run_cli(["prepare", str(images), "--out", str(tmp_path / "data"), *extra], capsys)
    assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_missing_source_and_existing_dataset(tmp_path, capsys):
    missing = tmp_path / "nothing.mp4"
    code, _, stderr = run_cli(["prepare", str(missing), "--out", str(tmp_path / "data")], capsys)
    assert code == 2 and str(missing) in stderr and "Traceback" not in stderr
    images = write_image_folder(tmp_path / "imgs")
    argv = ["prepare", str(images), "--out", str(tmp_path / "data"), "--size", "32x24", "--quiet"]
    assert run_cli(argv, capsys)[0] == 0
    code, _, stderr = run_cli(argv, capsys)
    assert code == 2 and "--overwrite" in stderr
    assert run_cli(argv + ["--overwrite"], capsys)[0] == 0


def test_info_on_a_folder_that_is_no_dataset(tmp_path, capsys):
    code, _, stderr = run_cli(["info", str(tmp_path)], capsys)
    assert code == 2 and "not a dancenet dataset" in stderr


def test_unwritable_output_is_a_one_line_error(tmp_path, capsys):
    images = write_image_folder(tmp_path / "imgs")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, stderr = run_cli(["prepare", str(images), "--out", str(blocker / "data"), "--quiet"], capsys)
    assert code == 2 and str(blocker) in stderr and len(stderr.strip().splitlines()) == 1
