"""The corpus plan: the listed videos sorted out of core (`spill`), split into shards written as
one Parquet file per generation (`plan`, `files`), kept in the output (`store`), summarised for
`infotok plan` (`summary`) and checked for repeated ids (`repeats`). No Ray, no model."""
