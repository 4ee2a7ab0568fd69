"""Work handed to the daemon's loop thread: results and errors reach the caller, none hangs."""

from __future__ import annotations

import threading
import time

import pytest

from facegate.errors import FacegateError
from facegate.service.jobs import LoopJobs

DEADLINE_S = 30.0  # catches a hang; every wait ends as soon as its condition holds


def _call_from_thread(jobs: LoopJobs, job, **kw) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def caller() -> None:
        try:
            out["result"] = jobs.call(job, **kw)
        except BaseException as err:
            out["error"] = err

    thread = threading.Thread(target=caller)
    thread.start()
    return thread, out


def _run_until_one_ran(jobs: LoopJobs, arg: object) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while jobs.run(arg) == 0:
        assert time.monotonic() < deadline, "no job arrived"
        threading.Event().wait(0.005)


def test_the_job_runs_on_the_loop_thread_with_its_argument() -> None:
    jobs: LoopJobs[str] = LoopJobs()
    thread, out = _call_from_thread(jobs, lambda arg: (arg, threading.current_thread().name))
    _run_until_one_ran(jobs, "recognizer")
    thread.join(DEADLINE_S)
    assert out["result"] == ("recognizer", threading.current_thread().name)


def test_an_error_reaches_the_caller() -> None:
    jobs: LoopJobs[None] = LoopJobs()
    thread, out = _call_from_thread(jobs, lambda _: 1 / 0)
    _run_until_one_ran(jobs, None)
    thread.join(DEADLINE_S)
    assert isinstance(out["error"], ZeroDivisionError)


def test_a_loop_that_never_runs_it_times_out_in_one_line() -> None:
    jobs: LoopJobs[None] = LoopJobs()
    with pytest.raises(FacegateError, match="too busy"):
        jobs.call(lambda _: 1, wait_s=0.05)
    assert jobs.run(None) == 0  # the abandoned job is not run later


def test_closing_runs_what_is_queued_and_refuses_more() -> None:
    jobs: LoopJobs[int] = LoopJobs()
    thread, out = _call_from_thread(jobs, lambda n: n + 1)
    deadline = time.monotonic() + DEADLINE_S
    while jobs._queue.empty():  # the caller has queued its job
        assert time.monotonic() < deadline
        threading.Event().wait(0.005)
    jobs.close(41)
    thread.join(DEADLINE_S)
    assert out["result"] == 42
    with pytest.raises(FacegateError, match="stopping"):
        jobs.call(lambda n: n)
