"""The gain2 router: its per-clip curve rule on constructed curves, lam solved for beta on the
calibration curves, the harness's equal-total split, the checkpoint round trip of the curves,
calibrate, and the refusals (no curves, beta tuning, unknown router)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from model_helpers import small_adaptive_model

from jobs.cli import main
from tokenizer.adaptive.routers.gain2_curves import MIN_RATE, Gain2Calibration, curve_psnr, curve_rate, solve_lam
from tokenizer.checkpoint import load_tokenizer, read_header, save_tokenizer, stored_float_dtype
from tokenizer.eval.splits import lagrange_counts
from tokenizer.data.procedural import heldout_clips
from tokenizer.video import frames_to_tensor

RATES = (1 / 8, 3 / 8, 1.0)


def _line(p1: float, slope: float, rates: tuple[float, ...] = RATES) -> list[float]:
    """PSNR at rates of a curve P(1) + slope * ln r."""
    return [p1 + slope * math.log(r) for r in rates]


def _clips(n: int = 4) -> torch.Tensor:
    return frames_to_tensor(np.stack([c for _, c in heldout_clips(n, 5, 16, 16)]))


def test_budgets_on_constructed_curves():
    curves = torch.tensor([[25.0, 25.0, 25.0],  # cannot improve
                           [26.0, 25.0, 24.0],  # worse with more tokens (noise)
                           _line(30.0, 1.0),  # gentle
                           _line(30.0, 4.0),  # steep
                           [20.0, 20.0, 26.0]])  # flat, then steep above 3/8
    for lam in (0.5, 2.0, 8.0, 30.0):
        r = curve_rate(curves, RATES, lam)
        assert r[0] == MIN_RATE and r[1] == MIN_RATE  # no gain: the floor
        assert r[3] >= r[2]  # a steep clip gets at least what a gentle one gets
    r = curve_rate(curves, RATES, 4.0)
    # a line of slope s: the optimum of P + s ln r - lam r is r = s / lam (the gain router's rule)
    assert r[2].item() == pytest.approx(0.25) and r[3].item() == pytest.approx(1.0)
    assert r[3] > r[2]
    assert r[4].item() in (MIN_RATE, 1.0)  # bent curve: all or nothing, never the flat middle
    # the floor segment below the lowest probe continues the first one
    assert curve_psnr(curves, RATES, torch.full((5,), MIN_RATE))[3].item() == pytest.approx(30 + 4 * math.log(MIN_RATE))
    with pytest.raises(ValueError, match="lam must be finite and > 0"):
        curve_rate(curves, RATES, 0.0)
    with pytest.raises(ValueError, match="curve rates must be ascending"):
        curve_rate(curves, (0.5, 0.25, 1.0), 1.0)


@pytest.mark.parametrize("beta", [0.2, 0.35, 0.5, 0.75])
def test_lam_makes_the_calibration_mean_rate_beta(beta):
    g = torch.Generator().manual_seed(0)
    slopes = torch.rand(200, generator=g) * 3 + 0.2
    curves = torch.stack([torch.tensor(_line(25.0, float(s))) for s in slopes])
    curves[:, 0] -= torch.rand(200, generator=g)  # bends below 3/8, as measured curves do
    cal = Gain2Calibration(rates=RATES, curves=curves)
    rate = curve_rate(cal.curves, cal.rates, cal.lam(beta))
    assert float(rate.mean()) == pytest.approx(beta, abs=0.01)
    assert cal.lam(beta) == solve_lam(curves, RATES, beta)  # cached, same answer


def test_lagrange_counts_hit_the_total():
    curves = np.array([[25.0, 25.0, 25.0], _line(30.0, 1.0), _line(30.0, 4.0)])
    n_pos, total = 256, int(0.4 * 3 * 256)
    counts = lagrange_counts(curves, RATES, total, n_pos)
    assert sum(counts) == total
    assert counts[0] == pytest.approx(n_pos * MIN_RATE, abs=2) and counts[2] > counts[1]


def test_route_and_checkpoint_round_trip(tmp_path):
    m = small_adaptive_model()
    x = _clips()
    scored = m.score(x, "gain2")  # no calibration needed to score
    assert scored.curve.shape == (4, 4) and scored.curve_rates == m.gain2_rates()
    with pytest.raises(ValueError, match="no gain2 calibration curves; run `infotok calibrate --router gain2"):
        m.route(x, 0.5, router="gain2")
    m.set_gain2(Gain2Calibration(rates=scored.curve_rates, curves=scored.curve + torch.arange(4.0)[:, None]))
    routing = m.route(x, 0.5, router="gain2")
    lam = m.gain2.lam(0.5)
    assert routing.rate.tolist() == pytest.approx(curve_rate(scored.curve, scored.curve_rates, lam).tolist())
    with pytest.raises(ValueError, match="gain2 router takes its budgets from its calibration curves"):
        m.route(x, 0.5, mean_info=123.0, router="gain2")
    path = tmp_path / "g2.safetensors"
    tid = save_tokenizer(m, path)
    back = load_tokenizer(path)
    assert back.tokenizer_id == tid and back.adaptive.gain2.rates == m.gain2.rates
    assert torch.equal(back.adaptive.gain2.curves, m.gain2.curves.float())
    assert back.adaptive.mean_signal("gain2") == pytest.approx(m.mean_signal("gain2"))
    assert back.adaptive.route(x, 0.5, router="gain2").n_keep.tolist() == routing.n_keep.tolist()
    # a checkpoint without the curves loads, with its old id, and gain2 asks for calibrate
    old = tmp_path / "old.safetensors"
    save_tokenizer(small_adaptive_model(), old)
    loaded = load_tokenizer(old)
    assert loaded.adaptive.gain2 is None and loaded.tokenizer_id == read_header(old)["tokenizer_id"]
    assert math.isnan(loaded.adaptive.mean_signal("gain2"))


def test_calibrate_gain2_writes_curves(tmp_path):
    path = tmp_path / "adaptive.safetensors"
    save_tokenizer(small_adaptive_model(), path, dtype=torch.float16)  # as the shipped checkpoint is stored
    out, cal = tmp_path / "calib.json", tmp_path / "cal.safetensors"
    res = CliRunner().invoke(main, ["calibrate", "procedural", "--checkpoint", str(path), "--resolution", "16",
                                    "--clip-frames", "5", "--num-procedural", "4", "--router", "gain2", "--out",
                                    str(out), "--write-checkpoint", str(cal)])
    assert res.exit_code == 0, res.output
    assert "gain2 curves at r = " in res.output
    doc = json.loads(out.read_text())
    assert doc["router"] == "gain2" and len(doc["gain2"]["curves"]) == 4
    model = load_tokenizer(cal).adaptive
    assert model.gain2.count == 4 and model.gain2.rates == tuple(doc["gain2"]["rates"])
    assert model.mean_signal("gain") == 1.5  # the other routers' E[signal] untouched
    before, after = load_tokenizer(path).adaptive.state_dict(), model.state_dict()
    assert stored_float_dtype(cal) == torch.float16  # the weights stay as stored, bit for bit
    torch.testing.assert_close(after, before, rtol=0, atol=0, equal_nan=True)


def test_eval_harness_runs_gain2_at_equal_total():
    from tokenizer.eval.rate_distortion import RDConfig, evaluate_rd

    m = small_adaptive_model()
    clips = [c for _, c in heldout_clips(4, 5, 16, 16)]
    rows = evaluate_rd(m, clips, RDConfig(methods=("elbo", "gain2", "fixed"), betas=(0.5,), batch_size=2))
    tokens = {r.method: r.mean_tokens for r in rows}
    assert tokens["gain2"] == tokens["elbo"] == tokens["fixed"]
    g2 = next(r for r in rows if r.method == "gain2")
    assert g2.decoder_passes == len(m.gain2_rates()) and g2.compressor_passes == len(m.gain2_rates()) + 1
    scored = m.score(frames_to_tensor(np.stack(clips)), "gain2")
    m.set_gain2(Gain2Calibration(rates=scored.curve_rates, curves=scored.curve))
    rows = evaluate_rd(m, clips, RDConfig(methods=("gain2", "fixed"), betas=(0.5,), batch_size=2))
    assert rows[0].method == "gain2" and rows[0].mean_tokens == rows[1].mean_tokens
    assert rows[0].extra["mean_rate"] == pytest.approx(0.5, abs=0.15)  # its own calibration: beta is the mean rate


def test_refusals_are_usage_errors(tmp_path):
    path = tmp_path / "adaptive.safetensors"
    save_tokenizer(small_adaptive_model(), path)
    (tmp_path / "videos").mkdir()
    res = CliRunner().invoke(main, ["tokenize", str(tmp_path / "videos"), str(tmp_path / "out"), "--checkpoint",
                                    str(path), "--router", "gain2"])
    assert res.exit_code == 1 and "has no gain2 calibration curves; run `infotok calibrate" in res.output
    from jobs.options import job_router

    assert job_router({"beta": 0.5}) == "gain2" and job_router({"beta": "auto"}) == "gain"  # the defaults
    assert job_router({"beta": 0.5, "router": "elbo"}) == "elbo"
    res = CliRunner().invoke(main, ["eval", "procedural", "--methods", "fixed", "--router", "magic"])
    assert res.exit_code == 2 and "'magic' is not one of 'elbo', 'gain', 'gain2', 'latent'" in res.output
    assert not (tmp_path / "out").exists()
