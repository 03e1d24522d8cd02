"""``report.md`` as one self-contained ``report.html`` (figures embedded, tables styled), and optionally as
``report.pdf`` printed from it by whatever tool the machine has: a missing PDF never fails the report.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from hw4lib import paths
from hw4lib.paths import atomic_write, write_text_atomic

__all__ = ["render_html", "pdf_command", "render_pdf"]


_HTML_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1000px;
       margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: 0.2em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: 0.15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.86em; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 0.3em 0.65em; white-space: nowrap; }
th { background: #f3f5f7; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
td { font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 0.5em auto; }
p em:only-child { color: #555; }
code, pre { background: #f6f8fa; border-radius: 3px; }
code { padding: 0 0.2em; }
pre { padding: 0.6em; overflow-x: auto; }
@media print { body { max-width: none; } table { display: table; } img { page-break-inside: avoid; } }
"""

_IMG_SRC = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")')


def _embed_images(body: str, folder: Path) -> str:
    """``<img src="figures/x.png">`` -> a base64 ``data:`` URI of the file (relative to ``folder``); sources
    that are not local files are left as they are."""

    def embed(match: re.Match[str]) -> str:
        src = html.unescape(match.group(2))
        if src.startswith(("data:", "http://", "https://")):
            return match.group(0)
        path = (folder / src).resolve()
        if not path.is_file():
            return match.group(0)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f"{match.group(1)}data:{mime};base64,{data}{match.group(3)}"

    return _IMG_SRC.sub(embed, body)


def render_html(md_path: str | os.PathLike[str], out_path: str | os.PathLike[str] | None = None) -> Path:
    """Render ``report.md`` to one self-contained ``report.html`` beside it (mistune, which nbconvert uses):
    the figures embedded as base64 data URIs, the tables styled; it opens anywhere without its folder."""
    import mistune

    md_path = paths.output(md_path)
    text = md_path.read_text(encoding="utf-8")
    markdown = mistune.create_markdown(plugins=["table"])
    body = _embed_images(markdown(text), md_path.parent)
    title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), "Report")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )
    target = Path(out_path) if out_path is not None else md_path.with_suffix(".html")
    return write_text_atomic(page, target)


_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "msedge")
_OFFICE = ("libreoffice", "soffice")


def pdf_command(which: Callable[[str], str | None] | None = None) -> tuple[str, str] | None:
    """The PDF printer this machine has (looked up with ``which``, default ``shutil.which``): ``("browser",
    path)`` for a headless Chromium/Chrome, ``("office", path)`` for LibreOffice, or ``None``."""
    which = which or shutil.which
    for kind, names in (("browser", _BROWSERS), ("office", _OFFICE)):
        for name in names:
            found = which(name)
            if found:
                return kind, found
    return None


def render_pdf(html_path: str | os.PathLike[str], timeout: float = 180) -> Path | None:
    """Print ``report.html`` to ``report.pdf`` beside it with a headless Chromium/Chrome (``--print-to-pdf``)
    or LibreOffice (``--convert-to pdf``), whichever :func:`pdf_command` finds on PATH.

    Returns the PDF, or ``None`` (with a warning saying why) when there is no such tool or it failed: a
    missing PDF never fails the report.
    """
    html_path = paths.output(html_path)
    target = html_path.with_suffix(".pdf")
    found = pdf_command()
    if found is None:
        warnings.warn("no PDF written: no headless Chromium/Chrome or LibreOffice on PATH", stacklevel=2)
        return None
    kind, exe = found
    with tempfile.TemporaryDirectory(prefix="report-pdf-") as tmp:
        made = Path(tmp) / target.name
        if kind == "browser":
            cmd = [exe, "--headless", "--disable-gpu", "--no-sandbox", "--no-pdf-header-footer",
                   f"--print-to-pdf={made}", html_path.resolve().as_uri()]  # fmt: skip
        else:
            cmd = [exe, "--headless", "--convert-to", "pdf", "--outdir", tmp, str(html_path)]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError) as err:
            warnings.warn(f"no PDF written: {Path(exe).name} failed ({err})", stacklevel=2)
            return None
        if not made.is_file() or made.stat().st_size == 0:
            warnings.warn(f"no PDF written: {Path(exe).name} produced no file", stacklevel=2)
            return None
        with atomic_write(target, "wb") as f:
            f.write(made.read_bytes())
    return target
