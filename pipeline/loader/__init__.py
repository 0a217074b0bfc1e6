"""Token datasets into LM training: `TokenDataset` (an IterableDataset over the Parquet parts,
clips or packed sequences) and `TokenDataLoader` (a DataLoader whose state_dict resumes exactly).

    from pipeline.loader import LoaderConfig, TokenDataset, TokenDataLoader
"""

from pipeline.loader.dataloader import TokenDataLoader
from pipeline.loader.dataset import LoaderConfig, TokenDataset

__all__ = ["LoaderConfig", "TokenDataLoader", "TokenDataset"]
