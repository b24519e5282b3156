"""Contact sheets: layout, grid lines, labels, input kinds and atomic saving."""

import numpy as np
import pytest
from PIL import Image

from dancenet.errors import DancenetError
from dancenet.sheet import GRID_COLOUR, contact_sheet, save_contact_sheet


def frames(count=5, height=6, width=10):
    result = np.zeros((count, height, width), dtype=bool)
    for index in range(count):
        result[index, 1:4, index:index + 3] = True
    return result


def test_layout_tiles_and_grid_lines():
    tiles = frames()
    image = np.asarray(contact_sheet(tiles, columns=3, scale=2))
    assert image.shape == (2 * 12 + 3, 3 * 20 + 4, 3)
    # Grid lines: the first row and column, and between tiles.
    assert (image[0] == GRID_COLOUR).all() and (image[:, 0] == GRID_COLOUR).all()
    assert (image[:, 21] == GRID_COLOUR).all()
    # Tile 4 (row 1, column 1) is the frame upsampled by 2, white on black.
    tile = image[1 + 12 + 1:1 + 12 + 1 + 12, 1 + 20 + 1:1 + 20 + 1 + 20, 0]
    assert np.array_equal(tile, tiles[4].repeat(2, 0).repeat(2, 1) * 255)
    # The missing sixth tile stays grid-coloured.
    assert (image[14:26, 43:63] == GRID_COLOUR).all()


def test_input_kinds_agree():
    tiles = frames()
    as_bool = np.asarray(contact_sheet(tiles, 5))
    assert np.array_equal(as_bool, np.asarray(contact_sheet(tiles.astype(np.uint8), 5)))
    assert np.array_equal(as_bool, np.asarray(contact_sheet(tiles.astype(np.uint8) * 255, 5)))
    assert np.array_equal(as_bool, np.asarray(contact_sheet(tiles.astype(np.float32), 5)))


def test_labels_are_drawn_only_where_given():
    tiles = np.zeros((2, 30, 60), dtype=bool)
    plain = np.asarray(contact_sheet(tiles, 2))
    labelled = np.asarray(contact_sheet(tiles, 2, labels=["1.5s", ""]))
    changed = np.argwhere((plain != labelled).any(axis=2))
    assert len(changed) > 0
    assert changed[:, 1].max() < 61  # only inside the first tile


def test_bad_arguments():
    with pytest.raises(ValueError):
        contact_sheet(np.zeros((0, 4, 4)), 2)
    with pytest.raises(ValueError):
        contact_sheet(frames(), 2, labels=["a"])


def test_save_is_atomic_and_checks_the_extension(tmp_path):
    path = tmp_path / "sheet.png"
    save_contact_sheet(path, frames(), 2, labels=list("abcde"))
    assert Image.open(path).size == contact_sheet(frames(), 2).size
    with pytest.raises(DancenetError, match="extension"):
        save_contact_sheet(tmp_path / "sheet.nope", frames(), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]
