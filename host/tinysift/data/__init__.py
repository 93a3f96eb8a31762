"""Datasets: a registry of real datasets plus user data (npz, image folders)."""

from tinysift.data.dataset import Dataset
from tinysift.data.registry import (
    REGISTRY,
    add_label_noise,
    dataset_slug,
    list_datasets,
    load_dataset,
    resolved_name,
)

__all__ = ["Dataset", "REGISTRY", "add_label_noise", "dataset_slug", "list_datasets",
           "load_dataset", "resolved_name"]
