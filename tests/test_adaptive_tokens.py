from __future__ import annotations

import numpy as np
import pytest

from tokenizer.adaptive.tokens import MASK_BIT_ORDER, AdaptiveTokens


def _tokens(seed: int = 0, grid=(3, 2, 5)) -> AdaptiveTokens:
    rng = np.random.default_rng(seed)
    keep = rng.random(grid) < 0.4
    keep.flat[0] = True
    indices = rng.integers(0, 64000, size=grid)
    return AdaptiveTokens.from_dense(indices, keep, info=0.123456789, rate=0.4, beta=0.75)


def test_bytes_round_trip_is_exact():
    for seed in range(5):
        tok = _tokens(seed)
        back = AdaptiveTokens.from_bytes(tok.to_bytes())
        assert back.grid == tok.grid and back.mask == tok.mask
        assert back.ids.dtype == np.uint16 and np.array_equal(back.ids, tok.ids)
        assert (back.info, back.rate, back.beta) == (tok.info, tok.rate, tok.beta)
        assert back.to_bytes() == tok.to_bytes()


def test_mask_bit_order_and_id_order():
    assert MASK_BIT_ORDER == "little"
    keep = np.zeros((1, 2, 5), dtype=bool)  # 10 positions -> 2 bytes
    keep[0, 0, 0] = True  # flat 0 -> byte 0 bit 0
    keep[0, 1, 4] = True  # flat 9 -> byte 1 bit 1
    keep[0, 0, 3] = True  # flat 3 -> byte 0 bit 3
    indices = np.arange(10).reshape(1, 2, 5) + 100
    tok = AdaptiveTokens.from_dense(indices, keep, info=0.0, rate=0.3, beta=1.0)
    assert tok.mask == bytes([0b0000_1001, 0b0000_0010])
    assert tok.ids.tolist() == [100, 103, 109]  # raster order of kept positions
    assert np.array_equal(tok.keep_mask(), keep)


def test_inconsistent_streams_refused():
    tok = _tokens()
    blob = tok.to_bytes()
    with pytest.raises(ValueError, match="bytes, grid .* needs"):
        AdaptiveTokens.from_bytes(blob[:-1])
    with pytest.raises(ValueError, match="magic"):
        AdaptiveTokens.from_bytes(b"XXXX" + blob[4:])
    with pytest.raises(ValueError, match="mask keeps .* but there are"):
        AdaptiveTokens(ids=tok.ids[:-1], mask=tok.mask, grid=tok.grid, info=0.0, rate=0.1, beta=1.0)
    with pytest.raises(ValueError, match="padding bits"):
        AdaptiveTokens(ids=np.zeros(1, np.uint16), mask=bytes([0b1000_0000]), grid=(1, 1, 3), info=0.0, rate=1.0,
                       beta=1.0)
    with pytest.raises(ValueError, match="fit uint16"):
        AdaptiveTokens.from_dense(np.full((1, 1, 2), 70000), np.ones((1, 1, 2), bool), 0.0, 1.0, 1.0)
