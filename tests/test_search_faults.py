"""Search faults: a worker killed with kill -9 costs the search nothing but a retry; a run that
kills its worker every time is reported failed while the others finish; killing the search
kills its workers; trials.jsonl survives a torn last line and names a damaged one."""
import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmlp.lock import LOCK_FILE
from fastmlp.studies import jsonl
from fastmlp.studies.executors import RETRIES, completed, trial_executor
from fastmlp.studies.search import SearchPlan
from fastmlp.studies.trials import run_or_reuse
from fault_helpers import die_in
from test_studies_search import TINY, cli
from train_helpers import tiny_config, write_npz


def jobs_dying(tmp_path, deaths):
    """Jobs 0..len(deaths)-1 for fault_helpers.die_in, job k killing its worker deaths[k] times."""
    return [(k, SimpleNamespace(out=str(tmp_path / f"job{k}"), deaths=d), False) for k, d in enumerate(deaths)]


def run_jobs(jobs):
    lines = []
    with trial_executor(SearchPlan(workers=2).validate()) as executor:
        results = dict(completed(executor, jobs, lines.append, task=die_in))
    return results, lines


def test_a_killed_worker_costs_a_retry_and_no_result(tmp_path):
    results, lines = run_jobs(jobs_dying(tmp_path, [0, 1, 0, 0, 0]))
    assert sorted(results) == [0, 1, 2, 3, 4] and results[1]["attempts"] == 2
    assert all(results[k]["out"] == str(tmp_path / f"job{k}") for k in results)
    assert len(lines) == 1 and lines[0].startswith("warning: a worker process died (BrokenProcessPool); ")


def test_a_run_that_always_kills_its_worker_fails_alone(tmp_path):
    results, lines = run_jobs(jobs_dying(tmp_path, [0, 99, 0, 0, 0, 0]))
    assert results[1] is None and len(list((tmp_path / "job1").glob("attempt-*"))) == RETRIES + 1
    assert all(results[k] is not None for k in (0, 2, 3, 4, 5))      # the others all finish
    assert [line for line in lines if "failed" in line] == [
        f"warning: the run in {tmp_path / 'job1'} failed: its worker process died {RETRIES + 1} time(s) "
        f"(BrokenProcessPool); the search goes on without it. Rerun the same command to try it again."]


# ---- real searches, killed ---------------------------------------------------------------------
def long_runs(cycles):
    return ["--sizes", "auto-8-auto", "--batch", 40, "--train-eval", 0, "--n-val", 80, "--ns", 24, "--cycles", cycles]


def start_search(tmp_path, *argv):
    npz = write_npz(tmp_path / "blobs.npz")
    out = tmp_path / "s"
    process = subprocess.Popen([sys.executable, "-m", "fastmlp", "search", "--dataset", npz, "--out", out,
                                *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, out


def worker_pids(out, process, n, deadline=300):
    """The pids of the first n workers seen training a run of the search in `out` (from the
    lock files of its run folders)."""
    pids, stop = set(), time.monotonic() + deadline
    while len(pids) < n:
        assert time.monotonic() < stop, f"fewer than {n} workers started within {deadline} s"
        assert process.poll() is None, process.communicate()
        for path in out.glob(f"runs/*/{LOCK_FILE}"):
            try:
                pids.add(json.loads(path.read_text())["pid"])
            except (FileNotFoundError, ValueError):     # finished, or not written yet
                pass
        time.sleep(0.05)
    return pids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"      # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_a_worker_does_not_stop_the_search(tmp_path):
    search, out = start_search(tmp_path, "--coarse", 4, "--fine", 1, *long_runs(20))
    try:
        victim = min(worker_pids(out, search, 1))
        os.kill(victim, signal.SIGKILL)
        stdout, err = search.communicate(timeout=600)
    finally:
        search.kill()
    assert search.returncode == 0 and "Traceback" not in err, err
    assert "warning: a worker process died (BrokenProcessPool)" in err
    keys = [json.loads(line)["key"] for line in (out / "trials.jsonl").read_text().splitlines()]
    assert sorted(keys) == ["coarse-0", "coarse-1", "coarse-2", "coarse-3", "fine-0"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_search_is_killed(tmp_path):
    search, out = start_search(tmp_path, "--coarse", 4, "--fine", 1, *long_runs(100000))
    pids = set()
    try:
        pids = worker_pids(out, search, 2)          # both workers are training (for hours)
        search.send_signal(signal.SIGKILL)
        search.wait()
        stop = time.monotonic() + 60               # a bound on "at once" that a loaded machine meets
        while any(alive(pid) for pid in pids) and time.monotonic() < stop:
            time.sleep(0.1)
        assert not [pid for pid in pids if alive(pid)]
    finally:
        search.kill()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


# ---- trials.jsonl ------------------------------------------------------------------------------
def check(record):
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        raise TypeError("not a record")
    return record


RECORDS = [{"key": f"coarse-{k}", "val_accuracy": 0.5 + k / 10} for k in range(3)]


def written(path, records=RECORDS):
    for record in records:
        jsonl.append(path, record)
    return path.read_bytes()


def test_a_torn_last_line_is_removed_with_a_warning(tmp_path):
    path = tmp_path / "trials.jsonl"
    data = written(path)
    path.write_bytes(data[:-9])                    # the last write was cut short
    lines = []
    assert jsonl.read(path, check, lines.append) == RECORDS[:2]
    assert lines == [f"warning: {path} line 3 is cut short ({len(data.splitlines()[2]) - 8} bytes, no newline: "
                     f"a write was interrupted); removed it, so its trial runs again."]
    assert path.read_bytes() == data[:data.index(b"\n", data.index(b"\n") + 1) + 1]
    jsonl.append(path, RECORDS[2])                 # the next record starts a line of its own
    assert path.read_bytes() == data and jsonl.read(path, check, lines.append) == RECORDS and len(lines) == 1


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "trials.jsonl"
    data = written(path)
    path.write_bytes(data[:-1])
    lines = []
    assert jsonl.read(path, check, lines.append) == RECORDS and lines == [] and path.read_bytes() == data


@pytest.mark.parametrize("bad", [b"{\"key\": \"coarse-1\", \"val", b"[1, 2]", b"\xff\xfe", b"[" * 100000])
def test_a_damaged_line_before_the_last_is_an_error_naming_file_and_line(tmp_path, bad):
    path = tmp_path / "trials.jsonl"
    data = written(path)
    lines = data.split(b"\n")
    path.write_bytes(b"\n".join([lines[0], bad, *lines[2:]]))
    with pytest.raises(ValueError, match=f"^{path} line 2 is not a readable record .*fix or delete line 2"):
        jsonl.read(path, check, print)
    assert path.read_bytes() == b"\n".join([lines[0], bad, *lines[2:]])      # left as it was


def test_a_record_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "trials.jsonl"
    data = written(path)
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, line: real_write(fd, line[:7]))     # a full disk
    with pytest.raises(OSError, match="No space left on device") as e:
        jsonl.append(path, {"key": "fine-0", "val_accuracy": 0.9})
    assert e.value.filename == str(path) and path.read_bytes() == data


def test_no_nan_or_infinity_reaches_the_file(tmp_path):
    path = tmp_path / "trials.jsonl"
    data = written(path)
    with pytest.raises(ValueError, match=f"^{path}: .*JSON has no NaN or Infinity; nothing was written"):
        jsonl.append(path, {"key": "coarse-0", "val_loss": float("nan"), "runs": [{"loss": float("inf")}]})
    assert path.read_bytes() == data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10 ** 6), flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)),
                                                   max_size=3))
def test_fuzz_cut_or_damaged_files_give_records_or_a_named_error(tmp_path, cut, flips):
    """Any prefix of a good file (a crash mid-write) reads as its whole records; any damage
    reads as records or a ValueError naming the file, never another exception."""
    path = tmp_path / "fuzz.jsonl"
    path.unlink(missing_ok=True)
    data = bytearray(written(path))
    data = data[:cut % (len(data) + 1)]
    path.write_bytes(bytes(data))
    if not flips:
        whole = data.count(b"\n")              # and the next record too if only its newline is missing
        assert jsonl.read(path, check, lambda line: None) in (RECORDS[:whole], RECORDS[:whole + 1])
        return
    for at, byte in flips:
        if data:
            data[at % len(data)] = byte
    path.write_bytes(bytes(data))
    try:
        jsonl.read(path, check, lambda line: None)
    except ValueError as e:
        assert str(e).startswith(f"{path} line ")


# ---- a search restarted on a torn trials.jsonl -------------------------------------------------
def test_a_search_restarted_on_a_torn_trials_file_reruns_that_trial(tmp_path):
    npz = write_npz(tmp_path / "blobs.npz")
    argv = ["search", "--dataset", npz, "--out", tmp_path / "s", "--coarse", 2, "--fine", 0, *TINY]
    code, first, err = cli(argv)
    assert code == 0, err
    path = tmp_path / "s" / "trials.jsonl"
    whole = path.read_text()
    path.write_text(whole[:-20])
    code, again, err = cli(argv)
    assert code == 0 and again == first, err
    assert err.startswith(f"warning: {path} line 2 is cut short")
    assert [line.split("]")[0] for line in err.splitlines() if line.startswith("[")] == ["[coarse 2/2"]
    def scores(text):
        return sorted((r["key"], r["val_accuracy"], r["lam"]) for r in map(json.loads, text.splitlines()))
    assert scores(path.read_text()) == scores(whole)
    lines = whole.splitlines()
    path.write_text(lines[1] + "\n" + lines[0][:-5] + "\n")     # damage that a crash cannot leave
    code, _, err = cli(argv)
    assert code == 2 and len(err.splitlines()) == 1 and f"{path} line 2 is not a readable record" in err


@pytest.mark.parametrize("metrics", [b"{", b"[1]", b'{"config": 3}', b"[" * 100000])
def test_a_damaged_metrics_file_of_a_finished_run_is_named(tmp_path, metrics):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "model.npz").write_bytes(b"")
    (folder / "metrics.json").write_bytes(metrics)
    with pytest.raises(ValueError, match=f"^{folder / 'metrics.json'} is not the metrics of a finished run .*"
                                         f"remove {folder} to train that run again"):
        run_or_reuse(tiny_config(out=str(folder)), None)
