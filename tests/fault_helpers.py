"""Worker tasks for tests/test_search_faults.py, importable by spawned worker processes."""
import os
import signal
from pathlib import Path


def die_in(config, merge_val=False):
    """A stand-in for executors.train_one: kill this worker process (kill -9) while running the
    job whose folder is config.out, on each of its first config.deaths attempts (counted in
    files beside it); otherwise return a run record naming the job."""
    folder = Path(config.out)
    folder.mkdir(parents=True, exist_ok=True)
    attempts = len(list(folder.glob("attempt-*")))
    (folder / f"attempt-{attempts + 1}").touch()
    if attempts < config.deaths:
        os.kill(os.getpid(), signal.SIGKILL)
    return {"out": config.out, "attempts": attempts + 1}
