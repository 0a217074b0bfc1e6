"""The data side of infotok: storage, decoding, the tokenize job, the token loader, beta tuning.

Wings, each a sub-package with one concern:
  io/      object storage, the input listing, fetching bytes, the dataset's file writer
  decode/  bytes -> frames -> clips, decoder crash isolation, per-video failures
  plan/    the corpus plan: the listing sorted out of core, shards, stored in the output (no Ray)
  job/     the tokenize job on the driver: its config, resume check, --beta auto, status (no Ray)
  tokenize/ the worker's unit: decoded clips -> token rows -> a committed part; one shard locally
  exec/    the Ray execution: cluster, actor pool, tokenize actor, decode tasks, driver, submission
  loader/  reading token datasets into PyTorch training (exact, world-size-independent resume)
  tuning/  choosing beta for a corpus: the sample, the report, the record a dataset keeps
  lm/      a token dataset read into memory for the LM probe (tokenizer.lm)

Dependencies point one way: exec uses job, tokenize, plan, decode and io; job uses plan and
tokenize; tuning uses decode and io; loader uses io; nothing here imports jobs/. Only exec/
imports Ray (late, inside functions); `step.Step` is the shape every step has. lm/ reads parts
with loader/'s mask decoder.
"""
