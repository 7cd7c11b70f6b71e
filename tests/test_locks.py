"""fastmlp.lock: a run, a study and a search each hold their folder for their whole life, so a
second fastmlp process on the same folder is refused at once (exit 2, one line naming the folder
and the holder's pid), and a holder killed with kill -9 leaves no lock behind.  The holders here
are real processes."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from fastmlp import lock
from fastmlp.lock import LOCK_FILE, FolderBusy
from fastmlp.run import train
from fastmlp.studies.search import SearchPlan, search
from test_cli import TINY, run
from train_helpers import tiny_config, write_npz

HOLD = ("import sys, time\nfrom fastmlp.lock import hold\nwith hold(sys.argv[1], 'fastmlp train'):\n"
        "    print('held', flush=True)\n    time.sleep(600)\n")


def fastmlp(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "fastmlp", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture
def held(tmp_path):
    """A folder whose lock another process holds; yields (folder, that process)."""
    folder = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        yield folder, holder
    finally:
        holder.kill()
        holder.wait()


def wait_for_lock(folder, process, deadline=300):
    """The lock file's owner record once `process` has taken the lock on `folder` (a killed
    holder's file stays, with its pid, until the next holder writes its own)."""
    stop = time.monotonic() + deadline
    while time.monotonic() < stop:
        assert process.poll() is None, process.communicate()
        try:
            owner = json.loads((folder / LOCK_FILE).read_text())
            if owner["pid"] == process.pid:
                return owner
        except (FileNotFoundError, ValueError):     # not there yet, or not written yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"{process.args} took no lock on {folder} within {deadline} s")


def refused(err, folder, pid):
    return (len(err.splitlines()) == 1 and err.startswith(f"fastmlp: error: {folder} is in use by another "
                                                          f"fastmlp process (pid {pid}: ") and "--out" in err)


@pytest.fixture
def npz(tmp_path):
    return write_npz(tmp_path / "blobs.npz")


def test_two_train_processes_on_one_folder_the_second_is_refused_and_kill_9_frees_it(tmp_path, npz):
    out = tmp_path / "R"
    first = fastmlp("train", "--dataset", npz, "--n-val", 80, "--out", out, *TINY[:-6], "--ns", 24,
                    "--cycles", 100000, "--train-eval", 0)      # trains until killed
    try:
        owner = wait_for_lock(out, first)
        assert owner["what"] == "fastmlp train"
        second = fastmlp("train", "--dataset", npz, "--n-val", 80, "--out", out, *TINY)
        stdout, err = second.communicate()
        assert second.returncode == 2 and stdout == "" and refused(err, out, first.pid), err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the kernel dropped the killed run's lock: its folder can be resumed (or started, if it was
    # killed before its first checkpoint), the stale lock file notwithstanding
    resume = ["--resume"] if (out / "checkpoint.npz").exists() else []
    again = fastmlp("train", "--dataset", npz, "--n-val", 80, "--out", out, *TINY[:-6], "--ns", 24,
                    "--cycles", 100000, "--train-eval", 0, *resume)
    try:
        wait_for_lock(out, again)
    finally:
        again.kill()
        again.wait()


@pytest.mark.parametrize("command", [
    ["train", *TINY], ["train", "--repeats", 2, *TINY], ["train", "--resume", *TINY],
    ["study", "init", "--sigmas", 0.1, *TINY], ["search", "--coarse", 1, "--fine", 0, *TINY],
])
def test_every_command_that_writes_a_folder_is_refused_while_another_holds_it(held, npz, capsys, command):
    folder, holder = held
    code, stdout, err = run([*command[:command.index(TINY[0])], "--dataset", npz, "--n-val", 80,
                             "--out", folder, *TINY], capsys)
    assert code == 2 and stdout == "" and refused(err, folder, holder.pid), err
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]      # nothing written


def test_the_python_api_takes_the_same_lock(held, npz):
    folder, holder = held
    with pytest.raises(FolderBusy, match=f"pid {holder.pid}: fastmlp train"):
        train(tiny_config(dataset=str(npz), n_val=80, out=str(folder)))
    with pytest.raises(FolderBusy, match=f"{folder} is in use by another fastmlp process"):
        search(tiny_config(dataset=str(npz), n_val=80), folder, SearchPlan(coarse=1, fine=0))
    assert not (folder / "search.json").exists()


def test_a_run_leaves_no_lock_file_and_no_empty_folder(tmp_path, npz, capsys):
    code, _, err = run(["train", "--dataset", npz, "--n-val", 80, "--out", tmp_path / "run", *TINY], capsys)
    assert code == 0, err
    assert LOCK_FILE not in os.listdir(tmp_path / "run") and "model.npz" in os.listdir(tmp_path / "run")
    code, _, err = run(["train", "--dataset", tmp_path / "missing.npz", "--out", tmp_path / "new" / "bad"], capsys)
    assert code == 2 and not (tmp_path / "new").exists()         # the lock made both, and took them back


def test_the_lock_is_reentrant_in_its_thread_and_refuses_other_threads(tmp_path):
    folder = tmp_path / "f"
    with lock.hold(folder, "outer"):
        with lock.hold(folder, "inner"):         # a search holds OUT, and so does the code it calls
            assert (folder / LOCK_FILE).exists()
        errors = []

        def other():
            try:
                with lock.hold(folder):
                    pass
            except FolderBusy as e:
                errors.append(str(e))
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert len(errors) == 1 and f"another thread of this process (pid {os.getpid()})" in errors[0]
        assert (folder / LOCK_FILE).exists()      # the inner release kept the outer lock
    assert not folder.exists()                   # made by the lock, nothing written: removed
    with lock.hold(folder):                      # free again
        pass


def test_a_lock_file_a_finished_holder_removed_is_not_trusted(tmp_path, monkeypatch):
    """A holder removes the file just before unlocking; whoever locked the removed file in between
    must notice and lock the new file, or two processes would both think they hold the folder."""
    folder = tmp_path / "f"
    folder.mkdir()
    real_lock, calls = lock._lock, []

    def lock_after_the_holder_finished(fd):
        real_lock(fd)
        if not calls:                             # the first file we locked is removed under us
            os.unlink(folder / LOCK_FILE)
        calls.append(fd)
    monkeypatch.setattr(lock, "_lock", lock_after_the_holder_finished)
    with lock.hold(folder, "me"):
        assert len(calls) == 2 and json.loads((folder / LOCK_FILE).read_text())["what"] == "me"
