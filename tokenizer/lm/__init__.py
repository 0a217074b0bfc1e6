"""The LM probe: how many bits a small causal transformer needs for a token dataset's stream.

  corpus.py     a dataset's kept tokens held in memory as flat arrays; the split by video hash
  mask_bits.py  the keep-mask's code length (the combinatorial bound)
  model.py      the probe transformer: one categorical head per FSQ digit
  probe.py      ProbeConfig, training, held-out evaluation, ProbeResult
  plot.py       the learning curve as a PNG

Never touches storage: `pipeline.lm.read_corpus` reads a dataset into a `ClipCorpus`.
"""
