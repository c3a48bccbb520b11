"""The flow's figures as PNG bytes (matplotlib, Agg backend): one place renders them, so
every plot is byte-identical across runs (no timestamp in the file)."""

from __future__ import annotations

import io

from .atomic import PNG_SOFTWARE

__all__ = ["png_bytes", "pyplot"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def png_bytes(fig) -> bytes:
    """`fig` laid out tight, at 100 dpi, as PNG bytes without a timestamp,
    marked as hwgen's; closes `fig`."""
    fig.tight_layout()
    buf = io.BytesIO()
    # Software = hwgen marks the file as hwgen's own (hwgen.atomic.is_own_file)
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": PNG_SOFTWARE})
    pyplot().close(fig)
    return buf.getvalue()
