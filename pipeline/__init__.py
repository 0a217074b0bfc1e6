"""The data side of infotok: storage, decoding, the tokenize job, the token loader, beta tuning.

Wings, each a sub-package with one concern:
  io/      object storage, the input listing, fetching bytes, the dataset's file writer
  decode/  bytes -> frames -> clips, decoder crash isolation, per-video failures
  exec/    the tokenize job: its config, plan, resume check, shard processing, Ray execution
  loader/  reading token datasets into PyTorch training (exact, world-size-independent resume)
  tuning/  choosing beta for a corpus: the sample, the report, the record a dataset keeps
  lm/      a token dataset read into memory for the LM probe (tokenizer.lm)

Dependencies point one way: exec and tuning use decode and io; loader uses io; nothing here
imports jobs/. Only exec/ray_exec.py imports Ray. lm/ reads parts with loader/'s mask decoder.
"""
