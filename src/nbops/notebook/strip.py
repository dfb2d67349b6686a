"""The one stripping transform: what `nbops check --fix`, the pre-commit hook and the git filter do.

It is nbstripout's own (`nbstripout.strip_output` with the keys its command line strips by
default, read and written through nbformat), with cell ids kept and one key more: byte-identical to
`nbstripout --keep-id --extra-keys metadata.language_info.version`, which keeps `metadata.nbops`
as it keeps any notebook metadata it does not know. `metadata.language_info.version` is the
kernel's Python down to the patch release: re-running an unchanged notebook on another Python
showed it modified. The rest of `language_info` stays (`name` is required by nbformat's schema and
read by nbops; the other fields do not change between Python versions).
An nbformat 3 notebook is converted to v4 first, with cell ids derived from the cells'
content (nbformat's conversion draws random ids, and a git filter must give the same bytes every
time it runs).

`python -m nbops.notebook.strip FILE...` strips files in place (`--hook`, the pre-commit hook:
except those git's nbops filter strips anyway, whose outputs stay in the working tree); with no
file it is a filter from stdin to stdout (git's `clean`), and `--process` speaks git's
long-running filter protocol (one process, one nbformat import, for every notebook git cleans).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any, BinaryIO

from nbops.core.errors import NotebookError
from nbops.core.files import write_text_atomic

# nbstripout's command line strips these by default (nbstripout/_nbstripout.py: main), and
# metadata.language_info.version (see above)
EXTRA_KEYS = (
    "metadata.signature",
    "metadata.widgets",
    "metadata.language_info.version",
    "cell.metadata.collapsed",
    "cell.metadata.ExecuteTime",
    "cell.metadata.execution",
    "cell.metadata.heading_collapsed",
    "cell.metadata.hidden",
    "cell.metadata.scrolled",
)
_NB_KEYS = tuple(k.split(".", 1)[1] for k in EXTRA_KEYS if k.startswith("metadata."))
_CELL_KEYS = tuple(k.split(".", 2)[2] for k in EXTRA_KEYS if k.startswith("cell.metadata."))


def to_v4(nb: Any) -> Any:
    """An nbformat 3 NotebookNode as v4, ids from each cell's type and source (deduplicated)."""
    import nbformat

    nb = nbformat.convert(nb, 4)
    seen: set[str] = set()
    for cell in nb.cells:
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        base = hashlib.sha256(f"{cell.cell_type}\n{source}".encode()).hexdigest()[:8]
        cid, n = base, 1
        while cid in seen:
            cid, n = f"{base}-{n}", n + 1
        seen.add(cid)
        cell.id = cid
    return nb


def strip_text(text: str, where: str = "notebook") -> str:
    """TEXT (a notebook's JSON) as `nbstripout --keep-id --extra-keys metadata.language_info.version`
    writes it; nbformat 3 converted to v4.
    Raises NotebookError naming WHERE for text that is not a notebook."""
    import nbformat
    from nbstripout import strip_output

    try:
        with warnings.catch_warnings():  # nbstripout reads and writes so too
            warnings.simplefilter("ignore", category=UserWarning)
            nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
            if nb.nbformat < 4:
                nb = to_v4(nb)
            # keep_output=None, as nbstripout's command line passes it: metadata.keep_output decides
            strip_output(nb, keep_output=None, keep_count=False, keep_id=True, extra_keys=list(EXTRA_KEYS))
            out = nbformat.writes(nb)
    except nbformat.reader.NotJSONError:
        raise NotebookError(f"{where}: not valid JSON", hint="is it a notebook?") from None
    except (nbformat.ValidationError, KeyError, AttributeError, TypeError, ValueError) as exc:
        raise NotebookError(f"{where}: cannot strip this notebook ({type(exc).__name__}: {exc})"[:300],
                            hint="open and save it in JupyterLab, then retry") from None
    return out if out.endswith("\n") else out + "\n"


def _keeps_output(cell: dict, default: bool) -> bool:
    """nbstripout's determine_keep_output (init_cell, keep_output metadata or tag)."""
    meta = cell.get("metadata") or {}
    if "init_cell" in meta:
        return bool(meta["init_cell"])
    tags = meta.get("tags") or []
    if "keep_output" in meta or "keep_output" in tags:
        return bool(meta.get("keep_output")) or "keep_output" in tags
    return default


def _has(meta: Any, dotted: str) -> bool:
    """Whether META holds the nested key DOTTED (`language_info.version`), as nbstripout's
    pop_recursive would find it."""
    for part in dotted.split("."):
        if not isinstance(meta, dict) or part not in meta:
            return False
        meta = meta[part]
    return True


def strippable(nb: dict) -> list[tuple[int | None, str]]:
    """What strip_text would remove from NB (a v4 notebook as JSON), as (cell number 1-based or
    None for the notebook, what); pure JSON, no nbformat, so `nbops check` stays fast."""
    found: list[tuple[int | None, str]] = []
    meta = nb.get("metadata") or {}
    keys = [k for k in _NB_KEYS if _has(meta, k)]
    if keys:
        found.append((None, "has " + ", ".join(f"metadata.{k}" for k in keys)))
    default = bool(meta["keep_output"]) if "keep_output" in meta else False
    for number, cell in enumerate(nb.get("cells") or [], 1):
        what = []
        outputs = cell.get("outputs") or []
        if outputs and not _keeps_output(cell, default):
            what.append("outputs")
        if cell.get("execution_count") is not None or any(
                isinstance(o, dict) and o.get("execution_count") is not None for o in outputs):
            what.append("an execution count")
        cell_keys = [k for k in _CELL_KEYS if k in (cell.get("metadata") or {})]
        if cell_keys:
            what.append("metadata " + ", ".join(cell_keys))
        if what:
            found.append((number, "has " + " and ".join(what)))
    return found


def strip_file(path: Path) -> bool:
    """Strip PATH in place (through a symlink, to its target); True when it changed. Like
    nbstripout, a notebook that stripping leaves equal is not rewritten."""
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path}: cannot read ({exc})") from None
    stripped = strip_text(text, str(path))
    try:
        same = json.loads(stripped) == json.loads(text)
    except ValueError:
        same = False
    if same:
        return False
    write_text_atomic(path, stripped)
    return True


def filtered(root: Path, paths: list[Path]) -> set[Path]:
    """The notebooks among PATHS that this clone's git filter (`nbops setup`) strips on every
    `git add`: their outputs never reach a commit, so the hook leaves them in the working tree
    and `nbops check` does not report them (NB001)."""
    import subprocess

    rel = {}
    for p in paths:
        full = Path(os.path.abspath(p))  # a symlinked notebook is the link's path in git
        if not full.is_relative_to(root):
            full = full.parent.resolve() / full.name
        if full.is_relative_to(root):
            rel[full.relative_to(root).as_posix()] = p
    try:
        config = subprocess.run(["git", "config", "--get-regexp", r"^filter\.nbops\.(process|clean)$"],
                                cwd=root, capture_output=True, text=True, check=False)
        if config.returncode != 0 or not rel:
            return set()
        attrs = subprocess.run(["git", "check-attr", "-z", "--stdin", "filter"], cwd=root, check=False,
                               input="\0".join(rel) + "\0", capture_output=True, text=True)
    except OSError:  # no git
        return set()
    fields = attrs.stdout.split("\0")
    return {rel[fields[i]] for i in range(0, len(fields) - 2, 3)
            if fields[i + 2] == "nbops" and fields[i] in rel}


# --- git's long-running filter protocol (gitattributes(5), "Long Running Filter Process") --------

def _read_pkt(stream: BinaryIO) -> bytes | None:
    """One pkt-line's payload; None for a flush packet."""
    head = stream.read(4)
    if len(head) < 4:
        raise EOFError
    size = int(head, 16)
    if size == 0:
        return None
    data = stream.read(size - 4)
    if len(data) < size - 4:
        raise EOFError
    return data


def _write_pkt(stream: BinaryIO, data: bytes | None) -> None:
    if data is None:
        stream.write(b"0000")
        return
    for start in range(0, len(data), 65516):
        chunk = data[start:start + 65516]
        stream.write(b"%04x" % (len(chunk) + 4) + chunk)


def _read_list(stream: BinaryIO) -> list[str]:
    items = []
    while (pkt := _read_pkt(stream)) is not None:
        items.append(pkt.decode().rstrip("\n"))
    return items


def serve_git_filter(inp: BinaryIO, out: BinaryIO, err: Any = sys.stderr) -> None:
    """Answer git's clean requests on INP/OUT until git closes the pipe."""
    if _read_list(inp)[:2] != ["git-filter-client", "version=2"]:
        raise NotebookError("not git's filter protocol (expected git-filter-client, version=2)")
    for line in (b"git-filter-server\n", b"version=2\n", None):
        _write_pkt(out, line)
    out.flush()
    offered = _read_list(inp)
    # smudge passes the content through (a `required` filter must answer both)
    for line in [f"{c}\n".encode() for c in ("capability=clean", "capability=smudge") if c in offered] + [None]:
        _write_pkt(out, line)
    out.flush()
    while True:
        try:
            header = dict(item.split("=", 1) for item in _read_list(inp))
        except EOFError:
            return
        chunks = []
        while (pkt := _read_pkt(inp)) is not None:
            chunks.append(pkt)
        pathname = header.get("pathname", "notebook")
        try:
            content = b"".join(chunks)
            if header.get("command") == "smudge" or not content:
                result = content
            elif header.get("command") == "clean":
                result = strip_text(content.decode("utf-8"), pathname).encode("utf-8")
            else:
                raise NotebookError(f"{pathname}: unknown filter command {header.get('command')!r}")
        except (NotebookError, UnicodeDecodeError) as exc:
            print(f"nbops strip: {getattr(exc, 'message', exc)}", file=err)
            _write_pkt(out, b"status=error\n")
            _write_pkt(out, None)
            out.flush()
            continue
        _write_pkt(out, b"status=success\n")
        _write_pkt(out, None)
        if result:
            _write_pkt(out, result)
        _write_pkt(out, None)
        _write_pkt(out, None)  # an empty list: the status stays "success"
        out.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args == ["--process"]:
            serve_git_filter(sys.stdin.buffer, sys.stdout.buffer)
        elif not args or args[0] == "--stdin":  # git's clean: stdin to stdout
            where = args[1] if len(args) > 1 else "stdin"
            text = sys.stdin.buffer.read().decode("utf-8")
            sys.stdout.buffer.write(strip_text(text, where).encode("utf-8") if text else b"")
        else:  # files in place; --hook (pre-commit): not those git's nbops filter strips anyway
            files = [Path(a) for a in args if a != "--hook"]
            skip = filtered(Path.cwd(), files) if "--hook" in args else set()
            for path in files:
                if path not in skip and strip_file(path):
                    print(f"stripped {path}")
    except NotebookError as exc:
        print(f"nbops strip: {exc.one_line()}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print("nbops strip: the notebook is not UTF-8", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
