"""Strict reading of aligned parallel corpora (``PREFIX.SRC_SUFFIX`` / ``PREFIX.TGT_SUFFIX``).

Nothing is skipped silently: misaligned files, invalid UTF-8 and empty lines are errors that name the
path and line; empty and over-long pairs are dropped only when the config asks, and the counts are
returned so the caller can report them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class CorpusError(ValueError):
    """A corpus file is missing, misaligned or malformed; the message names the file and line."""


@dataclass
class FilterReport:
    kept: int = 0
    dropped_empty: int = 0
    dropped_long: int = 0
    examples: list[str] = field(default_factory=list)  # a few "path:line" of dropped pairs

    def summary(self) -> str:
        return (
            f"kept {self.kept} pairs, dropped {self.dropped_empty} with an empty side and "
            f"{self.dropped_long} over the length limit"
        )


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 file without their line ending; errors name the path and line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CorpusError(f"{path}: is a directory, expected a text file") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # final newline
    out = []
    for i, raw in enumerate(lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise CorpusError(
                f"{path}:{i}: invalid UTF-8 ({e.reason} at byte {e.start} of the line)"
            ) from None
    return out


def corpus_paths(prefix: str | Path, src_suffix: str, tgt_suffix: str) -> tuple[Path, Path]:
    prefix = str(prefix)
    return Path(f"{prefix}.{src_suffix}"), Path(f"{prefix}.{tgt_suffix}")


def read_parallel(src_path: str | Path, tgt_path: str | Path) -> list[tuple[str, str]]:
    """Reads two aligned files; a line-count mismatch names both paths and both counts."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise CorpusError(
            f"misaligned corpus: {src_path} has {len(src)} lines but {tgt_path} has {len(tgt)} lines"
        )
    return list(zip(src, tgt))


def filter_pairs(
    pairs: list[tuple[list[str], list[str]]],
    src_path: str | Path,
    tgt_path: str | Path,
    *,
    drop_empty: bool,
    max_len: int | None,
) -> tuple[list[int], FilterReport]:
    """Indices of the tokenized pairs to keep (pair i is line i + 1 of both files).

    An empty side is an error naming its file and line unless ``drop_empty``; pairs longer than
    ``max_len`` tokens on either side are dropped when it is set.
    """
    report = FilterReport()
    keep = []
    for i, (s, t) in enumerate(pairs):
        if not s or not t:
            if not drop_empty:
                path, side = (src_path, "source") if not s else (tgt_path, "target")
                raise CorpusError(
                    f"{path}:{i + 1}: empty {side} line; remove the pair or set "
                    "data.drop_empty: true to drop such pairs"
                )
            report.dropped_empty += 1
        elif max_len is not None and (len(s) > max_len or len(t) > max_len):
            report.dropped_long += 1
        else:
            keep.append(i)
            continue
        if len(report.examples) < 5:
            report.examples.append(f"{src_path}:{i + 1}")
    report.kept = len(keep)
    return keep, report
