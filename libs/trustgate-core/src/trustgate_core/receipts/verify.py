"""``trustgate receipts verify FILE`` (stub: issue 17 fills it in)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str]) -> int:
    print("receipts verify: not built yet", file=sys.stderr)
    return 2
