"""Beta tuning (the model side): per-clip budgets at any beta from one router pass (`budget`),
decoded quality at a beta (`quality`), the search for a target (`search`) and its figure
(`plot`). Gets clips as arrays; the corpus sample and report files are `pipeline.tuning`."""
