"""The guide's screenshots (``docs/vi/``) are taken by the same code as ``make screenshots``, here into a
temporary folder: every picture exists, has the viewport's size (or a card's) and shows a real page,
not a blank or a broken one."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.screenshots import GUIDE_IMAGES, SHOTS, VIEWPORT, shoot
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def pixels(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_screenshots_show_the_pages(browser, single_server: ServerProcess, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    taken = shoot(browser, single_server, tmp_path)
    assert [p.name for p in taken] == list(SHOTS)
    for path in taken:
        image = pixels(path)
        height, width, _ = image.shape
        if path.name != "point-headcount.png":  # one card, not the whole page
            assert (width, height) == (VIEWPORT["width"], VIEWPORT["height"]), path.name
        assert image.std() > 20, f"{path.name} is nearly uniform"
        colours = (image[..., 0].astype(np.uint32) << 16) | (image[..., 1].astype(np.uint32) << 8) | image[..., 2]
        assert len(np.unique(colours)) > 50, f"{path.name} has too few colours"
    # The live pages show the camera's picture: the fake device paints a green frame.
    for name in ("speaker-live.png", "point-watching.png"):
        stage = pixels(tmp_path / name)[120:600, 180:1100]
        assert stage[..., 1].mean() > stage[..., 0].mean() + 40, f"{name}: no picture in the video area"


def test_the_guide_uses_every_screenshot() -> None:
    guide = "\n".join(p.read_text(encoding="utf-8") for p in (GUIDE_IMAGES.parent).glob("*.md"))
    for name in SHOTS:
        assert f"img/{name}" in guide, f"docs/vi does not show {name}"
        assert (GUIDE_IMAGES / name).is_file(), f"{name} is missing: run `make screenshots`"
