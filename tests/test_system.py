"""System tests: train the built-in tasks from an empty working directory, as a new user would,
and check the accuracy bars of the core issue (2 CPU threads; minutes each).

Every test's work (data, training, evaluation) is a job of a :class:`CorePool`: the jobs of the
selected tests all start with the module and run side by side on the two cores, each test waiting
for its own job and checking what it gave. Most trainings here are small enough that one thread
trains them nearly as fast as two (the Transformer configs keep one thread for that reason), so
such a job holds one core and two of them run at once; the reverse RNN and the torchrun pair hold
both. On the AVX2 EPYC of 2026-12-03 the module took 14.6 minutes this way, 20.1 one test after
the other.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
CORES = 2  # the machine the bars are stated for: 2 CPU threads


class CorePool:
    """Runs jobs in the order given, each holding ``cores`` of CORES from its start to its end; a
    job's result (or exception) is its future's. ``close`` kills what still runs."""

    def __init__(self) -> None:
        self.free = CORES
        self.cond = threading.Condition()
        self.procs: set[subprocess.Popen] = set()
        self.closed = False

    def start(self, jobs: list[tuple[str, int, Callable[[], Any]]]) -> dict[str, Future]:
        futures = {name: Future() for name, _, _ in jobs}
        threading.Thread(target=self._schedule, args=(jobs, futures), daemon=True).start()
        return futures

    def _schedule(self, jobs: list[tuple[str, int, Callable[[], Any]]], futures: dict) -> None:
        for name, cores, job in jobs:
            with self.cond:
                self.cond.wait_for(lambda cores=cores: self.free >= cores or self.closed)
                if self.closed:
                    futures[name].set_exception(RuntimeError("the pool was closed"))
                    continue
                self.free -= cores
            threading.Thread(
                target=self._run, args=(job, cores, futures[name]), daemon=True
            ).start()

    def _run(self, job: Callable[[], Any], cores: int, future: Future) -> None:
        try:
            future.set_result(job())
        except BaseException as e:  # noqa: BLE001 - handed to the waiting test
            future.set_exception(e)
        finally:
            with self.cond:
                self.free += cores
                self.cond.notify_all()

    def run(self, cmd: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess:
        """``subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, input=...)``, killable by
        close."""
        text = kwargs.pop("input", None)
        kwargs.setdefault("stdin", subprocess.PIPE if text is not None else subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        with subprocess.Popen(cmd, cwd=cwd, text=True, **kwargs) as proc:
            with self.cond:
                self.procs.add(proc)
            try:
                out, err = proc.communicate(text)
            finally:
                with self.cond:
                    self.procs.discard(proc)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            for proc in self.procs:
                proc.kill()
            self.cond.notify_all()


POOL = CorePool()
JOBS: dict[str, tuple[int, Callable[[Path], Any]]] = {}  # test name -> (cores, job(workdir))


def job(cores: int = 1) -> Callable:
    """Registers ``fn(workdir)`` as the job of the test named ``test_`` + its name."""

    def register(fn: Callable[[Path], Any]) -> Callable[[Path], Any]:
        JOBS["test_" + fn.__name__.removeprefix("_")] = (cores, fn)
        return fn

    return register


@pytest.fixture(scope="module")
def jobs(request, tmp_path_factory) -> dict[str, Future]:
    """Starts the jobs of this module's selected tests (in their order) and returns their
    futures by test name; kills what is left when the module ends."""
    wanted, seen = [], set()
    for item in request.session.items:
        if item.module is request.module and item.name in JOBS and item.name not in seen:
            seen.add(item.name)
            wanted.append(item.name)
    wanted.sort(key=lambda name: -JOBS[name][0])  # jobs of both cores first: no core waits idle

    def work(name: str) -> Any:
        return JOBS[name][1](tmp_path_factory.mktemp(re.sub(r"\W+", "_", name)))

    futures = POOL.start([(name, JOBS[name][0], lambda name=name: work(name)) for name in wanted])
    yield futures
    POOL.close()


def seq2seq(*args: str, cwd: Path) -> str:
    proc = POOL.run([sys.executable, "-m", "seq2seq", *args], cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def evaluate_with_int8_check(cwd: Path, run: str, data: str) -> tuple[dict, float]:
    """Test-set exact match (float32) and the share of the 1,000 test outputs that int8 dynamic
    quantization leaves unchanged, one thread each."""
    test = ["--src", f"{data}/test.src", "--ref", f"{data}/test.tgt"]
    result = json.loads(
        seq2seq(
            "evaluate", run, *test, "--json", "-q", "--output", "float", "--threads", "1", cwd=cwd
        )
    )
    seq2seq(
        "translate",
        run,
        "--input",
        f"{data}/test.src",
        "--output",
        "int8",
        "-q",
        "--quantize",
        "int8",
        "--threads",
        "1",
        cwd=cwd,
    )
    floats, int8 = ((cwd / name).read_text().splitlines() for name in ("float", "int8"))
    return result, sum(a == b for a, b in zip(floats, int8)) / 1000


def check_bars(result: dict, same: float, bar: float, agreement: float = 0.99) -> None:
    """Test-set exact match >= ``bar`` over the 1,000 sentences, and int8 leaving at least
    ``agreement`` of the outputs unchanged."""
    assert result["sentences"] == 1000
    assert result["exact_match"] >= bar, result
    assert same >= agreement, same


EXAMPLES = [  # task, model, exact-match bar, int8 agreement bar
    ("reverse", "rnn", 0.95, 0.99),
    # the small (d 64) reverse Transformer is unsure of ~3% of its outputs and int8 flips
    # about 2.4% of them (measured 0.976; docs/benchmarks.md): a known gap, not the 0.99 bar
    ("reverse", "transformer", 0.95, 0.97),
    ("dates", "transformer", 0.90, 0.99),
]  # dates with the RNN: test_quickstart_learns_dates trains configs/dates_rnn.yaml


# the RNN config trains with the two threads it asks for, so its job holds both cores: with one
# thread its 600 steps took 4.3 minutes (AVX2 EPYC, 2026-12-03), near the config's 4.5-minute guard
EXAMPLE_THREADS = {"rnn": 2, "transformer": 1}


def _example(task: str, model: str) -> Callable[[Path], Any]:
    def train_and_evaluate(cwd: Path) -> tuple[float, dict, float]:
        seq2seq("data", "task", task, "--out", f"data/{task}", cwd=cwd)
        start = time.monotonic()
        config = str(REPO / "configs" / f"{task}_{model}.yaml")
        threads = f"train.threads={EXAMPLE_THREADS[model]}"
        seq2seq("train", config, "--out", "runs/r", "-q", "--set", threads, cwd=cwd)
        minutes = (time.monotonic() - start) / 60
        return (minutes, *evaluate_with_int8_check(cwd, "runs/r", f"data/{task}"))

    return train_and_evaluate


for _task, _model, *_ in EXAMPLES:
    JOBS[f"test_example_config_trains_task_to_bar_within_five_minutes[{_task}-{_model}]"] = (
        EXAMPLE_THREADS[_model],
        _example(_task, _model),
    )


@pytest.mark.parametrize(
    "task,model,bar,agreement", EXAMPLES, ids=[f"{t}-{m}" for t, m, *_ in EXAMPLES]
)
def test_example_config_trains_task_to_bar_within_five_minutes(
    jobs, request, task, model, bar, agreement
):
    minutes, result, same = jobs[request.node.name].result()
    assert minutes < 5, f"training took {minutes:.1f} min"
    check_bars(result, same, bar, agreement)


ATTENTION_KINDS = ("local_p", "luong_concat")


def _attention_kind(kind: str) -> Callable[[Path], Any]:
    def train_and_evaluate(cwd: Path) -> tuple[float, dict]:
        seq2seq("data", "task", "dates", "--out", "data/dates", cwd=cwd)
        start = time.monotonic()
        seq2seq(
            "train",
            str(REPO / "configs" / "dates_rnn.yaml"),
            "--out",
            f"runs/{kind}",
            "-q",
            "--set",
            f"model.decoder.attention.kind={kind}",
            "--set",
            "train.threads=1",
            cwd=cwd,
        )
        minutes = (time.monotonic() - start) / 60
        test = ["--src", "data/dates/test.src", "--ref", "data/dates/test.tgt"]
        result = seq2seq("evaluate", f"runs/{kind}", *test, "--json", "--threads", "1", cwd=cwd)
        return minutes, json.loads(result)

    return train_and_evaluate


for _kind in ATTENTION_KINDS:
    JOBS[f"test_attention_kinds_train_dates_to_bar[{_kind}]"] = (1, _attention_kind(_kind))


@pytest.mark.parametrize("kind", ATTENTION_KINDS)
def test_attention_kinds_train_dates_to_bar(jobs, request, kind):
    """A subset of benchmarks/attention_dates.py (which trains all 8 kinds, docs/benchmarks.md):
    the example config with only the attention kind switched. local_p is the slowest learner
    (0.906 dev exact match after 250 steps, 0.93 after 500), so it keeps the config's 500 steps."""
    minutes, result = jobs[request.node.name].result()
    assert minutes < 5, f"training took {minutes:.1f} min"
    assert result["exact_match"] >= 0.90, (kind, result)


@job()
def _quickstart_learns_dates(cwd: Path) -> tuple[float, str, str, dict, float]:
    # one thread, as every job here; the quickstart's own config asks for two
    start = time.monotonic()
    out = seq2seq("quickstart", "-q", "--set", "train.threads=1", cwd=cwd)
    minutes = (time.monotonic() - start) / 60
    translated = POOL.run(
        [sys.executable, "-m", "seq2seq", "translate", "quickstart/runs/dates"],
        cwd=cwd,
        input="June 5, 2011\n",
    )
    assert translated.returncode == 0, translated.stderr[-3000:]
    run, data = "quickstart/runs/dates", "quickstart/data/dates"
    return (minutes, out, translated.stdout, *evaluate_with_int8_check(cwd, run, data))


def test_quickstart_learns_dates(jobs):
    minutes, out, translated, result, same = jobs["test_quickstart_learns_dates"].result()
    assert minutes < 10, f"the quickstart took {minutes:.1f} min"
    expected = {
        "March 3, 2017": "2017-03-03",
        "3 Feb 1999": "1999-02-03",
        "Tuesday, July 4, 2023": "2023-07-04",
        "12/25/2001": "2001-12-25",
        "14.07.1989": "1989-07-14",
        "1st of May 2020": "2020-05-01",
    }
    for src, iso in expected.items():
        assert f"{src:28s} -> {iso}" in out, out
    assert "seq2seq translate quickstart/runs/dates" in out
    assert translated == "2011-06-05\n"
    # the quickstart trains the packaged configs/dates_rnn.yaml: the dates bar of the core issue
    check_bars(result, same, 0.90)


@job(cores=2)
def _torchrun_two_cpu_processes_reach_the_reverse_bar(cwd: Path) -> tuple[str, dict]:
    seq2seq("data", "task", "reverse", "--out", "data/reverse", cwd=cwd)
    proc = POOL.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "-m",
            "seq2seq",
            "train",
            str(REPO / "configs" / "reverse_rnn.yaml"),
            "--out",
            "runs/ddp",
            "-q",
            "--set",
            "train.threads=1",
            "--set",
            "train.max_steps=400",
        ],
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = ["--src", "data/reverse/test.src", "--ref", "data/reverse/test.tgt", "--json"]
    result = json.loads(seq2seq("evaluate", "runs/ddp", *test, cwd=cwd))
    return (cwd / "runs/ddp/train.log").read_text(), result


def test_torchrun_two_cpu_processes_reach_the_reverse_bar(jobs):
    """DDP over gloo: two processes of one thread each, every rank a share of the batches."""
    log, result = jobs["test_torchrun_two_cpu_processes_reach_the_reverse_bar"].result()
    assert "2 processes" in log
    assert result["exact_match"] >= 0.95, result
