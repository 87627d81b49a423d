"""Small argument checks shared by rgfield's modules."""

import numpy as np


def is_integer(value) -> bool:
    """True for Python and numpy integers, False for bools (``True`` is not a size)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
