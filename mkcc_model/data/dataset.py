"""A torch Dataset over a FeatureSet, and its collate function."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from .features import FeatureSet


class ClipDataset(Dataset):
    """Items ``{"audio": [n_mfcc, T], "aus": [35, au_frames], "aus_mask": [au_frames],
    "label": int64 scalar, "clip_id": str}`` of a FeatureSet."""

    def __init__(self, features: FeatureSet) -> None:
        if not isinstance(features, FeatureSet):
            raise TypeError(f"features: expected a FeatureSet, got {type(features).__name__}")
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, position: int) -> dict:
        features = self.features
        return {
            "audio": features.audio[position],
            "aus": features.aus[position],
            "aus_mask": features.aus_mask[position],
            "label": features.labels[position],
            "clip_id": features.clip_ids[position],
        }


def collate_clips(items: Sequence[dict]) -> dict:
    """Stack ClipDataset items: ``audio [B, n_mfcc, T]``, ``aus [B, 35, au_frames]``,
    ``aus_mask [B, au_frames]``, ``label [B]`` int64, ``clip_id`` list of B str."""
    if not items:
        raise ValueError("items: expected at least one clip")
    return {
        "audio": torch.stack([item["audio"] for item in items]),
        "aus": torch.stack([item["aus"] for item in items]),
        "aus_mask": torch.stack([item["aus_mask"] for item in items]),
        "label": torch.stack([torch.as_tensor(item["label"], dtype=torch.int64) for item in items]),
        "clip_id": [item["clip_id"] for item in items],
    }
