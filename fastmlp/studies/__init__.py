"""Experiments built on the trainer: the gradient-check report (gradtable.py) and the study grids
init, depth and eta (designs.py), run by trials.py, and the random search for lam (search.py).  Each study builds TrainConfigs and calls
fastmlp.run.train; nothing here has a training loop of its own."""
