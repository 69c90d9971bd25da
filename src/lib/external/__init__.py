"""Compiled helpers (Cython soft-NMS in `nms`, built with `make setup` or `cd src/lib/external && make`)."""
from __future__ import annotations

from collections.abc import Callable


def require_nms(name: str = "soft_nms") -> Callable:
    """Return function `name` of the compiled external.nms module; a UserError says how to build it if missing."""
    try:
        from external import nms

        return getattr(nms, name)
    except (ImportError, AttributeError) as e:
        # imported here: utils.errors is not needed unless the extension is missing
        from utils.errors import UserError

        raise UserError(f"external.nms ({name}): the Cython soft-NMS extension is not built ({e}); "
                        "run `make setup` (or `cd src/lib/external && make`), or test without --nms "
                        "and with a single --test_scales") from None
