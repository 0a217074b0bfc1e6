"""The probe's learning curve as a PNG: train bits per token and held-out bits per kept token
against the step, with the uniform code (log2 of the codebook) for reference."""

from __future__ import annotations

from pathlib import Path

from tokenizer.lm.probe import ProbeResult


def plot_curve(result: ProbeResult, path: str | Path, title: str = "") -> Path:
    """Write the curve of `result` to path (PNG, matplotlib Agg); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    train = [(p.step, p.train_bits) for p in result.curve if p.train_bits is not None]
    ax.plot([s for s, _ in train], [b for _, b in train], marker=".", label="train (mean since last point)")
    ax.plot([p.step for p in result.curve], [p.heldout_bits for p in result.curve], marker="o",
            label="held-out")
    ax.axhline(result.uniform_bits, color="grey", ls="--", lw=1, label=f"uniform {result.uniform_bits:.2f}")
    ax.axhline(result.unigram_bits, color="grey", ls=":", lw=1, label=f"unigram {result.unigram_bits:.2f}")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per kept token")
    ax.set_title(title or "lm-probe learning curve", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
