"""Where the public conformance vectors are: ``shared/vectors`` beside the checkout.

The vectors (OpenSPF, dkimpy, OpenDMARC, ValiMail ARC, report samples) are
shared by every checkout and by CI rather than copied into the repository.
They are found, in this order, at ``$MAILWRIGHT_SHARED/vectors``, in a
``shared`` folder beside any parent folder of this file (``../shared`` of a
checkout), or at ``/work/shared``. Missing vectors are an error, never a
reason to skip the tests that need them.
"""

from __future__ import annotations

import os
from pathlib import Path


def _find() -> Path:
    candidates: list[Path] = []
    if os.environ.get("MAILWRIGHT_SHARED"):
        candidates.append(Path(os.environ["MAILWRIGHT_SHARED"]))
    candidates.extend(parent / "shared" for parent in Path(__file__).resolve().parents)
    candidates.append(Path("/work/shared"))
    for candidate in candidates:
        if (candidate / "vectors").is_dir():
            return candidate / "vectors"
    tried = ", ".join(str(candidate) for candidate in candidates)
    raise FileNotFoundError(f"no shared/vectors folder (set MAILWRIGHT_SHARED); tried {tried}")


#: The root of the conformance vectors: ``VECTORS / "spf" / "rfc7208-tests.yml"``.
VECTORS = _find()
