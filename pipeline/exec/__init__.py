"""The tokenize job: its frozen config, the plan (shards of the listed corpus), the resume
check of an existing output (and `preflight`, what is checked before Ray starts), `--beta auto`
(`auto_beta`: tune, or reuse the tuning a dataset records), one shard from decode results to a
commit, job status, the Ray execution (`ray_exec`, the only module that wires steps into Ray)
and the reaper that ends a killed driver's local Ray (`reaper`)."""
