"""Storage: fsspec filesystems with retries, the input listing, and
the dataset directory handle, the writer (atomic parts, commit markers, the manifest last) and
the one reader (manifest first, every part checked against its commit).
Touches no torch and no decoder."""
