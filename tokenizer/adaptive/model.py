"""InfoTok adaptive tokenizer (arXiv 2512.16975): base FSQ tokenizer + a router (`elbo`,
`gain`, `gain2` or `latent`, see `tokenizer.adaptive.router` and `tokenizer.adaptive.gain2`) +
compressor / decompressor, with the public `tokenize` / `detokenize` API.

Tokenizing a clip costs one base encode and one compressor pass, plus the router's own work:
`elbo` one full-rate decode; `gain` one full-rate decode and one probe (compressor + decode);
`gain2` one full-rate decode and one probe per probe rate;
`latent` one pass of a small head on the encoder's output and the clip descriptors (a few
pooling passes over the pixels). Each clip of a batch keeps its own number of tokens.
Detokenizing costs one decompressor pass and one base decode.

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

from schemas.routers import check_router
from tokenizer.adaptive.gain2 import GAIN2_PROBE_RATES, Gain2Calibration, curve_rate, curve_slope
from tokenizer.adaptive.clip_descriptors import DESCRIPTOR_NAMES, describe_clip
from tokenizer.adaptive.latent_router import LatentRouterHead, SlopeRegressor
from tokenizer.adaptive.modules import AdaptiveConfig, Compressor, Decompressor
from tokenizer.adaptive.router import (
    GAIN_PROBE_RATE,
    budget_rate,
    budget_tokens,
    check_beta,
    check_mean_info,
    clip_information,
    gain_slope,
    token_scores,
    top_n_mask,
)
from tokenizer.adaptive.tokens import AdaptiveTokens
from tokenizer.nn.model import Encoding, VideoTokenizer, check_video_shape, num_params
from tokenizer.video import psnr

logger = logging.getLogger(__name__)

BetaArg = float | Sequence[float] | torch.Tensor


@dataclass(frozen=True)
class Scored:
    """Result of `AdaptiveTokenizer.score`: a router's two answers before the budget.

    encoding: the base `Encoding`; scores: (B, t, h, w) float32 token scores (higher = keep
    first); signal: (B,) the clip's budget signal (I(x), s or s^; gain2: the slope with its lowest
    probe, for the record); router: its kind. gain2 only: curve (B, K) PSNR in dB at curve_rates
    (its probes and 1), from which its budget comes.
    """

    encoding: Encoding
    scores: torch.Tensor
    signal: torch.Tensor
    router: str
    curve: torch.Tensor | None = None
    curve_rates: tuple[float, ...] = ()


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
    router: str = "elbo"


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


# buffers holding each router's E[signal] and how many clips it was measured on
ROUTER_MEANS: dict[str, tuple[str, str]] = {"elbo": ("mean_info", "info_count"), "gain": ("mean_gain", "gain_count"),
                                             "latent": ("mean_latent", "latent_count")}
# tensors a checkpoint written before the gain and latent routers does not have
OPTIONAL_STATE_PREFIXES: tuple[str, ...] = ("latent_head.", "mean_gain", "gain_count", "mean_latent", "latent_count",
                                            "latent_head_steps", "latent_slope.")
# tensors of checkpoints written before the latent slope came from clip descriptors (the head's
# own slope branch): read, counted in the tokenizer id, not used
LEGACY_STATE_PREFIXES: tuple[str, ...] = ("latent_head.clip.",)


class AdaptiveTokenizer(nn.Module):
    """Fixed-rate `VideoTokenizer` plus the InfoTok adaptive layer, the latent router's head and
    each router's E[signal], and the gain2 router's calibration curves (`gain2`, None until
    `infotok calibrate --router gain2` measures them; its E[signal] is their mean slope).

    `mean_info` (E[I], elbo), `mean_gain` (E[s]) and `mean_latent` (E[s^]) are buffers: NaN until
    training or calibration sets them. `latent_head_steps` counts the head's training steps
    (0: untrained, the latent router refuses to run); `latent_slope` is the latent router's slope
    fit on clip descriptors (unfitted in checkpoints from before it: the latent router refuses).
    """

    def __init__(self, base: VideoTokenizer, cfg: AdaptiveConfig) -> None:
        super().__init__()
        self.base = base
        self.config = cfg
        dim = base.fsq.dim
        self.compressor = Compressor(cfg, dim)
        self.decompressor = Decompressor(cfg, dim)
        self.latent_head = LatentRouterHead(dim)
        self.latent_slope = SlopeRegressor(len(DESCRIPTOR_NAMES))
        for mean, count in ROUTER_MEANS.values():
            self.register_buffer(mean, torch.tensor(float("nan"), dtype=torch.float64))
            self.register_buffer(count, torch.tensor(0, dtype=torch.int64))
        self.register_buffer("latent_head_steps", torch.tensor(0, dtype=torch.int64))
        self.gain2: Gain2Calibration | None = None

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

    def set_mean_info(self, value: float, count: int, router: str = "elbo") -> None:
        """Set a router's E[signal] from a calibration pass over `count` clips."""
        if check_router(router) == "gain2":
            raise ValueError("the gain2 router is calibrated with curves (set_gain2), not an E[signal] value")
        mean, n = ROUTER_MEANS[router]
        getattr(self, mean).fill_(check_mean_info(value, router))
        getattr(self, n).fill_(int(count))

    def set_gain2(self, calibration: Gain2Calibration | None) -> None:
        """Set (or clear) the gain2 router's calibration curves."""
        self.gain2 = calibration

    def mean_signal(self, router: str) -> float:
        """The router's E[signal] (NaN when never trained or calibrated)."""
        if check_router(router) == "gain2":
            return self.gain2.mean_slope if self.gain2 is not None else float("nan")
        return float(getattr(self, ROUTER_MEANS[router][0]))

    def signal_count(self, router: str) -> int:
        """How many clips the router's E[signal] was measured on."""
        if check_router(router) == "gain2":
            return self.gain2.count if self.gain2 is not None else 0
        return int(getattr(self, ROUTER_MEANS[router][1]))

    def check_router_ready(self, router: str, calibrated: bool = True) -> None:
        """Raise ValueError unless this model can route with `router` (the latent head is trained;
        with `calibrated`, the gain2 router has its calibration curves)."""
        if check_router(router) == "latent" and int(self.latent_head_steps) == 0:
            raise ValueError("this checkpoint's latent router head is untrained; train it with "
                             "`infotok train --stage router` or use --router elbo|gain")
        if router == "latent" and not self.latent_slope.fitted:
            raise ValueError("this checkpoint's latent router has no slope fit on clip descriptors (it predates "
                             "them); retrain it with `infotok train --stage router` or use --router elbo|gain")
        if router == "gain2" and calibrated and self.gain2 is None:
            raise ValueError("this checkpoint has no gain2 calibration curves; run `infotok calibrate --router gain2 "
                             "--write-checkpoint NEW` and use NEW")

    def gain2_rates(self) -> tuple[float, ...]:
        """The gain2 router's curve rates: the calibration's (its probes and 1), else the default probes and 1."""
        return self.gain2.rates if self.gain2 is not None else GAIN2_PROBE_RATES + (1.0,)

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
    def probe_psnr(self, video: torch.Tensor, encoding: Encoding, scores: torch.Tensor, rate: float) -> torch.Tensor:
        """PSNR (B,) of the adaptive reconstruction keeping the top `rate` of tokens by score."""
        n = budget_tokens(torch.full((video.shape[0],), float(rate), device=scores.device), scores[0].numel())
        y = self(video, top_n_mask(scores, n), encoding=encoding).reconstruction  # compressor + decoder
        return psnr(y.float().clamp(-1, 1), video.float())

    @torch.no_grad()
    def score(self, video: torch.Tensor, router: str = "elbo", encoding: Encoding | None = None) -> Scored:
        """The router's token scores and budget signal for video (B, 3, T, H, W) in [-1, 1]
        (gain2: also its curve, at the calibration's rates; no calibration needed)."""
        self.check_router_ready(router, calibrated=False)
        enc = encoding if encoding is not None else self.base.encode(video)
        if router == "latent":
            bounded = self.bounded_latent(enc.latent)
            described = describe_clip(video, bounded)
            return Scored(encoding=enc, scores=self.latent_head.scores(bounded, described.detail),
                          signal=self.latent_slope(described.descriptors), router=router)
        if router == "elbo":
            _, scores = self.information(video, enc)  # the paper's full-rate decode
            return Scored(encoding=enc, scores=scores, signal=clip_information(scores), router=router)
        # gain: the full rate through the adaptive path (every token kept), so that PSNR(1) and
        # PSNR(r_lo) come from the same compressor and decoder and their difference is the curve's
        recon = self(video, torch.ones(enc.indices.shape, dtype=torch.bool, device=video.device),
                     encoding=enc).reconstruction
        scores = token_scores(recon, video)
        full = psnr(recon.float().clamp(-1, 1), video.float())
        if router == "gain2":
            rates = self.gain2_rates()
            curve = torch.stack([self.probe_psnr(video, enc, scores, r) for r in rates[:-1]] + [full], 1)  # (B, K)
            return Scored(encoding=enc, scores=scores, signal=curve_slope(curve, rates), router=router,
                          curve=curve.float(), curve_rates=rates)
        probe = self.probe_psnr(video, enc, scores, GAIN_PROBE_RATE)
        return Scored(encoding=enc, scores=scores, signal=gain_slope(full, probe, GAIN_PROBE_RATE), router=router)

    def budget(self, scored: Scored, betas: torch.Tensor, mean_info: float | None = None) -> torch.Tensor:
        """The clips' rates (B,) in [1/16, 1] at betas (B,): `budget_rate` with the router's E[signal]
        (mean_info overrides the checkpoint's), or for gain2 its curve rule with the calibration's lam
        (a mean_info other than the calibration's E[s] is refused: it cannot move lam)."""
        if scored.router != "gain2":
            m = check_mean_info(self.mean_signal(scored.router) if mean_info is None else mean_info, scored.router)
            return budget_rate(scored.signal, betas, m, scored.router)
        self.check_router_ready("gain2")
        cal = self.gain2
        assert cal is not None and scored.curve is not None
        if mean_info is not None and not math.isclose(float(mean_info), cal.mean_slope, rel_tol=1e-6):
            raise ValueError(f"the gain2 router takes its budgets from its calibration curves (E[s] "
                             f"{cal.mean_slope:.6g}), not from an E[signal] of {mean_info!r}; recalibrate with "
                             "`infotok calibrate --router gain2 --write-checkpoint NEW`")
        if scored.curve_rates != cal.rates:
            raise ValueError(f"gain2 curve measured at rates {scored.curve_rates}, calibration at {cal.rates}")
        lam = torch.tensor([cal.lam(float(b)) for b in betas.flatten().tolist()], dtype=torch.float64)
        return curve_rate(scored.curve.cpu(), cal.rates, lam).float().to(betas.device)

    @torch.no_grad()
    def route(self, video: torch.Tensor, beta: BetaArg, mean_info: float | None = None, router: str = "elbo"
              ) -> Routing:
        """video (B, 3, T, H, W) in [-1, 1]; beta scalar or (B,) in (0, 1]; E[signal] override
        (None: the checkpoint's for this router)."""
        check_video_shape(video)
        self.check_router_ready(router)
        betas = _beta_vector(beta, video.shape[0]).to(video.device)
        if router != "gain2":  # refuse a missing E[signal] before any model pass
            check_mean_info(self.mean_signal(router) if mean_info is None else mean_info, router)
        scored = self.score(video, router)
        rate = self.budget(scored, betas, mean_info)  # (B,)
        n_keep = budget_tokens(rate, scored.scores[0].numel())  # (B,)
        return Routing(encoding=scored.encoding, scores=scored.scores, info=scored.signal, rate=rate, beta=betas,
                       n_keep=n_keep, keep=top_n_mask(scored.scores, n_keep), router=router)

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

    # ---- public API ------------------------------------------------------------------
    @torch.no_grad()
    def tokenize(self, video: torch.Tensor, beta: BetaArg, mean_info: float | None = None, router: str = "elbo"
                 ) -> list[AdaptiveTokens]:
        """video (B, 3, T, H, W) float in [-1, 1] -> one `AdaptiveTokens` per clip.

        beta: compression knob in (0, 1], one for the batch or one per clip; mean_info: the
        router's E[signal] to use instead of the checkpoint's (e.g. a dataset calibration);
        router: one of `tokenizer.adaptive.router.ROUTERS`.
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
        device = self.mean_info.device
        keep_np = np.stack([it.keep_mask() for it in items])  # (B, t, h, w)
        dense = np.zeros(keep_np.shape, dtype=np.int64)
        for b, it in enumerate(items):
            dense[b][keep_np[b]] = it.ids.astype(np.int64)  # raster order of kept positions
        keep = torch.from_numpy(keep_np).to(device)
        codes = self.base.fsq.indices_to_codes(torch.from_numpy(dense).to(device))  # (B, t, h, w, D)
        dtype = next(self.parameters()).dtype
        return self.decode_masked(codes.to(dtype), keep).clamp(-1, 1)
