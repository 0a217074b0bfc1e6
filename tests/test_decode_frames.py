from __future__ import annotations

import numpy as np
import pytest

from pipeline.decode.frames import Window, clip_windows, crop_or_pad, resample_indices, scaled_size


def test_resample_indices() -> None:
    assert resample_indices(10, 30.0, None).tolist() == list(range(10))
    assert resample_indices(10, 30.0, 15.0).tolist() == [0, 2, 4, 6, 8]
    assert resample_indices(12, 24.0, 10.0).tolist() == [0, 2, 5, 7, 10]  # 0.5 s -> 5 frames, nearest to j * 2.4
    assert resample_indices(1, 24.0, 8.0).tolist() == [0]
    assert resample_indices(3, 10.0, 20.0).tolist() == [0, 1, 1, 2, 2, 2]
    assert resample_indices(0, 24.0, 8.0).tolist() == []
    with pytest.raises(ValueError, match="source fps is unknown"):
        resample_indices(10, 0.0, 8.0)


def test_clip_windows() -> None:
    assert clip_windows(20, 9, 9, None, "pad") == [Window(0, 9, 0), Window(9, 9, 0)]
    assert clip_windows(20, 5, 2, 3, "pad") == [Window(0, 5, 0), Window(2, 5, 0), Window(4, 5, 0)]
    assert clip_windows(3, 9, 9, None, "pad") == [Window(0, 3, 6)]
    assert clip_windows(3, 9, 9, None, "error") == []
    assert clip_windows(0, 9, 9, None, "pad") == []
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        clip_windows(10, 6, 1, None, "pad")


@pytest.mark.parametrize(
    ("src", "out", "mode", "expected"),
    [
        ((720, 1280), (256, 256), "crop", (256, 455)),
        ((720, 1280), (256, 256), "pad", (144, 256)),
        ((61, 97), (64, 64), "crop", (64, 102)),
        ((40, 1000), (64, 64), "pad", (3, 64)),
        ((40, 1000), (64, 64), "crop", (64, 1600)),
        ((1000, 1), (8, 8), "pad", (8, 1)),
    ],
)
def test_scaled_size(src: tuple[int, int], out: tuple[int, int], mode: str, expected: tuple[int, int]) -> None:
    assert scaled_size(src, out, mode) == expected


def test_crop_or_pad_centers() -> None:
    x = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    assert np.array_equal(crop_or_pad(x, (4, 2)), x[:, :, 2:4])
    padded = crop_or_pad(x, (8, 6))
    assert padded.shape == (2, 8, 6, 3) and np.array_equal(padded[:, 2:6], x) and padded[:, :2].max() == 0
