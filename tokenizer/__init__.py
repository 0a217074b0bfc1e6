"""The model side of infotok: the causal FSQ video tokenizer and the InfoTok adaptive layer.

Top level: `api` (what the pipeline calls), `checkpoint` (safetensors + JSON header),
`config` (presets), `device`, `video` (uint8 frames <-> tensors). Wings:
  nn/        FSQ, layers, the fixed-rate VideoTokenizer
  base/      the base-tokenizer interface under the InfoTok layer; the Cosmos DV adapter
             (TorchScript files), its interface checks and recorded identity
  adaptive/  router, compressor / decompressor, the AdaptiveTokenizer and its token format
  train/     the trainer (both stages), the built-in procedural corpus, batch prefetching
  eval/      metrics, reconstruction, rate-distortion and the budget baselines
  tuning/    choosing beta on sample clips (budgets, quality probes, search, figure)
  lm/        the LM probe: bits per kept token, mask bits and bits per pixel of a token stream
  data/      synthetic clips that train and eval both draw: photographs, camera moves, degradations,
             the procedural families

Never touches storage, and imports neither pipeline/ nor jobs/.
"""
