"""Figure of a beta tuning (InfoTok, arXiv 2512.16975): the sample's rate and BPP16 against
beta, its rate-distortion curve (decoded clips) and the per-clip budget histogram at the
chosen beta, with the target and the choice marked."""

from __future__ import annotations

import io

import numpy as np

from tokenizer.adaptive.router import MAX_RATE, MIN_RATE
from tokenizer.tuning.budget import FIT_MEAN_INFO
from tokenizer.tuning.search import TuningResult


def tuning_figure_png(result: TuningResult, title: str = "") -> bytes:
    """PNG bytes of the three panels (written by the caller, to any storage)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    fig.subplots_adjust(wspace=0.35)
    curve = sorted(result.curve, key=lambda p: p.beta)
    betas = [p.beta for p in curve]

    ax = axes[0]
    ax.plot(betas, [p.rate for p in curve], marker="o", label="mean rate")
    ax.set_xscale("log")
    ax.set_xlabel("beta")
    ax.set_ylabel("mean rate (kept / t*h*w)")
    ax.axvline(result.beta, color="k", ls="--", lw=1, label=f"chosen beta {result.beta:.4g}")
    if result.target.kind == "rate":
        ax.axhline(result.target.value, color="r", ls=":", label=f"target rate {result.target.value:g}")
    lo, hi = result.rate_ci
    ax.errorbar([result.beta], [result.rate], yerr=[[result.rate - lo], [hi - result.rate]], color="k", capsize=3)
    factor = result.bpp16 / result.rate if result.rate > 0 else 0.0  # one clip shape: BPP16 is rate x const
    if factor > 0:
        sec = ax.secondary_yaxis("right", functions=(lambda r: r * factor, lambda b: b / factor))
        sec.set_ylabel("BPP16")
    if result.target.kind == "bpp16" and factor > 0:
        ax.axhline(result.target.value / factor, color="r", ls=":", label=f"target BPP16 {result.target.value:g}")
    on_fit = result.mean_info_source == FIT_MEAN_INFO
    basis = "the router's per-corpus fit" if on_fit else f"E[I] {result.mean_info:.4g}, {result.mean_info_source}"
    ax.set_title(f"budget vs beta ({basis})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)

    ax = axes[1]
    pts = [p for p in curve if p.psnr is not None]
    if pts:
        ax.plot([p.bpp16 for p in pts], [p.psnr for p in pts], marker="o",
                label=f"{result.psnr_clips} clips' measured curves" if on_fit else f"{result.psnr_clips} decoded clips")
        if result.psnr is not None:
            ax.plot([result.bpp16], [result.psnr], "k*", ms=12, label=f"chosen: {result.psnr:.2f} dB")
        if result.full_rate_psnr is not None:
            ax.axhline(result.full_rate_psnr, color="g", ls="--", lw=1,
                       label=f"all tokens kept {result.full_rate_psnr:.2f} dB")
        if result.target.kind == "psnr":
            ax.axhline(result.target.value, color="r", ls=":", label=f"target {result.target.value:g} dB")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no clips decoded", ha="center", transform=ax.transAxes)
    ax.set_xlabel("BPP16")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("rate-distortion of the sample", fontsize=9)
    ax.grid(alpha=0.3)

    ax = axes[2]
    rates = np.asarray(result.clip_rates)
    ax.hist(rates, bins=np.linspace(0, 1, 33), color="tab:blue", alpha=0.8)
    for edge in (MIN_RATE, MAX_RATE):
        ax.axvline(edge, color="gray", ls=":", lw=1)
    ax.axvline(result.rate, color="k", ls="--", lw=1, label=f"mean {result.rate:.3f}")
    ax.set_xlabel("per-clip rate at chosen beta")
    ax.set_ylabel("clips")
    ax.set_title(f"budget histogram ({result.n_clips} clips)", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(title or f"beta tuning: {result.target.kind} target {result.target.value:g}", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
