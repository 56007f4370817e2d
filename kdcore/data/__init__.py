"""Datasets, one file per family; each returns train / val / test and a shifted test split."""

from kdcore.data.splits import DatasetSplits, Split, load_dataset

__all__ = ["DatasetSplits", "Split", "load_dataset"]
