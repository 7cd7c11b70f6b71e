"""Augmentation on the fly: what to do (`Augment`, and its CLI spec), and doing it to a batch of
standardised rows (`Augmenter`, over kernels/augment.py).

A spec is a comma-separated list, e.g. "flip,translate=2,blur,jitter" or
"flip=0.3,translate=4:edge,blur=0.5:0.3-1.0,brightness=0.1,contrast=0.2":

  flip[=P]                 horizontal flip with probability P (bare: 0.5)
  translate[=K][:edge]     shift by up to K pixels along each axis (bare: 2); the uncovered
                           border is black (zero padding) or repeats the edge (":edge")
  blur[=P][:LO-HI]         Gaussian blur with probability P (bare: 0.5), sigma ~ U(LO, HI)
                           pixels (default 0.3-1.0; LO may be 0: blur=0.5:0-0.5)
  brightness=B             add U(-B, B) of the value range
  contrast=C               scale deviations from the image's mean by 1 + U(-C, C)
  jitter[=B:C]             brightness and contrast together (bare: 0.1 and 0.2)
  none (or empty)          nothing

Draws are counter-based (kernels/rng.py): a batch's augmentation is a pure function of its
key, so it is the same with 1 or 2 threads and can be rebuilt on resume.
"""
import math
import numbers
from dataclasses import dataclass

import numpy as np

from .kernels import augment as _k
from .kernels.rng import stream_key
from .kernels.tasks import gather

PADS = ("zero", "edge")
SIGMA_LIMIT = 10.0                  # pixels; a window of +-3 sigma past this is no longer "small"
# The kernel divides by sigma, so a range that starts at 0 (blur=0.5:0-0.5, "sometimes barely
# blurred") reaches it from this floor: a Gaussian of 0.001 px puts exp(-5e5) = 0 on the neighbours,
# the identity exactly, as sigma = 0 means; the draws move by at most 0.001 px.
SIGMA_FLOOR = 1e-3
STREAM = 0x61756720                 # stream number of augmentation draws in stream_key ("aug ")
DEFAULT_FLIP, DEFAULT_TRANSLATE, DEFAULT_BLUR = 0.5, 2, 0.5
DEFAULT_SIGMA = (0.3, 1.0)
DEFAULT_JITTER = (0.1, 0.2)         # brightness, contrast


@dataclass(frozen=True)
class Augment:
    """What augmentation to apply; every field at its default means none."""

    flip: float = 0.0                   # probability of a horizontal flip, in [0, 1]
    translate: int = 0                  # largest shift in pixels along each axis, >= 0
    pad: str = "zero"                   # translated-in pixels: "zero" (black) or "edge" (repeat border)
    blur: float = 0.0                   # probability of a Gaussian blur, in [0, 1]
    blur_sigma: tuple = DEFAULT_SIGMA   # (lo, hi): sigma ~ U(lo, hi) pixels, 0 <= lo <= hi <= 10
    brightness: float = 0.0             # add U(-b, b) * value range, b in [0, 1]
    contrast: float = 0.0               # deviations from the image mean times 1 + U(-c, c), c in [0, 1]

    def __post_init__(self):
        for name in ("flip", "blur", "brightness", "contrast"):
            _check_unit(getattr(self, name), name)
            object.__setattr__(self, name, float(getattr(self, name)))
        t = self.translate
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"augment translate must be an integer number of pixels >= 0; got {t!r}. "
                             f"Use e.g. translate=2.")
        object.__setattr__(self, "translate", int(t))
        if self.pad not in PADS:
            raise ValueError(f"augment pad must be 'zero' or 'edge'; got {self.pad!r}. "
                             f"Use translate=K for zero padding or translate=K:edge.")
        try:
            lo, hi = (float(v) for v in self.blur_sigma)
        except (TypeError, ValueError):
            raise ValueError(f"augment blur_sigma must be a pair (lo, hi) of numbers; got "
                             f"{self.blur_sigma!r}. Use e.g. blur_sigma=(0.3, 1.0).") from None
        if not (0 <= lo <= hi <= SIGMA_LIMIT):
            raise ValueError(f"augment blur_sigma must satisfy 0 <= lo <= hi <= {SIGMA_LIMIT:g} pixels; "
                             f"got {self.blur_sigma!r}. Use e.g. blur=0.5:0.3-1.0 or blur=0.5:0-0.5.")
        object.__setattr__(self, "blur_sigma", (lo, hi))

    @property
    def enabled(self):
        """True when some transform can change a pixel."""
        return bool(self.flip or self.translate or self.blur or self.brightness or self.contrast)

    def spec(self):
        """The canonical spec string: parse_augment(a.spec()) == a for any a with its pad and
        blur_sigma at their defaults when translate / blur are off."""
        parts = []
        if self.flip:
            parts.append(f"flip={_num(self.flip)}")
        if self.translate:
            parts.append(f"translate={self.translate}" + (":edge" if self.pad == "edge" else ""))
        if self.blur:
            lo, hi = self.blur_sigma
            parts.append(f"blur={_num(self.blur)}:{_num(lo)}-{_num(hi)}")
        if self.brightness:
            parts.append(f"brightness={_num(self.brightness)}")
        if self.contrast:
            parts.append(f"contrast={_num(self.contrast)}")
        return ",".join(parts) or "none"

    def params(self, value_range=255.0):
        """The kernel's params array (kernels/augment.py N_PARAMS float64)."""
        p = np.zeros(_k.N_PARAMS)
        p[_k.FLIP_P] = self.flip
        p[_k.SHIFT_MAX] = self.translate
        p[_k.PAD_EDGE] = 1.0 if self.pad == "edge" else 0.0
        p[_k.BLUR_P] = self.blur
        p[_k.SIGMA_MIN], p[_k.SIGMA_MAX] = (max(v, SIGMA_FLOOR) for v in self.blur_sigma)
        p[_k.BRIGHTNESS] = self.brightness
        p[_k.CONTRAST] = self.contrast
        p[_k.VALUE_RANGE] = value_range
        return p


def _num(x):
    """A float as short as it round-trips: 0.5, 1, 0.1."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def _check_unit(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"augment {name} must be a number in [0, 1]; got {value!r}.")


_KEYS = ("flip", "translate", "blur", "brightness", "contrast", "jitter", "none")


def parse_augment(text):
    """An Augment from a CLI spec (see the module docstring); ValueError naming the part that is
    wrong otherwise.  An Augment passes through unchanged; None and "" mean none."""
    if isinstance(text, Augment):
        return text
    if text is None:
        return Augment()
    if not isinstance(text, str):
        raise ValueError(f"augment must be a spec string such as 'flip,translate=2'; got {text!r}.")
    kw, seen = {}, set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            if text.strip():
                raise ValueError(f"augment spec {text!r} has an empty item; separate items by single "
                                 f"commas, e.g. 'flip,translate=2'.")
            continue
        key, _, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if key not in _KEYS:
            raise ValueError(f"augment spec {text!r}: unknown item {key!r}; use {', '.join(_KEYS)}.")
        if key in seen or (key in ("brightness", "contrast") and "jitter" in seen) \
                or (key == "jitter" and seen & {"brightness", "contrast"}):
            raise ValueError(f"augment spec {text!r} sets {key!r} twice; give each transform once.")
        seen.add(key)
        bad = f"augment spec {text!r}: bad value in {part!r}"
        if key == "none":
            if value:
                raise ValueError(f"{bad}: 'none' takes no value.")
        elif key == "flip":
            kw["flip"] = _number(value, DEFAULT_FLIP, bad, "a probability, e.g. flip=0.5")
        elif key == "translate":
            amount, _, pad = value.partition(":")
            amount = amount.strip()
            if pad.strip() not in ("", "edge", "zero"):
                raise ValueError(f"{bad}: the padding after ':' must be 'edge' or 'zero'; got {pad!r}.")
            if not amount:
                kw["translate"] = DEFAULT_TRANSLATE
            elif amount.isdigit():
                kw["translate"] = int(amount)
            else:
                raise ValueError(f"{bad}: translate takes a whole number of pixels, e.g. translate=2 "
                                 f"or translate=4:edge.")
            kw["pad"] = pad.strip() or "zero"
        elif key == "blur":
            prob, _, sigma = value.partition(":")
            kw["blur"] = _number(prob.strip(), DEFAULT_BLUR, bad, "a probability, e.g. blur=0.5")
            if sigma.strip():
                lo, dash, hi = sigma.partition("-")
                if not dash:
                    raise ValueError(f"{bad}: give the sigma range as LO-HI pixels, e.g. blur=0.5:0.3-1.0.")
                kw["blur_sigma"] = (_number(lo, None, bad, "sigma LO-HI, e.g. 0.3-1.0"),
                                    _number(hi, None, bad, "sigma LO-HI, e.g. 0.3-1.0"))
        elif key == "jitter":
            b, colon, c = value.partition(":")
            if value and not colon:
                raise ValueError(f"{bad}: jitter takes BRIGHTNESS:CONTRAST, e.g. jitter=0.1:0.2.")
            kw["brightness"] = _number(b, DEFAULT_JITTER[0], bad, "jitter=BRIGHTNESS:CONTRAST")
            kw["contrast"] = _number(c, DEFAULT_JITTER[1], bad, "jitter=BRIGHTNESS:CONTRAST")
        else:                            # brightness, contrast
            if not value:
                raise ValueError(f"{bad}: {key} needs a value, e.g. {key}=0.1.")
            kw[key] = _number(value, None, bad, f"e.g. {key}=0.1")
    if "none" in seen and len(seen) > 1:
        raise ValueError(f"augment spec {text!r} combines 'none' with transforms; give one or the other.")
    return Augment(**kw)


def _number(text, default, bad, hint):
    text = text.strip()
    if not text and default is not None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{bad}: expected a number ({hint}); got {text!r}.") from None
    if not math.isfinite(value):
        raise ValueError(f"{bad}: expected a finite number ({hint}); got {text!r}.")
    return value


def batch_key(seed, step):
    """The key (np.uint64) of training step `step`'s augmentation draws in a run seeded `seed`."""
    return np.uint64(stream_key(seed, step, STREAM))


class Augmenter:
    """Applies an Augment to batches of standardised rows of one dataset.

    augment: an Augment or a spec string; image_shape: (C, H, W) (or (H, W)) of a row's layout;
    mean, std (D,): the per-feature statistics the rows were standardised with; value_range: the
    raw pixel range (255 for 8-bit images), for brightness and clipping."""

    def __init__(self, augment, image_shape, mean, std, value_range=255.0):
        self.augment = parse_augment(augment)
        shape = tuple(int(s) for s in np.atleast_1d(image_shape))
        if len(shape) == 2:
            shape = (1,) + shape
        D = int(np.prod(shape)) if shape else 0
        if self.augment.enabled and (len(shape) != 3 or min(shape) < 1):
            raise ValueError(f"augmentation needs images, image_shape (C, H, W); got {tuple(image_shape)!r}. "
                             f"Plain feature rows cannot be flipped or shifted: use augment='none'.")
        t = self.augment.translate
        if len(shape) == 3 and t >= min(shape[1], shape[2]):
            raise ValueError(f"augment translate must be smaller than the image ({shape[1]}x{shape[2]}); "
                             f"got {t}. Use a shift of a few pixels, e.g. translate=2.")
        mean = np.ascontiguousarray(mean, dtype=np.float64)
        std = np.ascontiguousarray(std, dtype=np.float64)
        if mean.shape != (D,) or std.shape != (D,):
            raise ValueError(f"mean and std must have shape ({D},) for image_shape {shape}; got "
                             f"{mean.shape} and {std.shape}. Pass the training split's Splits.mean/.std.")
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            bad = int(np.argmin(np.where(np.isfinite(std), std, -np.inf)))
            bad_mean = int(np.argmin(np.isfinite(mean))) if not np.isfinite(mean).all() else None
            raise ValueError(f"std must be finite and > 0 and mean finite for every feature; got "
                             f"std[{bad}] = {std[bad]!r}" + (f", mean[{bad_mean}] = {mean[bad_mean]!r}"
                                                             if bad_mean is not None else "")
                             + "; use fastmlp.data.feature_stats, which sets the std of a constant "
                               "feature to 1.")
        if not (isinstance(value_range, numbers.Real) and math.isfinite(value_range) and value_range > 0):
            raise ValueError(f"value_range must be a finite number > 0 (255 for 8-bit images); "
                             f"got {value_range!r}.")
        self.image_shape = shape
        self.mean, self.std = mean, std
        self.value_range = float(value_range)
        self.params = self.augment.params(self.value_range)
        # statistics constant over each plane (per-channel standardisation): moves are copies
        if len(shape) == 3 and D:
            planes = shape[0]
            self.params[_k.PER_PLANE] = float(all(
                (m == m[0]).all() and (sd == sd[0]).all()
                for m, sd in zip(np.split(mean, planes), np.split(std, planes))))
        self.shape = np.array(shape if len(shape) == 3 else (1, 1, D), np.int64)

    @property
    def enabled(self):
        return self.augment.enabled

    def apply(self, out, X, rows, key, threads=1):
        """out (N, D) <- augmented X[rows]: X (M, D) standardised rows, rows (N,) int64 row
        numbers, key a uint64 (batch_key(seed, step)); out and X C-contiguous, of one float
        dtype.  threads > 1 runs the parallel kernel on Numba's pool, else its serial twin.
        Without any transform it is a plain gather."""
        D = self.mean.shape[0]
        for name, a in (("out", out), ("X", X)):
            if not (isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[1] == D
                    and a.dtype in (np.float32, np.float64) and a.flags.c_contiguous):
                raise ValueError(f"{name} must be a C-contiguous float32 or float64 array (rows, {D}); "
                                 f"got {getattr(a, 'dtype', type(a))} {getattr(a, 'shape', '')}.")
        if out.dtype != X.dtype:
            raise ValueError(f"out and X must share a dtype; got {out.dtype} and {X.dtype}.")
        if not (isinstance(rows, np.ndarray) and rows.dtype == np.int64 and rows.shape == (len(out),)):
            raise ValueError(f"rows must be an int64 array of shape ({len(out)},), one row number per "
                             f"output row; got {getattr(rows, 'dtype', type(rows))} {getattr(rows, 'shape', '')}.")
        if len(rows) and not (0 <= rows.min() and rows.max() < len(X)):
            raise ValueError(f"rows must be row numbers of X, in [0, {len(X)}); got values from "
                             f"{rows.min()} to {rows.max()}.")
        return self.apply_trusted(out, X, rows, key, threads)

    def apply_trusted(self, out, X, rows, key, threads=1):
        """apply without its checks, for a training loop whose arrays were checked once (the
        checks' reductions over the row numbers cost ~7 us a step)."""
        if not self.enabled:
            gather(out, X, rows)       # the step's own gather (gemm's GATHER task)
            return out
        kernel = _k.augment_rows if threads > 1 else _k.augment_rows_s
        kernel(out, X, rows, self.mean, self.std, self.shape, self.params, np.uint64(key))
        return out


def augment_images(images, augment, image_shape=None, seed=0, step=0, value_range=255.0, threads=1):
    """Augmented copies of raw images (N, C, H, W) or rows (N, D) (then image_shape is needed),
    as float64 of the same shape, in raw units; image n gets draw set n of key
    batch_key(seed, step).  For looking at what an Augment does."""
    images = np.asarray(images)
    if images.dtype.kind not in "uif":
        raise ValueError(f"images must hold numbers; got dtype {images.dtype}.")
    if images.ndim == 4:
        image_shape = images.shape[1:] if image_shape is None else image_shape
    elif images.ndim != 2 or image_shape is None:
        raise ValueError(f"images must be (N, C, H, W), or rows (N, D) with image_shape=(C, H, W); "
                         f"got shape {images.shape} and image_shape {image_shape!r}.")
    rows = np.ascontiguousarray(images.reshape(len(images), -1), dtype=np.float64)
    D = rows.shape[1]
    aug = Augmenter(augment, image_shape, np.zeros(D), np.ones(D), value_range)
    if int(np.prod(aug.image_shape)) != D:
        raise ValueError(f"image_shape {aug.image_shape} holds {int(np.prod(aug.image_shape))} values "
                         f"but the images have {D}.")
    out = np.empty_like(rows)
    aug.apply(out, rows, np.arange(len(rows), dtype=np.int64), batch_key(seed, step), threads)
    return out.reshape(images.shape)
