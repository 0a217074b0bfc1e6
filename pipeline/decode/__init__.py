"""Decoding: encoded bytes -> frames (decord, PyAV fallback) -> clips of 1 + 4k frames at the
working size; fetch-then-decode in one place; crash and hang isolation of native decoders;
per-video failures as data. Also the small PyAV writer that makes test and demo videos."""
