"""`fastmlp show`: a grid of a dataset's images with their class names and, given a model, its
predictions, the wrong ones framed and captioned in red."""
import numpy as np

from . import checkpoint, data
from .config import MAX_SEED, TrainConfig, _int
from .images import MAX_IMAGES, check_images, image_grid, value_range
from .run import resolve_dataset

PARTS = ("test", "train")


def add_flags(p):
    p.add_argument("--dataset", metavar="{cifar10,fashion-mnist,sample,PATH.npz}",
                   help="default: the model's dataset with --model, else CIFAR-10 if found, else sample")
    p.add_argument("--data-dir", metavar="DIR", help="folder searched first for the dataset")
    p.add_argument("--model", metavar="MODEL", help="a model.npz: caption each image with its prediction "
                   "and frame the wrong ones in red")
    p.add_argument("--part", choices=PARTS, default="test", help="draw test or training images "
                   "(default: %(default)s)")
    p.add_argument("--n", type=int, default=32, help=f"images, 1..{MAX_IMAGES} (default: %(default)s)")
    p.add_argument("--columns", type=int, default=8, help="images per row (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="picks the images at random; with --first, "
                   "unused (default: %(default)s)")
    p.add_argument("--first", action="store_true", help="draw the first N images instead of a random N")
    p.add_argument("--out", default="show.png", metavar="FILE.png", help="default: %(default)s")


def run(args, say):
    _int("--n", args.n, 1, MAX_IMAGES)
    _int("--columns", args.columns, 1, MAX_IMAGES)
    _int("--seed", args.seed, 0, MAX_SEED)
    if not str(args.out).strip() or not str(args.out).endswith(".png"):
        raise ValueError(f"--out must be the path of the .png file to write; got {args.out!r}.")
    model = checkpoint.load(args.model) if args.model else None
    dataset = args.dataset or (model.config.dataset if model is not None else None)
    dataset = resolve_dataset(TrainConfig(dataset=dataset, data_dir=args.data_dir).validate())[0]
    raw = data.load_raw(dataset, args.data_dir)
    check_images(raw.image_shape, raw.source)
    x, y = (raw.x_test, raw.y_test) if args.part == "test" else (raw.x_train, raw.y_train)
    if not len(x):
        raise ValueError(f"{raw.source} has no {args.part} rows; use --part "
                         f"{PARTS[1 - PARTS.index(args.part)]}.")
    n = min(args.n, len(x))
    pick = np.arange(n) if args.first else np.sort(np.random.default_rng(args.seed).choice(len(x), n, replace=False))
    names = raw.label_names
    captions = [names[k] for k in y[pick]]
    wrong, what = None, ""
    if model is not None:
        pred = _predict(model, x[pick], args.model)
        wrong = pred != y[pick]
        captions = [f"{names[p]}\n(true: {names[t]})" if p != t else f"{names[p]}\n"
                    for p, t in zip(pred, y[pick])]
        what = f"; {args.model} predicts {int((~wrong).sum())} of {n} right, wrong ones in red"
    title = f"{n} {args.part} images of {raw.name}" + (f": predictions of {args.model}" if model else "")
    image_grid(args.out, x[pick], raw.image_shape, captions, wrong, args.columns, title, value_range(x))
    say(f"Wrote {args.out}: {n} {args.part} images of {raw.source}{what}")
    return 0


def _predict(model, rows, path):
    net = model.net
    if rows.shape[1] != net.n_features:
        raise ValueError(f"{path} takes rows of {net.n_features} values; these images have {rows.shape[1]}. "
                         f"Give the --dataset the model was trained on.")
    if model.mean is None:
        raise ValueError(f"{path} has no stored mean/std to standardise the images with; it cannot be shown "
                         f"predicting raw images.")
    return net.predict(data.standardize(rows, model.mean, model.std, net.dtype))
