"""`fastmlp search --dask-scheduler`: the same search on a Dask LocalCluster (two worker processes
of one thread each, on 127.0.0.1, started here) gives exactly the local pool's results, the final
run included; the workers load the data themselves and write the run folders."""
import json
import logging
import os

import pytest

from test_studies_search import cli
from train_helpers import write_npz

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed: "
                                                        "pip install \"fastmlp[dask]\" to run the Dask tests")

ARGS = ["--coarse", 2, "--fine", 1, "--repeats", 2, "--l-min", -4, "--l-max", -1, "--eta-max-range", -1.5, -0.5,
        "--sizes-choices", "auto-8-auto,auto-6-6-auto", "--ns", 6, "--cycles", 1, "--batch", 40,
        "--train-eval", 0, "--n-val", 80, "--final", "--final-cycles", 2]
TIMELESS = ("seconds", "out", "worker")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster:
        yield cluster


def scores(records):
    """Records without what differs between two runs of the same search (times, folders, pids)."""
    return [{k: ([{c: v for c, v in run.items() if c not in TIMELESS} for run in value] if k == "runs" else value)
             for k, value in r.items() if k not in TIMELESS} for r in records]


def test_search_on_a_dask_cluster_equals_the_local_pool(cluster, tmp_path):
    npz = write_npz(tmp_path / "blobs.npz")
    code, local_out, err = cli(["search", "--dataset", npz, "--out", tmp_path / "local", *ARGS])
    assert code == 0, err
    code, dask_out, err = cli(["search", "--dataset", npz, "--out", tmp_path / "dask", *ARGS,
                               "--dask-scheduler", cluster.scheduler_address])
    assert code == 0, err
    local, remote = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "dask"))
    assert len(remote) == 3 and scores(remote) == scores(local)
    assert all("±" in line for line in dask_out.splitlines()[2:5])
    finals = [json.loads((tmp_path / d / "final" / "summary.json").read_text()) for d in ("local", "dask")]
    assert scores([finals[1]["summary"]]) == scores([finals[0]["summary"]])
    assert [r["test_accuracy"] for r in finals[1]["runs"]] == [r["test_accuracy"] for r in finals[0]["runs"]]
    # the cluster's worker processes ran the trials and wrote each run's folder
    with distributed.Client(cluster) as client:
        worker_pids = {str(pid) for pid in client.run(os.getpid).values()}
    assert {run["worker"].split(":")[1] for r in remote for run in r["runs"]} <= worker_pids
    for r in remote:
        for run in r["runs"]:
            assert (tmp_path / "dask" / "runs" / run["out"].split("/runs/")[1] / "model.npz").is_file()
    # resumable as the local search is: nothing reruns
    code, again, err = cli(["search", "--dataset", npz, "--out", tmp_path / "dask", *ARGS,
                            "--dask-scheduler", cluster.scheduler_address])
    assert code == 0 and again == dask_out and not [x for x in err.splitlines() if x.startswith("[")], err


def test_tpe_on_a_dask_cluster_shares_the_optuna_journal(cluster, tmp_path):
    """Each cluster worker opens OUT/optuna.journal, asks for its trial and tells its score there."""
    optuna = pytest.importorskip("optuna", reason="Optuna is not installed: pip install \"fastmlp[optuna]\"")
    from fastmlp.studies.search_tpe import STUDY, storage
    npz = write_npz(tmp_path / "blobs.npz")
    argv = ["search", "--dataset", npz, "--out", tmp_path / "tpe", "--sampler", "tpe", "--coarse", 2, "--fine", 2,
            *ARGS[10:-3], "--dask-scheduler", cluster.scheduler_address]
    code, stdout, err = cli(argv)
    assert code == 0, err
    records = json.loads((tmp_path / "tpe" / "results.json").read_text())
    trials = optuna.load_study(study_name=STUDY, storage=storage(tmp_path / "tpe")).get_trials()
    assert sorted(t.user_attrs["slot"] for t in trials) == [0, 1, 2, 3] and {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted(t.value for t in trials) == sorted(r["val_accuracy"] for r in records)
    with distributed.Client(cluster) as client:
        worker_pids = {str(pid) for pid in client.run(os.getpid).values()}
    assert {run["worker"].split(":")[1] for r in records for run in r["runs"]} <= worker_pids
