"""The worker's unit of the tokenize job, without Ray: decoded clips -> token rows (`step`), a
shard's decode results -> a committed part (`shard`), and one shard run in this process
(`local`), the code path the Ray actor runs."""
