"""InfoTok adaptive tokenizer (arXiv 2512.16975): base FSQ tokenizer (a
`tokenizer.base.protocol.BaseTokenizer`: the shipped `VideoTokenizer` or a Cosmos DV base) + a
router (one of `tokenizer.adaptive.routers.registry`, each in its own module there) + compressor /
decompressor, with the public `tokenize` / `detokenize` API.

Tokenizing a clip costs one base encode and one compressor pass, plus the router's own work
(`Router.passes`). Each clip of a batch keeps its own number of tokens.
Detokenizing costs one decompressor pass and one base decode. A base whose decoder takes integer
indices (Cosmos DV) decodes the decompressed codes quantized to their nearest code's index, and
its adaptive layer is trained in code space (`forward_codes`).

Video layout everywhere: (B, 3, T, H, W) float in [-1, 1], T = 1 + 4k, H and W multiples
of 8; latent grid (t, h, w) = (1 + k, H/8, W/8).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tokenizer.adaptive.clip_descriptors import DESCRIPTOR_NAMES
from tokenizer.adaptive.coverage import covering_keep
from tokenizer.adaptive.curve_fit import CorpusFit
from tokenizer.adaptive.latent_router import LatentRouterHead, SlopeRegressor
from tokenizer.adaptive.modules import AdaptiveConfig, Compressor, Decompressor
from tokenizer.adaptive.router import budget_tokens, check_beta, token_scores
from tokenizer.adaptive.routers.base import Scored
from tokenizer.adaptive.routers.gain2 import curve_rates
from tokenizer.adaptive.routers.gain2_curves import GAIN2_CURVES_KEY, GAIN2_RATES_KEY, Gain2Calibration
from tokenizer.adaptive.routers.registry import PAPER_ROUTER, get_router, router_names
from tokenizer.adaptive.tokens import AdaptiveTokens
from tokenizer.base.protocol import BaseTokenizer
from tokenizer.nn.model import Encoding, check_video_shape, num_params
from tokenizer.video import psnr

logger = logging.getLogger(__name__)

BetaArg = float | Sequence[float] | torch.Tensor


@dataclass(frozen=True)
class Routing:
    """Result of `AdaptiveTokenizer.route`.

    encoding: the base `Encoding` of the clips.
    scores: (B, t, h, w) float32 per-token scores.
    info: (B,) the router's signal (I(x) for elbo, s for gain and gain2, s^ for latent); rate: (B,) r_x
    in [1/16, 1]; beta: (B,) the betas used; router: the router's kind.
    n_keep: (B,) int64 N_x; keep: (B, t, h, w) bool with n_keep[b] positions set.
    """

    encoding: Encoding
    scores: torch.Tensor
    info: torch.Tensor
    rate: torch.Tensor
    beta: torch.Tensor
    n_keep: torch.Tensor
    keep: torch.Tensor
    router: str = PAPER_ROUTER


@dataclass(frozen=True)
class AdaptiveOutput:
    """Result of `AdaptiveTokenizer.forward`, the same in train and eval.

    reconstruction: (B, 3, T, H, W) float, not clamped.
    codes: (B, t, h, w, D) quantized codes at kept positions, zero at dropped ones.
    indices: (B, t, h, w) int64 token ids (meaningful at kept positions only).
    keep: (B, t, h, w) bool.
    """

    reconstruction: torch.Tensor
    codes: torch.Tensor
    indices: torch.Tensor
    keep: torch.Tensor


def _beta_vector(beta: BetaArg, batch: int) -> torch.Tensor:
    """Scalar or per-clip betas -> validated (B,) float32."""
    if isinstance(beta, (int, float)):
        values = [check_beta(beta)] * batch
    else:
        values = [check_beta(b) for b in (beta.flatten().tolist() if isinstance(beta, torch.Tensor) else beta)]
        if len(values) != batch:
            raise ValueError(f"got {len(values)} betas for a batch of {batch} clips")
    return torch.tensor(values, dtype=torch.float32)


def router_means() -> dict[str, tuple[str, str]]:
    """The buffers holding each router's E[signal] and how many clips it was measured on."""
    return {n: r.mean_buffers for n in router_names() if (r := get_router(n)).mean_buffers is not None}


class _ModelState:
    """The model's adaptive state as a router's readiness check reads it (`RouterState`)."""

    where = "this checkpoint"

    def __init__(self, model: AdaptiveTokenizer) -> None:
        self.model = model

    def has(self, name: str) -> bool:
        if name in (GAIN2_CURVES_KEY, GAIN2_RATES_KEY):
            return self.model.gain2 is not None
        return name in dict(self.model.named_buffers())

    def value(self, name: str) -> float:
        buffers = dict(self.model.named_buffers())
        return float(buffers[name]) if name in buffers else float("nan")


# tensors a checkpoint written before the gain and latent routers does not have
OPTIONAL_STATE_PREFIXES: tuple[str, ...] = ("latent_head.", "mean_gain", "gain_count", "mean_latent", "latent_count",
                                            "latent_head_steps", "latent_slope.")
# tensors of checkpoints written before the latent slope came from clip descriptors (the head's
# own slope branch): read, counted in the tokenizer id, not used
LEGACY_STATE_PREFIXES: tuple[str, ...] = ("latent_head.clip.",)


class AdaptiveTokenizer(nn.Module):
    """Fixed-rate base tokenizer (`BaseTokenizer`) plus the InfoTok adaptive layer, the latent router's head and
    each router's E[signal], and the gain2 router's calibration curves (`gain2`, None until
    `infotok calibrate --router gain2` measures them; its E[signal] is their mean slope).

    `mean_info` (E[I], elbo), `mean_gain` (E[s]) and `mean_latent` (E[s^]) are buffers: NaN until
    training or calibration sets them. `latent_head_steps` counts the head's training steps
    (0: untrained, the latent router refuses to run); `latent_slope` is the latent router's slope
    fit on clip descriptors (unfitted in checkpoints from before it: the latent router refuses).
    """

    def __init__(self, base: BaseTokenizer, cfg: AdaptiveConfig) -> None:
        super().__init__()
        self.base = base
        self.config = cfg
        dim = base.fsq.dim
        self.compressor = Compressor(cfg, dim)
        self.decompressor = Decompressor(cfg, dim)
        self.latent_head = LatentRouterHead(dim)
        self.latent_slope = SlopeRegressor(len(DESCRIPTOR_NAMES))
        for mean, count in router_means().values():
            self.register_buffer(mean, torch.tensor(float("nan"), dtype=torch.float64))
            self.register_buffer(count, torch.tensor(0, dtype=torch.int64))
        self.register_buffer("latent_head_steps", torch.tensor(0, dtype=torch.int64))
        self.gain2: Gain2Calibration | None = None
        self.corpus_fit: CorpusFit | None = None

    # ---- parameters and E[I] ---------------------------------------------------------
    def adaptive_modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({"compressor": self.compressor, "decompressor": self.decompressor})

    def param_overhead(self) -> float:
        """Adaptive-layer parameters as a fraction of the base tokenizer's."""
        return num_params(self.adaptive_modules()) / num_params(self.base)

    @torch.no_grad()
    def update_mean_info(self, info: torch.Tensor, decay: float) -> None:
        """EMA update of E[I] with the batch mean of info (B,); the first update sets it."""
        batch_mean = float(info.double().mean())
        if int(self.info_count) == 0 or not math.isfinite(float(self.mean_info)):
            self.mean_info.fill_(batch_mean)
        else:
            self.mean_info.mul_(decay).add_((1 - decay) * batch_mean)
        self.info_count.add_(info.numel())

    def set_mean_info(self, value: float, count: int, router: str = PAPER_ROUTER) -> None:
        """Set a router's E[signal] from a calibration pass over `count` clips."""
        get_router(router).set_mean(self, value, count)

    def set_gain2(self, calibration: Gain2Calibration | None) -> None:
        """Set (or clear) the gain2 router's calibration curves."""
        self.gain2 = calibration

    def set_corpus_fit(self, fit: CorpusFit | None) -> None:
        """Set (or clear) the fitted router's per-corpus fit (`tokenizer.adaptive.curve_fit`)."""
        self.corpus_fit = fit

    def mean_signal(self, router: str) -> float:
        """The router's E[signal] (NaN when never trained or calibrated)."""
        return get_router(router).mean_signal(self)

    def signal_count(self, router: str) -> int:
        """How many clips the router's E[signal] was measured on."""
        return get_router(router).signal_count(self)

    def check_router_ready(self, router: str, calibrated: bool = True) -> None:
        """Raise ValueError unless this model can route with `router` (`Router.problem`: e.g. the
        latent head trained; with `calibrated`, the gain2 router's calibration curves there)."""
        problem = get_router(router).problem(_ModelState(self), calibrated=calibrated)
        if problem is not None:
            raise ValueError(problem)

    def gain2_rates(self) -> tuple[float, ...]:
        """The gain2 router's curve rates: the calibration's (its probes and 1), else the default probes and 1."""
        return curve_rates(self)

    # ---- the pieces ------------------------------------------------------------------
    @torch.no_grad()
    def information(self, video: torch.Tensor, encoding: Encoding | None = None) -> tuple[Encoding, torch.Tensor]:
        """Base encode (unless given) + one full-rate decode -> (encoding, scores (B, t, h, w))."""
        enc = encoding if encoding is not None else self.base.encode(video)
        recon = self.base.decode(enc.codes)  # (B, 3, T, H, W) the router's decoder pass
        return enc, token_scores(recon, video)

    def bounded_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Pre-quantization latent (B, t, h, w, D) -> FSQ-bounded and scaled to about [-1, 1]."""
        fsq = self.base.fsq
        return fsq.bound(latent) / (fsq._levels // 2).to(latent.dtype)

    @torch.no_grad()
    def probe_psnr(self, video: torch.Tensor, encoding: Encoding, scores: torch.Tensor, rate: float,
                   coverage: float = 0.0) -> torch.Tensor:
        """PSNR (B,) of the adaptive reconstruction keeping `rate` of the tokens by score (the covering
        keep at weight `coverage`, `tokenizer.adaptive.coverage`; 0: the top by score)."""
        n = budget_tokens(torch.full((video.shape[0],), float(rate), device=scores.device), scores[0].numel())
        y = self(video, covering_keep(scores, n, coverage), encoding=encoding).reconstruction  # compressor + decoder
        return psnr(y.float().clamp(-1, 1), video.float())

    @torch.no_grad()
    def score(self, video: torch.Tensor, router: str = PAPER_ROUTER, encoding: Encoding | None = None) -> Scored:
        """The router's token scores and budget signal for video (B, 3, T, H, W) in [-1, 1]
        (gain2: also its curve, at the calibration's rates; no calibration needed)."""
        self.check_router_ready(router, calibrated=False)
        enc = encoding if encoding is not None else self.base.encode(video)
        return get_router(router).score(self, video, enc)

    def budget(self, scored: Scored, betas: torch.Tensor, mean_info: float | None = None) -> torch.Tensor:
        """The clips' rates (B,) in [1/16, 1] at betas (B,) by the router's rule (`Router.budget`):
        `budget_rate` with the router's E[signal] (mean_info overrides the checkpoint's), or for gain2
        its curve rule with the calibration's lam."""
        return get_router(scored.router).budget(self, scored, betas, mean_info)

    @torch.no_grad()
    def route(self, video: torch.Tensor, beta: BetaArg, mean_info: float | None = None,
              router: str = PAPER_ROUTER) -> Routing:
        """video (B, 3, T, H, W) in [-1, 1]; beta scalar or (B,) in (0, 1]; E[signal] override
        (None: the checkpoint's for this router)."""
        check_video_shape(video)
        self.check_router_ready(router)
        betas = _beta_vector(beta, video.shape[0]).to(video.device)
        get_router(router).check_route(self, mean_info)  # e.g. a missing E[signal], before any model pass
        scored = self.score(video, router)
        rate = self.budget(scored, betas, mean_info)  # (B,)
        n_keep = budget_tokens(rate, scored.scores[0].numel())  # (B,)
        return Routing(encoding=scored.encoding, scores=scored.scores, info=scored.signal, rate=rate, beta=betas,
                       n_keep=n_keep, keep=scored.keep(n_keep), router=router)

    def compress(self, latent: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """latent (B, t, h, w, D) pre-quantization, keep (B, t, h, w) bool ->
        (codes (B, t, h, w, D) in [-1, 1], zero where dropped; indices (B, t, h, w) int64)."""
        fsq = self.base.fsq
        codes = fsq(self.compressor(self.bounded_latent(latent), latent, keep))  # (B, t, h, w, D)
        indices = fsq.codes_to_indices(codes.detach())  # (B, t, h, w)
        return codes * keep.unsqueeze(-1).to(codes.dtype), indices

    def decode_masked(self, codes: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """codes (B, t, h, w, D) (dropped positions ignored), keep (B, t, h, w) -> video, not clamped."""
        return self.base.decode(self.decompressor(codes, keep))  # (B, 3, T, H, W)

    def forward(self, video: torch.Tensor, keep: torch.Tensor, encoding: Encoding | None = None) -> AdaptiveOutput:
        """Reconstruct video (B, 3, T, H, W) keeping the positions of keep (B, t, h, w) bool.

        The base encoder is run without gradients (it is frozen in stage 2) unless `encoding` is given.
        """
        if encoding is None:
            with torch.no_grad():
                encoding = self.base.encode(video)
        if keep.shape != encoding.indices.shape or keep.dtype != torch.bool:
            raise ValueError(f"keep must be bool {tuple(encoding.indices.shape)}, got {keep.dtype} {tuple(keep.shape)}")
        codes, indices = self.compress(encoding.latent, keep)
        return AdaptiveOutput(reconstruction=self.decode_masked(codes, keep), codes=codes, indices=indices, keep=keep)

    def forward_codes(self, keep: torch.Tensor, encoding: Encoding) -> tuple[torch.Tensor, torch.Tensor]:
        """The code-space pass that trains the adaptive layer on a base whose decoder gives no
        gradient (`BaseTokenizer.differentiable_decoder` False): keep (B, t, h, w) bool ->
        (decompressed codes (B, t, h, w, D) with gradient, full-rate codes (B, t, h, w, D) target)."""
        if keep.shape != encoding.indices.shape or keep.dtype != torch.bool:
            raise ValueError(f"keep must be bool {tuple(encoding.indices.shape)}, got {keep.dtype} {tuple(keep.shape)}")
        codes, _ = self.compress(encoding.latent, keep)
        return self.decompressor(codes, keep), encoding.codes.detach()

    # ---- public API ------------------------------------------------------------------
    @torch.no_grad()
    def tokenize(self, video: torch.Tensor, beta: BetaArg, mean_info: float | None = None,
                 router: str = PAPER_ROUTER) -> list[AdaptiveTokens]:
        """video (B, 3, T, H, W) float in [-1, 1] -> one `AdaptiveTokens` per clip.

        beta: compression knob in (0, 1], one for the batch or one per clip; mean_info: the
        router's E[signal] to use instead of the checkpoint's (e.g. a dataset calibration);
        router: one of `tokenizer.adaptive.routers.registry.router_names()`.
        """
        routing = self.route(video, beta, mean_info, router)
        _, indices = self.compress(routing.encoding.latent, routing.keep)
        idx, keep = indices.cpu().numpy(), routing.keep.cpu().numpy()
        return [
            AdaptiveTokens.from_dense(idx[b], keep[b], info=float(routing.info[b]), rate=float(routing.rate[b]),
                                      beta=float(routing.beta[b]))
            for b in range(video.shape[0])
        ]

    @torch.no_grad()
    def detokenize(self, tokens: AdaptiveTokens | Sequence[AdaptiveTokens]) -> torch.Tensor:
        """Tokens of B clips sharing one grid -> video (B, 3, T, H, W) float clamped to [-1, 1]."""
        items = [tokens] if isinstance(tokens, AdaptiveTokens) else list(tokens)
        if not items:
            raise ValueError("detokenize needs at least one AdaptiveTokens")
        grids = {it.grid for it in items}
        if len(grids) != 1:
            raise ValueError(f"clips of one detokenize call must share a grid, got {sorted(grids)}")
        return self.decode_kept(np.stack([it.keep_mask() for it in items]), [it.ids for it in items])

    @torch.no_grad()
    def decode_kept(self, keep: np.ndarray, ids: Sequence[np.ndarray]) -> torch.Tensor:
        """keep (B, t, h, w) bool and each clip's kept ids (raster order of its kept positions) ->
        video (B, 3, T, H, W) float clamped to [-1, 1]."""
        dense = np.zeros(keep.shape, dtype=np.int64)
        for b, clip_ids in enumerate(ids):
            dense[b][keep[b]] = clip_ids
        device = self.mean_info.device
        codes = self.base.fsq.indices_to_codes(torch.from_numpy(dense).to(device))  # (B, t, h, w, D)
        dtype = next(self.parameters()).dtype
        return self.decode_masked(codes.to(dtype), torch.from_numpy(keep).to(device)).clamp(-1, 1)
