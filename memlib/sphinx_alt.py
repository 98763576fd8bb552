"""Sphinx extension `memlib.sphinx_alt`: the chapters' figures keep their alt text in the built book.

A chapter shows a figure as the PNG output of `fig` (memlib.plots.BookFigure), whose output metadata carries
`{"image/png": {"alt": plots.alt_text(fig)}}`. myst-nb 1.4 writes each image output to a file named by the SHA-256
of its bytes but passes on only `width` and `height` from that metadata, so Sphinx would print the file name as
the alt. This extension reads the notebook's outputs once per page (at doctree-read), maps each PNG's SHA-256 to
its alt, and sets the alt of the matching image nodes.
"""
from __future__ import annotations

import binascii
import hashlib
import json
from pathlib import Path


def notebook_alts(nb: dict) -> dict[str, str]:
    """SHA-256 (hex) of each image output's bytes -> the alt text in its metadata."""
    out = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) or []:
            data, meta = o.get("data") or {}, o.get("metadata") or {}
            for mime in ("image/png", "image/jpeg"):
                alt = (meta.get(mime) or {}).get("alt")
                if mime in data and alt:
                    b64 = data[mime] if isinstance(data[mime], str) else "".join(data[mime])
                    out[hashlib.sha256(binascii.a2b_base64(b64)).hexdigest()] = str(alt)
    return out


def _doctree_read(app, doctree) -> None:
    from docutils import nodes

    src = Path(app.env.doc2path(app.env.docname))
    if src.suffix != ".ipynb":
        return
    try:
        alts = notebook_alts(json.loads(src.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return
    if not alts:
        return
    for node in doctree.findall(nodes.image):
        alt = alts.get(Path(str(node.get("uri", ""))).stem)
        if alt and not node.get("alt"):
            node["alt"] = alt


def setup(app):
    app.connect("doctree-read", _doctree_read)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
