from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from model_helpers import small_adaptive_model

from jobs.cli import main
from tokenizer.checkpoint import load_tokenizer, save_tokenizer
from tokenizer.config import PRESETS
from tokenizer.data.procedural import heldout_clips
from tokenizer.nn.model import VideoTokenizer
from tokenizer.eval.metrics import spearman
from tokenizer.eval.rate_distortion import RDConfig, bpp16, evaluate_rd, fewest_tokens_for_psnr, plot_rd, pooled_psnr


def test_bpp16_and_spearman():
    # DV4x8x8 at full rate: 16 * log2(64000) / 256 per pixel, up to the causal first frame
    assert bpp16(5 * 4 * 4, 17, 32, 32, 64000) == pytest.approx(16 * 80 * math.log2(64000) / (17 * 32 * 32))
    assert bpp16(10, 5, 8, 8, 64000, mask_bits=16) - bpp16(10, 5, 8, 8, 64000) == pytest.approx(16 * 16 / 320)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    # MSEs 1e-2 and 1e-4: mean 5.05e-3 -> 22.97 dB pooled, while the mean of PSNRs is 30 dB
    assert pooled_psnr([20.0, 40.0]) == pytest.approx(-10 * math.log10(5.05e-3))
    assert pooled_psnr([25.0, 25.0]) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="unknown methods \\['magic'\\]"):
        RDConfig(methods=("magic",))
    with pytest.raises(ValueError, match="beta must be"):
        RDConfig(betas=(0.5, 0.0))


def test_every_method_at_equal_total_tokens(tmp_path):
    clips = [c for _, c in heldout_clips(5, 5, 32, 32)]
    cfg = RDConfig(methods=("elbo", "gain", "fixed", "random", "raster", "jump", "elastic", "oracle", "full"),
                   betas=(1.0, 0.3), batch_size=2)
    rows = evaluate_rd(small_adaptive_model(), clips, cfg, videos=["a", "a", "b", "c", "c"])
    assert len(rows) == 1 + 2 * 8
    full = [r for r in rows if r.method == "full"][0]
    assert full.mean_tokens == 2 * 4 * 4 and full.passes_per_clip == 1
    for beta in (1.0, 0.3):
        at = {r.method: r for r in rows if r.beta == beta and r.method != "full"}
        tokens = {m: r.mean_tokens * r.clips for m, r in at.items()}
        assert len(set(tokens.values())) == 1, tokens  # exactly equal totals
        assert at["elbo"].passes_per_clip == 3 and at["raster"].passes_per_clip == 2
        assert at["gain"].passes_per_clip == 6  # encode, two decodes, three compressor passes
        assert at["elastic"].passes_per_clip >= 1 + 2 * 5  # 32 positions: 5 probes of compressor + decoder
        assert at["elbo"].bpp16_mask > at["elbo"].bpp16
        for r in at.values():
            assert 0 < r.psnr < 100 and r.clips_per_s > 0
            assert r.psnr_pooled <= r.psnr + 1e-9  # Jensen: the log of a mean >= the mean of logs
            assert r.psnr_pooled <= r.psnr_video + 1e-9  # pooling within videos first is pooling less
    lo = [r for r in rows if r.method == "elbo" and r.beta == 0.3][0]
    hi = [r for r in rows if r.method == "elbo" and r.beta == 1.0][0]
    assert lo.mean_tokens < hi.mean_tokens
    png = plot_rd(rows, tmp_path / "rd.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fewest_tokens_search():
    clips = [c for _, c in heldout_clips(3, 5, 16, 16)]
    infos, counts = fewest_tokens_for_psnr(small_adaptive_model(), clips, target_psnr=0.0)
    assert counts == [1, 1, 1] and all(i > 0 for i in infos)
    _, counts = fewest_tokens_for_psnr(small_adaptive_model(), clips, target_psnr=200.0)
    assert counts == [2 * 2 * 2] * 3


def test_cli_eval_methods_and_calibrate(tmp_path):
    path = tmp_path / "adaptive.safetensors"
    save_tokenizer(small_adaptive_model(), path)
    runner = CliRunner()
    res = runner.invoke(main, ["eval", "procedural", "--checkpoint", str(path), "--resolution", "16", "--clip-frames",
                               "5", "--num-procedural", "4", "--methods", "infotok,gain,fixed,raster,elastic,oracle", "--betas",
                               "1,0.5", "--plot", str(tmp_path / "rd.png"), "--spearman-psnr", "10", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    # infotok: elbo's old name
    assert {r["method"] for r in doc["rows"]} == {"elbo", "gain", "fixed", "raster", "elastic", "oracle"}
    psnr = {(r["method"], r["beta"]): r["psnr"] for r in doc["rows"]}
    gap = {g["method"]: g for g in doc["gaps"]}
    assert list(gap) == ["elbo", "gain", "raster", "elastic"] and all(g["betas"] == 2 for g in gap.values())
    assert gap["gain"]["over_fixed"] == pytest.approx(sum(psnr["gain", b] - psnr["fixed", b] for b in (1, .5)) / 2)
    assert gap["gain"]["under_oracle"] == pytest.approx(sum(psnr["oracle", b] - psnr["gain", b] for b in (1, .5)) / 2)
    assert doc["reference_router"] == "elbo"
    assert len(doc["difficulty"]["fewest_tokens"]) == 4 and (tmp_path / "rd.png").exists()
    res = runner.invoke(main, ["eval", "procedural", "--checkpoint", str(path), "--resolution", "16", "--clip-frames",
                               "5", "--num-procedural", "2", "--methods", "infotok", "--betas", "0"])
    assert res.exit_code != 0 and "beta must be" in res.output
    fixed = tmp_path / "fixed.safetensors"
    save_tokenizer(VideoTokenizer(PRESETS["tiny"]), fixed)
    res = runner.invoke(main, ["eval", "procedural", "--checkpoint", str(fixed), "--resolution", "16",
                               "--clip-frames", "5", "--num-procedural", "2", "--methods", "infotok"])
    assert res.exit_code != 0 and "needs an adaptive" in res.output
    out = tmp_path / "calib.json"
    res = runner.invoke(main, ["calibrate", "procedural", "--checkpoint", str(path), "--resolution", "16",
                               "--clip-frames", "5", "--num-procedural", "4", "--out", str(out), "--write-checkpoint",
                               str(tmp_path / "calibrated.safetensors"), "--router", "elbo"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["clips"] == 4 and doc["mean_info"] > 0
    recal = load_tokenizer(tmp_path / "calibrated.safetensors")
    assert float(recal.adaptive.mean_info) == doc["mean_info"]
    assert recal.tokenizer_id == doc["written_tokenizer_id"] != doc["tokenizer_id"]


def test_demo_reports_per_clip_budgets(tmp_path):
    path = tmp_path / "adaptive.safetensors"
    save_tokenizer(small_adaptive_model(), path)
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--checkpoint", str(path), "--size", "32",
                                    "--frames", "5", "--beta", "0.5", "--router", "elbo", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output[res.output.index("{"):])
    assert doc["router"] == "elbo"
    assert doc["adaptive"] and len(doc["videos"]) >= 3
    kept = [v["kept"] for v in doc["videos"]]
    assert all(0 < k <= 1 for k in kept) and len(set(kept)) > 1  # budgets differ with content


def test_gap_table_means_over_betas_and_skips_missing_references():
    from tokenizer.eval.gaps import gaps
    from tokenizer.eval.rate_distortion import RDRow

    def row(method: str, beta: float, psnr: float, passes: float) -> RDRow:
        return RDRow(method=method, beta=beta, clips=2, mean_tokens=10, positions=20, bpp16=0.1, bpp16_mask=0.1,
                     psnr=psnr, psnr_pooled=psnr, psnr_video=psnr, ssim=0.5, encoder_passes=1, decoder_passes=1,
                     compressor_passes=1, passes_per_clip=passes, clips_per_s=1.0)

    rows = [row("gain2", 1.0, 30.0, 10), row("gain2", 0.5, 26.0, 10), row("fixed", 1.0, 29.5, 2),
            row("fixed", 0.5, 25.0, 2), row("oracle", 1.0, 30.2, 12), row("oracle", 0.5, 26.4, 12),
            row("latent", 1.0, 29.0, 2)]
    g = {x.method: x for x in gaps(rows)}
    assert set(g) == {"gain2", "latent"}
    assert g["gain2"].over_fixed == pytest.approx(0.75) and g["gain2"].under_oracle == pytest.approx(0.3)
    assert g["gain2"].passes == 10 and g["gain2"].betas == 2
    assert g["latent"].over_fixed == pytest.approx(-0.5) and g["latent"].betas == 1  # measured at beta 1 only
    assert gaps([row("gain", 1.0, 30.0, 6)])[0].over_fixed is None  # no fixed rows: no figure, not a zero
