"""The tokenize job on the driver: its frozen config (`job`), the resume check of an existing
output and what is checked before Ray starts (`prepare`), `--beta auto` (`auto_beta`: tune, or
reuse the tuning a dataset records), `--fit-router N` (`router_fit`, its record `fit_record`: fit
the router on the corpus, or reuse the fit a dataset records) and a dataset's job status (`status`). No Ray."""
