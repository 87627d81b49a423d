"""Small argument checks shared by rgfield's modules."""

import numpy as np


def is_integer(value) -> bool:
    """True for Python and numpy integers, False for bools (``True`` is not a size)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_positive_integer(value, name: str) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a positive integer."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def fresh_seed() -> int:
    """A new 63-bit seed from the operating system's entropy (leaves global generators alone)."""
    return int(np.random.SeedSequence().entropy % 2**63)
