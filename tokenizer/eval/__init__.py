"""Measuring the tokenizer: PSNR / SSIM, round-trip reconstruction, held-out clip sets made
offline (procedural and mixed), rate-distortion curves of the routers against the budget /
position baselines (fixed, random, raster, jump, ElasticTok-style search) and the oracle split."""
