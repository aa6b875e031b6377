"""RAVDESS data pipeline: indexing a local copy, actor-disjoint splits, MFCC and OpenFace AU
features with an on-disk cache, batches for training, and a generated stand-in dataset."""

from .audio import extract_audio, load_audio, mfcc, read_audio
from .aus import AU_COLUMNS, AU_INTENSITY, AU_PRESENCE, extract_aus, read_openface_csv, sample_aus
from .config import FeatureConfig
from .dataset import ClipDataset, collate_clips
from .demo import make_demo
from .errors import DataFileError
from .features import ExtractionStats, FeatureSet, compute_features, load_features
from .index import Clip, DatasetIndex, Skipped, index_dataset
from .names import EMOTIONS, RavdessName, parse_name
from .splits import Split, all_folds, explicit_split, fold_split

__all__ = [
    "AU_COLUMNS",
    "AU_INTENSITY",
    "AU_PRESENCE",
    "EMOTIONS",
    "Clip",
    "ClipDataset",
    "DataFileError",
    "DatasetIndex",
    "ExtractionStats",
    "FeatureConfig",
    "FeatureSet",
    "RavdessName",
    "Skipped",
    "Split",
    "all_folds",
    "collate_clips",
    "compute_features",
    "explicit_split",
    "extract_audio",
    "extract_aus",
    "fold_split",
    "index_dataset",
    "load_audio",
    "load_features",
    "make_demo",
    "mfcc",
    "parse_name",
    "read_audio",
    "read_openface_csv",
    "sample_aus",
]
