import platform
import sys

import pytest

from seq2seq import runtime


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_tune_malloc_sets_the_thresholds_on_glibc(monkeypatch):
    monkeypatch.delenv(runtime.OPT_OUT, raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert runtime.tune_malloc() is True


@pytest.mark.parametrize(
    "name, value",
    [("SEQ2SEQ_DEFAULT_MALLOC", "1"), ("MALLOC_MMAP_THRESHOLD_", "131072"),
     ("MALLOC_TRIM_THRESHOLD_", "131072")],
)  # fmt: skip
def test_tune_malloc_leaves_an_explicit_choice_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert runtime.tune_malloc() is False


def test_tune_malloc_off_glibc_does_nothing(monkeypatch):
    def no_libc(*_args, **_kwargs):
        raise OSError("no libc")

    for name in (runtime.OPT_OUT, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(runtime.ctypes, "CDLL", no_libc)
    assert runtime.tune_malloc() is False
