"""Built-in synthetic sequence-to-sequence tasks, generated locally with no download.

Every example is a ``(source, target)`` pair of single-line strings (no tabs, no line
breaks). All randomness comes from a private ``random.Random(seed)``, never the global
generator, so the same seed always gives the same data.

Tasks:

* ``copy``    -- a random string of 1..``max_len`` symbols from ``a``..``t``; target identical.
* ``reverse`` -- same sources; target is the reversed string.
* ``sort``    -- same sources; target is the symbols in sorted order.
* ``add``     -- ``A+B`` with 1..``max_digits``-digit non-negative integers; target the sum.
* ``dates``   -- a date between 1950-01-01 and 2049-12-31 in one of several unambiguous
  human formats; target the ISO form ``YYYY-MM-DD``.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import random
import tempfile
from collections.abc import Callable

__all__ = [
    "ALPHABET", "DATE_FORMATS_COUNT", "DATE_MAX", "DATE_MIN", "DEFAULT_MAX_DIGITS",
    "DEFAULT_MAX_LEN", "DEFAULT_SEED", "DEFAULT_SIZES", "SPLITS", "TASKS",
    "format_date", "generate", "make_splits", "write_splits",
]  # fmt: skip

Example = tuple[str, str]

TASKS: tuple[str, ...] = ("copy", "reverse", "sort", "add", "dates")
"""Names of the built-in tasks."""

SPLITS: tuple[str, ...] = ("train", "dev", "test")
"""Split names, in the order they are generated and written."""

DEFAULT_SIZES: dict[str, int] = {"train": 20000, "dev": 500, "test": 1000}
"""Default number of examples per split (used by the command line)."""

DEFAULT_SEED: int = 1
"""Default random seed (used by the command line)."""

ALPHABET: str = "abcdefghijklmnopqrst"
"""The 20 symbols of the copy/reverse/sort tasks."""

DEFAULT_MAX_LEN: int = 20
"""Default maximum source length of the copy/reverse/sort tasks."""

DEFAULT_MAX_DIGITS: int = 4
"""Default maximum number of digits of each operand of the add task."""

DATE_MIN: datetime.date = datetime.date(1950, 1, 1)
"""Earliest date produced by the dates task."""

DATE_MAX: datetime.date = datetime.date(2049, 12, 31)
"""Latest date produced by the dates task."""

# Written out so the output never depends on the process locale.
_MONTHS: tuple[str, ...] = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_WEEKDAYS: tuple[str, ...] = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)  # fmt: skip
_SUFFIXES: dict[int, str] = {1: "st", 2: "nd", 3: "rd"}

# Consecutive rejected draws after which make_splits gives up on finding new sources.
_MAX_REJECTIONS = 10_000


def _ordinal(day: int) -> str:
    """Return ``day`` with its English ordinal suffix (1st, 2nd, 3rd, 4th, 11th, 21st...)."""
    if 11 <= day % 100 <= 13:
        return f"{day}th"
    return f"{day}{_SUFFIXES.get(day % 10, 'th')}"


def _month(d: datetime.date) -> str:
    return _MONTHS[d.month - 1]


def _mon(d: datetime.date) -> str:
    return _MONTHS[d.month - 1][:3]


def _weekday(d: datetime.date) -> str:
    return _WEEKDAYS[d.weekday()]


# Each formatter is injective on its own, and no two formatters produce the same string
# for different dates, so the ISO date is always recoverable from the source alone.
_DATE_FORMATTERS: tuple[Callable[[datetime.date], str], ...] = (
    lambda d: f"{_month(d)} {d.day}, {d.year}",  # March 3, 2017
    lambda d: f"{d.day} {_month(d)} {d.year}",  # 3 March 2017
    lambda d: f"{_mon(d)} {d.day} {d.year}",  # Mar 3 2017
    lambda d: f"{d.day} {_mon(d)} {d.year}",  # 3 Mar 2017
    lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",  # 03/14/2017 (US, slash)
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",  # 14.03.2017 (European, dot)
    lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",  # 2017/03/14
    lambda d: f"{_weekday(d)}, {_month(d)} {d.day}, {d.year}",  # Tuesday, March 14, 2017
    lambda d: f"{_ordinal(d.day)} of {_month(d)} {d.year}",  # 14th of March 2017
    lambda d: f"{_month(d).lower()} {d.day} {d.year}",  # march 14 2017
    lambda d: f"{_month(d).upper()} {d.day}, {d.year}",  # MARCH 14, 2017
    lambda d: f"{_weekday(d)[:3]} {d.day} {_mon(d)} {d.year}",  # Tue 14 Mar 2017
    lambda d: f"{d.year}{d.month:02d}{d.day:02d}",  # 20170314
    lambda d: f"{d.day:02d}-{_mon(d)}-{d.year}",  # 14-Mar-2017
)

DATE_FORMATS_COUNT: int = len(_DATE_FORMATTERS)
"""Number of distinct source formats of the dates task (valid ``fmt_index`` values)."""


def format_date(date: datetime.date, fmt_index: int) -> str:
    """Render ``date`` in source format number ``fmt_index`` of the dates task.

    Raises:
        ValueError: if ``fmt_index`` is not in ``range(DATE_FORMATS_COUNT)``.
    """
    if not 0 <= fmt_index < DATE_FORMATS_COUNT:
        raise ValueError(f"fmt_index must be in range({DATE_FORMATS_COUNT}), got {fmt_index!r}")
    return _DATE_FORMATTERS[fmt_index](date)


def _random_symbols(rng: random.Random, max_len: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, max_len)))


def _random_number(rng: random.Random, max_digits: int) -> int:
    """Pick a digit count uniformly in 1..max_digits, then a number with that many digits."""
    digits = rng.randint(1, max_digits)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def _example_maker(task: str, max_len: int, max_digits: int) -> Callable[[random.Random], Example]:
    """Return a function drawing one example of ``task`` from a random generator."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; available tasks: {', '.join(TASKS)}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if max_digits < 1:
        raise ValueError(f"max_digits must be >= 1, got {max_digits}")

    def copy(rng: random.Random) -> Example:
        s = _random_symbols(rng, max_len)
        return s, s

    def reverse(rng: random.Random) -> Example:
        s = _random_symbols(rng, max_len)
        return s, s[::-1]

    def sort(rng: random.Random) -> Example:
        s = _random_symbols(rng, max_len)
        return s, "".join(sorted(s))

    def add(rng: random.Random) -> Example:
        a = _random_number(rng, max_digits)
        b = _random_number(rng, max_digits)
        return f"{a}+{b}", str(a + b)

    first, last = DATE_MIN.toordinal(), DATE_MAX.toordinal()

    def dates(rng: random.Random) -> Example:
        d = datetime.date.fromordinal(rng.randint(first, last))
        return format_date(d, rng.randrange(DATE_FORMATS_COUNT)), d.isoformat()

    makers: dict[str, Callable[[random.Random], Example]] = {
        "copy": copy,
        "reverse": reverse,
        "sort": sort,
        "add": add,
        "dates": dates,
    }
    return makers[task]


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def generate(
    task: str,
    n: int,
    seed: int,
    *,
    max_len: int = DEFAULT_MAX_LEN,
    max_digits: int = DEFAULT_MAX_DIGITS,
) -> list[Example]:
    """Return ``n`` examples of ``task`` drawn with ``random.Random(seed)``.

    Sources may repeat. The result for a smaller ``n`` is a prefix of that for a larger one.
    ``max_len`` applies to copy/reverse/sort, ``max_digits`` to add.

    Raises:
        ValueError: for an unknown task (the message lists ``TASKS``) or invalid sizes.
    """
    make = _example_maker(task, max_len, max_digits)
    _check_count("n", n)
    rng = random.Random(seed)
    return [make(rng) for _ in range(n)]


def make_splits(
    task: str,
    train: int,
    dev: int,
    test: int,
    seed: int,
    *,
    max_len: int = DEFAULT_MAX_LEN,
    max_digits: int = DEFAULT_MAX_DIGITS,
) -> dict[str, list[Example]]:
    """Return ``{'train': [...], 'dev': [...], 'test': [...]}`` for ``task``, deterministic in seed.

    Train is exactly ``generate(task, train, seed)`` (sources may repeat). Dev and test are
    drawn from the same random stream afterwards, skipping any source already used in train,
    dev or test, so dev and test sources are unique, never occur in train, and are disjoint.

    Raises:
        ValueError: for an unknown task or negative sizes, or when the task's source space is
            too small to find enough new sources (``_MAX_REJECTIONS`` consecutive draws fail).
    """
    make = _example_maker(task, max_len, max_digits)
    sizes = {"train": train, "dev": dev, "test": test}
    for name, size in sizes.items():
        _check_count(name, size)
    rng = random.Random(seed)
    splits: dict[str, list[Example]] = {"train": [make(rng) for _ in range(train)]}
    used = {src for src, _ in splits["train"]}
    for name in ("dev", "test"):
        examples: list[Example] = []
        rejections = 0
        while len(examples) < sizes[name]:
            example = make(rng)
            if example[0] in used:
                rejections += 1
                if rejections >= _MAX_REJECTIONS:
                    raise ValueError(
                        f"task {task!r} has too few distinct sources: found only "
                        f"{len(examples)} of {sizes[name]} new {name} sources after "
                        f"{rejections} consecutive duplicate draws; dev/test sources must "
                        "be unseen in train and disjoint, which is impossible here -- "
                        "use smaller splits or a larger task"
                    )
                continue
            rejections = 0
            used.add(example[0])
            examples.append(example)
        splits[name] = examples
    return splits


def _check_line(text: str, path_name: str) -> None:
    if "\n" in text or "\r" in text:
        raise ValueError(f"example for {path_name} contains a line break: {text!r}")


def _write_atomic(path: pathlib.Path, lines: list[str]) -> None:
    """Write ``lines`` (one per line, UTF-8, ``\\n``) to ``path`` via a temp file and os.replace."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line)
                f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


def write_splits(
    splits: dict[str, list[tuple[str, str]]], out_dir: str | os.PathLike[str]
) -> list[pathlib.Path]:
    """Write ``out_dir/{split}.src`` and ``out_dir/{split}.tgt`` for every split in ``splits``.

    Files are UTF-8 with ``\\n`` line endings and one example per line; ``out_dir`` is created
    if needed and each file is written atomically. Splits are written in the order
    train, dev, test, then any others in dictionary order.

    Returns:
        The written paths, ``.src`` before ``.tgt`` for each split.

    Raises:
        ValueError: for a split name that is not a plain file name, or an example containing
            a line break (which would misalign the files).
    """
    out = pathlib.Path(out_dir)
    names = [s for s in SPLITS if s in splits] + [s for s in splits if s not in SPLITS]
    for name in names:
        if not name or name.startswith(".") or "/" in name or os.sep in name:
            raise ValueError(f"invalid split name {name!r}")
        for src, tgt in splits[name]:
            _check_line(src, f"{name}.src")
            _check_line(tgt, f"{name}.tgt")
    out.mkdir(parents=True, exist_ok=True)
    written: list[pathlib.Path] = []
    for name in names:
        for suffix, column in (("src", 0), ("tgt", 1)):
            path = out / f"{name}.{suffix}"
            _write_atomic(path, [example[column] for example in splits[name]])
            written.append(path)
    return written
