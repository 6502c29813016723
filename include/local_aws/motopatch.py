"""What local_aws's narrow patches of moto share: finding the attribute a patch replaces.

The patches replace moto methods by name; a moto release that renames or removes one must
fail loudly at import, naming the patch to revisit, instead of silently serving moto's own
behaviour again (whole bodies in memory, wrong answers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def original(owner: type, name: str, patch: str) -> Callable[..., Any]:
    """``owner.name`` as moto defines it (its own ``__dict__``, not an inherited one), or
    ImportError naming ``patch`` (e.g. "local_aws.s3join's CompleteMultipartUpload patch")."""
    found = owner.__dict__.get(name)
    if not callable(found):
        raise ImportError(
            f"{patch}: moto's {owner.__name__}.{name} is gone; the patch needs revisiting "
            "for this moto version"
        )
    return found
