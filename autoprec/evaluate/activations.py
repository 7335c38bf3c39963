"""A memory-bounded store of cached activations: (sample, tensor) -> array, spilled to disk beyond a budget."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np

DEFAULT_BUDGET_BYTES = 512 * 2**20


class ActivationCache:
    """Arrays by (sample index, tensor name). Up to `budget` bytes stay in memory; the rest go to .npy files in a
    private temporary folder (removed with the cache) and come back memory-mapped."""

    def __init__(self, budget: int = DEFAULT_BUDGET_BYTES):
        self.budget = budget
        self.in_memory = 0
        self.spilled = 0
        self._arrays: dict[tuple[int, str], np.ndarray] = {}
        self._dtypes: dict[str, np.dtype] = {}
        self._folder: Path | None = None

    def __contains__(self, key: tuple[int, str]) -> bool:
        return key in self._arrays

    def put(self, index: int, tensor: str, array: np.ndarray) -> None:
        """Keep `array` (in memory while the budget allows, else on disk)."""
        self._dtypes[tensor] = array.dtype
        if self.in_memory + array.nbytes <= self.budget:
            self._arrays[(index, tensor)] = array
            self.in_memory += array.nbytes
            return
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="autoprec-activations-"))
            weakref.finalize(self, shutil.rmtree, self._folder, True)
        path = self._folder / f"{len(self._arrays)}.npy"
        np.save(path, array)
        self._arrays[(index, tensor)] = np.load(path, mmap_mode="r")
        self.spilled += array.nbytes

    def get(self, index: int, tensor: str) -> np.ndarray:
        """The array as a contiguous ndarray (read from disk if it was spilled)."""
        array = self._arrays[(index, tensor)]
        return np.asarray(array) if not isinstance(array, np.memmap) else np.array(array)

    def dtype(self, tensor: str) -> np.dtype | None:
        """The element type of `tensor` as cached for any sample."""
        return self._dtypes.get(tensor)
