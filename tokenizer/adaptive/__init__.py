"""The InfoTok adaptive layer (arXiv 2512.16975): the routers (`routers/`: one `Router` interface,
one module per router, a registry of their names: `elbo`, the paper's rule; `gain`, by the
measured slope of a clip's quality curve; `gain2`, by its curve; `latent`, the token scores
predicted by a small head on the encoder's output and the slope by a fit on clip descriptors),
the compressor / decompressor transformers, the AdaptiveTokenizer built on a fixed-rate base,
and AdaptiveTokens (kept ids + packed keep-mask, the stored format)."""
