"""Small models the tests share (no checkpoint file, nothing trained)."""

from __future__ import annotations

import torch

from tokenizer.adaptive.model import AdaptiveTokenizer
from tokenizer.adaptive.modules import ADAPTIVE_PRESETS
from tokenizer.config import PRESETS
from tokenizer.nn.model import VideoTokenizer


def small_adaptive_model() -> AdaptiveTokenizer:
    """A random-init `tiny` adaptive model (a non-identity decompressor) with E[I] 0.3 and E[s] 1.5."""
    torch.manual_seed(0)
    m = AdaptiveTokenizer(VideoTokenizer(PRESETS["tiny"]), ADAPTIVE_PRESETS["tiny"]).eval()
    with torch.no_grad():
        m.decompressor.net.out.weight.normal_(0, 0.05)
    m.set_mean_info(0.3, 1)
    m.set_mean_info(1.5, 1, "gain")
    return m
