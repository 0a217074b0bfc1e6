"""Beta tuning of a corpus (the storage side): a deterministic sample of clips through the
pipeline's own listing and decode, the report written next to a dataset (JSON + PNG), and the
record a tuned dataset keeps in its job settings so a resume never tunes again. The model side
(budgets, quality probes, the search) is `tokenizer.tuning`."""
