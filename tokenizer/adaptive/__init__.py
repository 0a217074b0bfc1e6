"""The InfoTok adaptive layer (arXiv 2512.16975): the ELBO router (scores, budgets, masks),
the compressor / decompressor transformers, the AdaptiveTokenizer built on a fixed-rate base,
and AdaptiveTokens (kept ids + packed keep-mask, the stored format)."""
