"""Measuring the tokenizer: PSNR / SSIM, round-trip reconstruction, rate-distortion curves,
and the budget / position baselines InfoTok is compared with (fixed, random, raster, jump,
ElasticTok-style search)."""
