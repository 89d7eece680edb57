"""MinHash building blocks shared by the prompt bank's near-duplicate index and the firewall's similarity detector.

Plain numpy, no Django: the firewall engine imports it. Each user keeps its own shingle size and calibration; what is
the same everywhere — the 64-bit mixer, filling empty bins (one-permutation hashing with densification) and band keys
for LSH — lives here once.
"""

from __future__ import annotations

import numpy as np

_LOW32 = np.uint64(0xFFFFFFFF)
_MULT = np.uint64(0x9E3779B97F4A7C15)


def mix64(h: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, in place on uint64 (wrapping arithmetic is intended)."""
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return h


def densify(sig: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """Fill each empty bin from the next non-empty bin to its right (wrapping), mixed with the distance."""
    num_bins = sig.shape[1]
    cols = np.arange(2 * num_bins)
    full_at = np.where(np.tile(~empty, 2), cols, 4 * num_bins)
    nearest = np.minimum.accumulate(full_at[:, ::-1], axis=1)[:, ::-1][:, :num_bins]
    distance = (nearest - cols[:num_bins]).astype(np.uint64)
    borrowed = np.take_along_axis(sig, nearest % num_bins, axis=1).astype(np.uint64)
    mixed = (mix64(borrowed * _MULT + distance) & _LOW32).astype(np.uint32)
    return np.where(empty, mixed, sig)


def band_keys(sigs: np.ndarray, bands: int) -> np.ndarray:
    """One 64-bit key per band, shape (n, bands): a hash of the band's bins in the low 59 bits and the band's number
    in the top 5, so the keys of all bands can share one sorted array."""
    if len(sigs) == 0:
        return np.zeros((0, bands), dtype=np.uint64)
    rows_per_band = sigs.shape[1] // bands
    rows = sigs.astype(np.uint64).reshape(len(sigs), bands, rows_per_band)
    key = np.zeros((len(sigs), bands), dtype=np.uint64)
    for r in range(rows_per_band):
        key = mix64(key * np.uint64(0x100000001B3) + rows[:, :, r] + np.uint64(r + 1))
    key >>= np.uint64(64 - 59)
    key |= np.arange(bands, dtype=np.uint64) << np.uint64(59)
    return key
