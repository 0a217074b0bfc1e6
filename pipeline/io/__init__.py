"""Storage: fsspec filesystems with retries, the input listing, and
the dataset directory handle and writer (atomic parts, commit markers, the manifest last).
Touches no torch and no decoder."""
