"""The router-vs-oracle gap: per method, its mean PSNR against the equal split (`fixed`) and against
the oracle split (`oracle`) of the same total at each beta, beside its cost in model passes per
clip. One figure per router of what its budgets buy and what perfect budgets would still add."""

from __future__ import annotations

from dataclasses import dataclass

from tokenizer.eval.rate_distortion import RDRow


@dataclass(frozen=True)
class Gap:
    """method; over_fixed / under_oracle: mean over betas of psnr - fixed's psnr and oracle's psnr -
    psnr (dB, None without that method's rows); betas: how many betas both were measured at;
    passes: model passes per clip (encoder + decoder + compressor, as `RDRow.passes_per_clip`)."""

    method: str
    over_fixed: float | None
    under_oracle: float | None
    betas: int
    passes: float


def _mean_delta(rows: dict[float, float], ref: dict[float, float], sign: float) -> float | None:
    common = sorted(set(rows) & set(ref))
    return sum(sign * (rows[b] - ref[b]) for b in common) / len(common) if common else None


def gaps(rows: list[RDRow]) -> list[Gap]:
    """One Gap per method other than fixed and oracle, in the order the rows list them."""
    by: dict[str, dict[float, RDRow]] = {}
    for r in rows:
        by.setdefault(r.method, {})[r.beta] = r
    psnr = {m: {b: r.psnr for b, r in rs.items()} for m, rs in by.items()}
    fixed, oracle = psnr.get("fixed", {}), psnr.get("oracle", {})
    out = []
    for method, rs in by.items():
        if method in ("fixed", "oracle"):
            continue
        betas = set(rs) & set(fixed or rs) & set(oracle or rs)
        out.append(Gap(method=method, over_fixed=_mean_delta(psnr[method], fixed, 1.0),
                       under_oracle=_mean_delta(psnr[method], oracle, -1.0), betas=len(betas),
                       passes=sum(r.passes_per_clip for r in rs.values()) / len(rs)))
    return out
