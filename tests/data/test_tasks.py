"""Tests for seq2seq.data.tasks: synthetic task generation, splits and writing."""

from __future__ import annotations

import datetime
import os
import random
import re
from collections import Counter

import pytest

from seq2seq.data import tasks
from seq2seq.data.tasks import (
    DATE_FORMATS_COUNT,
    DEFAULT_SEED,
    DEFAULT_SIZES,
    TASKS,
    format_date,
    generate,
    make_splits,
    write_splits,
)

N = 2000
LETTERS = "abcdefghijklmnopqrst"
NUMBER = r"(0|[1-9][0-9]{0,3})"


def test_constants() -> None:
    assert TASKS == ("copy", "reverse", "sort", "add", "dates")
    assert DEFAULT_SIZES == {"train": 20000, "dev": 500, "test": 1000}
    assert DEFAULT_SEED == 1
    assert DATE_FORMATS_COUNT >= 12


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_and_seed_dependent(task: str) -> None:
    a = generate(task, 200, seed=7)
    assert a == generate(task, 200, seed=7)
    assert a != generate(task, 200, seed=8)
    assert generate(task, 50, seed=7) == a[:50]
    assert len(a) == 200
    assert generate(task, 0, seed=7) == []


@pytest.mark.parametrize("task", TASKS)
def test_does_not_use_global_random(task: str) -> None:
    random.seed(123)
    before = random.random()
    random.seed(123)
    generate(task, 100, seed=3)
    assert random.random() == before


@pytest.mark.parametrize("task", TASKS)
def test_single_line_strings(task: str) -> None:
    for src, tgt in generate(task, N, seed=1):
        for text in (src, tgt):
            assert isinstance(text, str) and text
            assert not set(text) & {"\t", "\n", "\r"}
            assert text == text.strip()


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("copy", lambda s: s),
        ("reverse", lambda s: s[::-1]),
        ("sort", lambda s: "".join(sorted(s))),
    ],
)
def test_symbol_tasks(task: str, expected) -> None:
    examples = generate(task, N, seed=5)
    lengths = Counter(len(src) for src, _ in examples)
    for src, tgt in examples:
        assert re.fullmatch(r"[a-t]{1,20}", src), src
        assert tgt == expected(src)
    assert min(lengths) == 1 and max(lengths) == 20
    assert set("".join(src for src, _ in examples)) == set(LETTERS)


def test_reverse_and_sort_examples_differ_from_copy() -> None:
    # Guards against a target function that silently returns the source.
    assert any(s != t for s, t in generate("reverse", 100, seed=2))
    assert any(s != t for s, t in generate("sort", 100, seed=2))


def test_max_len_option() -> None:
    examples = generate("copy", 500, seed=1, max_len=3)
    assert {len(s) for s, _ in examples} == {1, 2, 3}
    with pytest.raises(ValueError):
        generate("copy", 5, seed=1, max_len=0)


def test_add() -> None:
    examples = generate("add", N, seed=9)
    digit_counts: Counter[int] = Counter()
    for src, tgt in examples:
        m = re.fullmatch(NUMBER + r"\+" + NUMBER, src)
        assert m, src
        a, b = m.groups()
        assert tgt == str(int(a) + int(b))
        digit_counts.update((len(a), len(b)))
    assert set(digit_counts) == {1, 2, 3, 4}
    assert any(s.startswith("0+") or s.endswith("+0") for s, _ in generate("add", 5000, 1))


def test_add_max_digits_option() -> None:
    for src, tgt in generate("add", 300, seed=1, max_digits=1):
        a, b = src.split("+")
        assert len(a) == len(b) == 1
        assert tgt == str(int(a) + int(b))


def test_dates_targets_in_range_and_year_in_source() -> None:
    examples = generate("dates", N, seed=11)
    for src, tgt in examples:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", tgt), tgt
        d = datetime.date.fromisoformat(tgt)
        assert datetime.date(1950, 1, 1) <= d <= datetime.date(2049, 12, 31)
        assert str(d.year) in src
    years = {tgt[:4] for _, tgt in examples}
    assert min(years) == "1950" and max(years) == "2049"  # whole range is used


def test_all_formats_appear() -> None:
    d = datetime.date(2017, 3, 14)
    shapes = set()
    for src, tgt in generate("dates", N, seed=4):
        fmt = next(
            i
            for i in range(DATE_FORMATS_COUNT)
            if format_date(datetime.date.fromisoformat(tgt), i) == src
        )
        shapes.add(format_date(d, fmt))
    # Compare rendered shapes so formats that coincide for some dates still count once each.
    assert shapes == {format_date(d, i) for i in range(DATE_FORMATS_COUNT)}


FORMAT_TABLE = [
    (datetime.date(2017, 3, 3), "March 3, 2017"),
    (datetime.date(2017, 3, 3), "3 March 2017"),
    (datetime.date(2017, 3, 3), "Mar 3 2017"),
    (datetime.date(2017, 3, 3), "3 Mar 2017"),
    (datetime.date(2017, 3, 14), "03/14/2017"),
    (datetime.date(2017, 3, 14), "14.03.2017"),
    (datetime.date(2017, 3, 14), "2017/03/14"),
    (datetime.date(2017, 3, 14), "Tuesday, March 14, 2017"),
    (datetime.date(2017, 3, 14), "14th of March 2017"),
    (datetime.date(2017, 3, 14), "march 14 2017"),
    (datetime.date(2017, 3, 14), "MARCH 14, 2017"),
    (datetime.date(2017, 3, 14), "Tue 14 Mar 2017"),
    (datetime.date(2017, 3, 14), "20170314"),
    (datetime.date(1950, 1, 1), "Sunday, January 1, 1950"),
    (datetime.date(2049, 12, 31), "Fri 31 Dec 2049"),
    (datetime.date(2000, 2, 29), "Tuesday, February 29, 2000"),
    (datetime.date(2024, 9, 5), "Sep 5 2024"),
    (datetime.date(2024, 9, 5), "09/05/2024"),
    (datetime.date(2024, 9, 5), "05.09.2024"),
    (datetime.date(1999, 12, 1), "19991201"),
]


@pytest.mark.parametrize(("date", "expected"), FORMAT_TABLE)
def test_format_table(date: datetime.date, expected: str) -> None:
    rendered = [format_date(date, i) for i in range(DATE_FORMATS_COUNT)]
    assert expected in rendered, rendered


@pytest.mark.parametrize(
    ("day", "suffix"),
    [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"),
     (13, "13th"), (20, "20th"), (21, "21st"), (22, "22nd"), (23, "23rd"), (30, "30th"),
     (31, "31st")],
)  # fmt: skip
def test_ordinal_suffixes(day: int, suffix: str) -> None:
    date = datetime.date(2001, 1, day)
    assert f"{suffix} of January 2001" in [format_date(date, i) for i in range(DATE_FORMATS_COUNT)]


def test_weekdays_are_correct() -> None:
    names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    start = datetime.date(2023, 1, 2)  # a Monday
    for offset in range(14):
        d = start + datetime.timedelta(days=offset)
        rendered = " ".join(format_date(d, i) for i in range(DATE_FORMATS_COUNT))
        expected = names[offset % 7]
        assert expected in rendered
        assert not any(w in rendered for w in names if w != expected)


def test_format_date_rejects_bad_index() -> None:
    d = datetime.date(2017, 3, 14)
    for bad in (-1, DATE_FORMATS_COUNT):
        with pytest.raises(ValueError):
            format_date(d, bad)


def test_date_formats_are_unambiguous() -> None:
    """Every (date, format) source string determines the date: source -> date is a function."""
    seen: dict[str, datetime.date] = {}
    first = datetime.date(1950, 1, 1).toordinal()
    last = datetime.date(2049, 12, 31).toordinal()
    for ordinal in range(first, last + 1):
        d = datetime.date.fromordinal(ordinal)
        for i in range(DATE_FORMATS_COUNT):
            src = format_date(d, i)
            other = seen.setdefault(src, d)
            assert other == d, f"{src!r} is both {other} and {d}"
    assert len(seen) >= (last - first + 1) * 12


@pytest.mark.parametrize("task", TASKS)
def test_make_splits(task: str) -> None:
    splits = make_splits(task, train=1000, dev=100, test=200, seed=3)
    assert list(splits) == ["train", "dev", "test"]
    assert {k: len(v) for k, v in splits.items()} == {"train": 1000, "dev": 100, "test": 200}
    assert splits == make_splits(task, train=1000, dev=100, test=200, seed=3)
    assert splits != make_splits(task, train=1000, dev=100, test=200, seed=4)
    train_src = {s for s, _ in splits["train"]}
    dev_src = [s for s, _ in splits["dev"]]
    test_src = [s for s, _ in splits["test"]]
    assert len(set(dev_src)) == len(dev_src) and len(set(test_src)) == len(test_src)
    assert not train_src & set(dev_src)
    assert not train_src & set(test_src)
    assert not set(dev_src) & set(test_src)
    assert splits["train"] == generate(task, 1000, seed=3)


def test_make_splits_dev_test_disjoint_when_train_dense() -> None:
    # max_len=2 gives 420 sources; a large train covers most, forcing many rejections.
    splits = make_splits("copy", train=300, dev=20, test=20, seed=0, max_len=2)
    train_src = {s for s, _ in splits["train"]}
    held_out = [s for name in ("dev", "test") for s, _ in splits[name]]
    assert len(held_out) == len(set(held_out)) == 40
    assert not train_src & set(held_out)


def test_make_splits_exhausts_tiny_space_exactly() -> None:
    splits = make_splits("copy", train=0, dev=10, test=10, seed=0, max_len=1)
    assert {s for name in ("dev", "test") for s, _ in splits[name]} == set(LETTERS)


def test_make_splits_impossible_raises() -> None:
    with pytest.raises(ValueError, match="too few distinct sources"):
        make_splits("copy", train=500, dev=5, test=5, seed=0, max_len=1)
    with pytest.raises(ValueError, match="too few distinct sources"):
        make_splits("copy", train=0, dev=15, test=10, seed=0, max_len=1)


def test_make_splits_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError):
        make_splits("copy", train=-1, dev=1, test=1, seed=0)


@pytest.mark.parametrize(
    "call", [lambda: generate("nope", 3, 1), lambda: make_splits("nope", 1, 1, 1, 1)]
)
def test_unknown_task(call) -> None:
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "nope" in message
    for name in TASKS:
        assert name in message


def test_write_splits_round_trip(tmp_path) -> None:
    splits = make_splits("dates", train=50, dev=7, test=9, seed=2)
    out = tmp_path / "nested" / "out"
    paths = write_splits(splits, out)
    expected_names = [f"{s}.{x}" for s in ("train", "dev", "test") for x in ("src", "tgt")]
    assert [p.name for p in paths] == expected_names
    assert sorted(os.listdir(out)) == sorted(expected_names)  # no temporary files left
    for name, examples in splits.items():
        for column, suffix in enumerate(("src", "tgt")):
            raw = (out / f"{name}.{suffix}").read_bytes()
            assert b"\r" not in raw and raw.endswith(b"\n")
            lines = raw.decode("utf-8").split("\n")[:-1]
            assert len(lines) == len(examples)
            assert lines == [ex[column] for ex in examples]


def test_write_splits_accepts_str_and_overwrites(tmp_path) -> None:
    write_splits(make_splits("add", 30, 3, 3, seed=1), str(tmp_path))
    small = make_splits("add", 4, 1, 2, seed=5)
    write_splits(small, str(tmp_path))
    assert (tmp_path / "train.tgt").read_text(encoding="utf-8").count("\n") == 4
    assert (tmp_path / "test.src").read_text(encoding="utf-8").splitlines() == [
        s for s, _ in small["test"]
    ]


def test_write_splits_is_atomic(tmp_path, monkeypatch) -> None:
    write_splits({"train": [("a", "a")], "dev": [], "test": []}, tmp_path)

    def failing_replace(src, dst):
        raise OSError("simulated failure")

    monkeypatch.setattr(tasks.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        write_splits({"train": [("b", "b")], "dev": [], "test": []}, tmp_path)
    assert (tmp_path / "train.src").read_text(encoding="utf-8") == "a\n"
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"{s}.{x}" for s in ("train", "dev", "test") for x in ("src", "tgt")
    )


def test_write_splits_rejects_line_breaks(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_splits({"train": [("a\nb", "x")], "dev": [], "test": []}, tmp_path)
