"""Data sets as uint8 tensors, and a loader that batches and augments them on the device."""

from resdeep.data.build import DATASET_NAMES, build_data
from resdeep.data.loader import DeviceLoader, normalize
from resdeep.data.splits import DataError, DataSplits, Split

__all__ = [
    "DATASET_NAMES",
    "DataError",
    "DataSplits",
    "DeviceLoader",
    "Split",
    "build_data",
    "normalize",
]
