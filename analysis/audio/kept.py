"""What is derived from a run's read-only sources (a track's mid signal, its
spectrum), kept by the array's identity: a run analyses hundreds of streams
of the same few tracks, and a 90 s track's mid signal and FFT cost as much
as a short stream's whole analysis. Only arrays that own their data and are
read-only qualify (the run's sources are frozen when read), so nothing can
change under a kept value; an entry holds its array, so the identity is not
reused while the entry lives."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import numpy as np

_DERIVED: "OrderedDict[tuple[str, int], tuple[np.ndarray, Any]]" = OrderedDict()
_DERIVED_MAX = 16


def derived(kind: str, arr: np.ndarray, make: Callable[[np.ndarray], Any]) -> Any:
    """make(arr), kept for a frozen array, made afresh for any other."""
    if arr.flags.writeable or arr.base is not None:
        return make(arr)
    key = (kind, id(arr))
    hit = _DERIVED.get(key)
    if hit is not None and hit[0] is arr:
        _DERIVED.move_to_end(key)
        return hit[1]
    value = make(arr)
    _DERIVED[key] = (arr, value)
    while len(_DERIVED) > _DERIVED_MAX:
        _DERIVED.popitem(last=False)
    return value


def frozen(arr: np.ndarray) -> np.ndarray:
    """arr read-only from here on, as an array that owns its data (a view is
    copied once: its base could still be written through)."""
    if arr.base is not None:
        arr = arr.copy()
    arr.flags.writeable = False
    return arr
