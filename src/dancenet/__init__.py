"""dancenet: learn how a dancer moves from video or motion capture, then generate new dance videos.

Python API::

    import dancenet
    dancer = dancenet.load()                      # the bundled salsa model, or load("runs/me")
    frames = dancer.generate(seconds=10, seed=0)  # (frames, height, width) uint8, 0 or 255
    for chunk in dancer.stream(seconds=600):      # long videos without holding them in memory
        ...
    dancer.write("dance.mp4", seconds=60, seed=1, scale=4)
    dancer.write("dance.mp4", music="song.mp3")   # dances to the song, the song in the mp4

Importing the package is cheap: torch and the models load inside :func:`load`.
"""

from __future__ import annotations

__version__ = "0.1.0"


def load(run=None, device="cpu", motion_name="motion"):
    """Load a run's VAE and motion model (``run=None``: the bundled salsa model).

    Returns a :class:`dancenet.generate.Dancer` with ``generate(seconds=None, seed=0,
    temperature=None, sigma_temperature=None, prime=None, music=None) -> (frames, height, width)
    uint8`` (temperatures left as None take the model's recommended values; seconds None = 60, or
    the song's length with ``music``, a path or :class:`dancenet.music.Music`),
    ``stream(...)`` yielding (n, height, width) uint8 chunks, and ``write(path, ...)``.
    """
    from .generate import load as load_dancer

    return load_dancer(run, device=device, motion_name=motion_name)
