"""On-the-fly augmentation of a batch of standardised image rows: flip, translation, Gaussian
blur, brightness/contrast jitter.

Dimensions: N batch rows, M rows of the training set, D = C*H*W features per row; a row holds an
image's C channel planes one after another, each row-major H x W (CIFAR-10: 3 x 32 x 32,
Fashion-MNIST: 1 x 28 x 28).

Why the kernel undoes the standardisation: the transforms are defined on raw pixels (black is
raw 0, brightness is a fraction of the value range), and mean/std are per feature, so a pixel
that moves from feature p to feature q must be re-standardised with q's statistics:
out[q] = (raw - mean[q]) * (1 / std[q]), in float64, rounded once into `out`.  The reciprocal
(taken once per call) instead of a division: Numba's `/` tests every divisor for zero, which
kept the loop scalar (4x slower, measured), and even vectorised (np.divide) the division left
in the scalar remainders of short rows made a flip+translate batch ~2x slower; the product is
within 1 ulp (float64) of the quotient, so float32 results differ in rare last bits.  A pixel that no transform
touches (its row was only flipped/shifted and the pixel's source is itself) is copied from X as
is, so an all-off augmentation is an exact gather.

Random numbers: draw j of output row n is uniform(key, n * DRAWS + j) (kernels/rng.py), so a
row's transform depends only on (key, n), never on the thread that ran it.  Inner loops index
with unsigned integers: Numba wraps negative signed indices, and that test kept them scalar.
"""
import math

import numpy as np
from numba import prange

from ._config import parallel_kernel, serial_kernel, serial_twin
from .rng import uniform

# params[k]; kept in one float64 array so that the kernel signature stays short
FLIP_P, SHIFT_MAX, PAD_EDGE, BLUR_P, SIGMA_MIN, SIGMA_MAX, BRIGHTNESS, CONTRAST, VALUE_RANGE, \
    PER_PLANE = range(10)
N_PARAMS = 10
# draw j of row n is uniform(key, n * DRAWS + j); 7 are used, one is spare
DRAWS = 8
U_FLIP, U_DY, U_DX, U_BLUR, U_SIGMA, U_BRIGHTNESS, U_CONTRAST = range(7)


@serial_kernel
def shift_draw(u, s):
    """A uniform integer in [-s, s] from u in [0, 1)."""
    return min(int(math.floor(u * (2 * s + 1))), 2 * s) - s


@serial_kernel
def blur_radius(sigma):
    """Half-width of the Gaussian window: +-3 sigma holds 99.7 % of its mass."""
    return int(math.ceil(3.0 * sigma))


@parallel_kernel
def augment_rows(out, X, rows, mean, std, shape, params, key):
    """out (N, D) <- augmented X[rows]; X (M, D) standardised rows, rows (N,) int64, mean and
    std (D,) float64, shape (3,) int64 = C, H, W, params (N_PARAMS,) float64, key uint64.

    Per row, on raw = X*std + mean: flip with probability FLIP_P; shift by (dy, dx) uniform in
    [-SHIFT_MAX, SHIFT_MAX] (zero or edge padding); with probability BLUR_P a separable Gaussian
    blur, sigma ~ U(SIGMA_MIN, SIGMA_MAX), borders clamped; add U(-b, b) * VALUE_RANGE; scale
    deviations from the image mean by 1 + U(-c, c); clip to [0, VALUE_RANGE] when b or c > 0;
    re-standardise.  A parameter at 0 skips its transform and its work.  PER_PLANE != 0 says
    mean and std are constant over each channel plane (per-channel standardisation): a moved
    pixel then keeps its standardised value, and flips and shifts are copies.

    prange over rows: each writes only its own row of out.  Rows that only move pixels are
    written straight into out; blur and jitter work on a per-row float64 scratch (2D + window)
    allocated once per row: ~40 ns (measured), against ~17 us for blurring a CIFAR image."""
    N, D = out.shape
    C, H, W = shape[0], shape[1], shape[2]
    flip_p = params[FLIP_P]
    s = int(params[SHIFT_MAX])
    edge = params[PAD_EDGE] != 0.0
    blur_p = params[BLUR_P]
    sigma_lo, sigma_hi = params[SIGMA_MIN], params[SIGMA_MAX]
    brightness, contrast = params[BRIGHTNESS], params[CONTRAST]
    value_range = params[VALUE_RANGE]
    jitter = brightness > 0.0 or contrast > 0.0
    window = 2 * blur_radius(sigma_hi) + 1 if blur_p > 0.0 else 0
    per_plane = params[PER_PLANE] != 0.0
    any_move = flip_p > 0.0 or s > 0 or blur_p > 0.0 or jitter
    inv_std = _reciprocal(std) if any_move else std
    for n in prange(N):
        i0 = n * DRAWS
        flip = flip_p > 0.0 and uniform(key, i0 + U_FLIP) < flip_p
        dy = shift_draw(uniform(key, i0 + U_DY), s) if s > 0 else 0
        dx = shift_draw(uniform(key, i0 + U_DX), s) if s > 0 else 0
        blur = blur_p > 0.0 and uniform(key, i0 + U_BLUR) < blur_p
        x = X[rows[n]]
        o = out[n]
        if not (blur or jitter):
            if (flip or dy != 0 or dx != 0) and per_plane:
                _move_copy(o, x, mean, inv_std, C, H, W, flip, dy, dx, edge)
            elif flip or dy != 0 or dx != 0:
                _move_standardised(o, x, mean, std, inv_std, C, H, W, flip, dy, dx, edge)
            else:
                for q in range(D):
                    o[q] = x[q]
        else:
            scratch = np.empty(2 * D + window)
            img = scratch[:D]
            _move_raw(img, x, mean, std, C, H, W, flip, dy, dx, edge)
            if blur:
                sigma = sigma_lo + uniform(key, i0 + U_SIGMA) * (sigma_hi - sigma_lo)
                _blur(img, scratch[D:2 * D], scratch[2 * D:], sigma, C, H, W)
            if jitter:
                b = (2.0 * uniform(key, i0 + U_BRIGHTNESS) - 1.0) * brightness * value_range
                f = 1.0 + (2.0 * uniform(key, i0 + U_CONTRAST) - 1.0) * contrast
                _jitter(img, b, f, brightness > 0.0, contrast > 0.0, value_range)
            for q in range(D):
                o[q] = (img[q] - mean[q]) * inv_std[q]
    return


augment_rows_s = serial_twin(augment_rows)


@serial_kernel
def _reciprocal(a):
    """1 / a (D,) as a new float64 array (np.divide: no zero test, so it vectorises)."""
    r = np.empty(a.shape[0])
    for i in range(a.shape[0]):
        r[i] = np.divide(1.0, a[i])
    return r


@serial_kernel
def _move_standardised(o, x, mean, std, inv_std, C, H, W, flip, dy, dx, edge):
    """o (D,) <- standardised x (D,) flipped, then shifted by (dy, dx); a pixel whose source is
    itself is copied.  Output row y reads input row y - dy.

    How it is fast: without a flip, output q reads input q + d with one d for every row whose
    source row is inside the image, so those rows are one long loop per plane; with a flip each
    row is its own loop.  Both loops run over whole rows, the pad columns included (rewritten
    afterwards), and index with unsigned integers (Numba wraps negative signed indices, and
    that test kept loops scalar).  Everything is written out in this one function: calling a
    helper kernel per row or per pixel cost more than the pixels (measured ~20 ns a call)."""
    D = o.shape[0]
    HW = H * W
    lo = min(max(dx, 0), W)             # output columns [lo, hi) read inside the image
    hi = max(min(W + dx, W), lo)
    y_lo = min(max(dy, 0), H)           # output rows [y_lo, y_hi) read inside the image
    y_hi = max(min(H + dy, H), y_lo)
    for c in range(C):
        if not flip:                    # rows y_lo..y_hi: output q reads input q + d
            d = -(dy * W + dx)
            for q in range(max(c * HW + y_lo * W, -d), min(c * HW + y_hi * W, D - d)):
                u = np.uint64(q)
                p = np.uint64(q + d)
                o[u] = (x[p] * std[p] + mean[p] - mean[u]) * inv_std[u]
        for y in range(H):
            q0 = c * HW + y * W
            inside = y_lo <= y < y_hi
            if not inside and not edge:
                for q in range(q0, q0 + W):
                    u = np.uint64(q)
                    o[u] = (0.0 - mean[u]) * inv_std[u]
                continue
            p0 = c * HW + min(max(y - dy, 0), H - 1) * W
            if flip:                    # output q reads input pq - q
                pq = p0 + W - 1 + dx + q0
                for q in range(max(q0, pq - D + 1), min(q0 + W, pq + 1)):
                    u = np.uint64(q)
                    p = np.uint64(pq - q)
                    v = (x[p] * std[p] + mean[p] - mean[u]) * inv_std[u]
                    o[u] = x[u] if p == u else v
            elif not inside:            # an edge-padded row: output q reads input q + d
                d = p0 - q0 - dx
                for q in range(max(q0, -d), min(q0 + W, D - d)):
                    u = np.uint64(q)
                    p = np.uint64(q + d)
                    o[u] = x[u] if p == u else (x[p] * std[p] + mean[p] - mean[u]) * inv_std[u]
            if lo == 0 and hi == W:
                continue
            # the pad columns: zero padding is raw 0; edge padding repeats the border column
            # that the shift uncovered (copied where that is the pixel itself)
            if not edge:
                for q in range(q0, q0 + lo):
                    o[q] = (0.0 - mean[q]) * inv_std[q]
                for q in range(q0 + hi, q0 + W):
                    o[q] = (0.0 - mean[q]) * inv_std[q]
                continue
            p = p0 + W - 1 if flip else p0
            raw = x[p] * std[p] + mean[p]
            for q in range(q0, q0 + lo):
                o[q] = x[q] if p == q else (raw - mean[q]) * inv_std[q]
            p = p0 if flip else p0 + W - 1
            raw = x[p] * std[p] + mean[p]
            for q in range(q0 + hi, q0 + W):
                o[q] = x[q] if p == q else (raw - mean[q]) * inv_std[q]


@serial_kernel
def _move_copy(o, x, mean, inv_std, C, H, W, flip, dy, dx, edge):
    """_move_standardised for statistics constant over each plane: a moved pixel keeps its
    standardised value, so each output row is a copy of (part of) one input row, and a zero pad
    is the plane's standardised raw 0.  Output row y reads input row y - dy, output column j
    input column j - dx (flipped: W - 1 - (j - dx)); pads as in _move_raw.  Indices are unsigned
    (no wraparound test, so the copies vectorise) and no slice is taken per row (a slice view
    costs more than copying a 32-pixel row)."""
    HW = H * W
    lo = min(max(dx, 0), W)             # output columns [lo, hi) read inside the image
    hi = max(min(W + dx, W), lo)
    for c in range(C):
        zero = (0.0 - mean[c * HW]) * inv_std[c * HW]
        for y in range(H):
            q0 = c * HW + y * W
            sy = y - dy
            if (sy < 0 or sy >= H) and not edge:
                for q in range(q0, q0 + W):
                    o[np.uint64(q)] = zero
                continue
            p0 = c * HW + min(max(sy, 0), H - 1) * W
            if flip:                    # output q reads input pq - q
                pq = p0 + W - 1 + dx + q0
                for q in range(q0 + lo, q0 + hi):
                    o[np.uint64(q)] = x[np.uint64(pq - q)]
            else:                       # output q reads input q + d
                d = p0 - q0 - dx
                for q in range(q0 + lo, q0 + hi):
                    o[np.uint64(q)] = x[np.uint64(q + d)]
            if lo == 0 and hi == W:
                continue
            left = (x[p0 + W - 1] if flip else x[p0]) if edge else zero
            right = (x[p0] if flip else x[p0 + W - 1]) if edge else zero
            for q in range(q0, q0 + lo):
                o[np.uint64(q)] = left
            for q in range(q0 + hi, q0 + W):
                o[np.uint64(q)] = right


@serial_kernel
def _move_raw(img, x, mean, std, C, H, W, flip, dy, dx, edge):
    """img (D,) float64 <- raw x (D,) flipped, then shifted by (dy, dx)."""
    for c in range(C):
        for y in range(H):
            q0 = (c * H + y) * W
            sy = y - dy
            if (sy < 0 or sy >= H) and not edge:
                for q in range(q0, q0 + W):
                    img[q] = 0.0
                continue
            p0 = (c * H + min(max(sy, 0), H - 1)) * W
            for xo in range(W):
                sx = xo - dx
                if sx < 0 or sx >= W:
                    if not edge:
                        img[q0 + xo] = 0.0
                        continue
                    sx = min(max(sx, 0), W - 1)
                p = p0 + (W - 1 - sx if flip else sx)
                img[q0 + xo] = x[p] * std[p] + mean[p]


@serial_kernel
def _blur(img, tmp, w, sigma, C, H, W):
    """Separable Gaussian blur of img (D,) in place: along rows into tmp (D,), then along
    columns back into img; w (>= 2r+1,) takes the weights.  A read past a border takes the
    border pixel.  Each output sums its 2r+1 terms in window order, with the window loop outside
    and the pixel loop inside, so that the inner loop is a contiguous axpy."""
    r = blur_radius(sigma)
    total = 0.0
    for k in range(2 * r + 1):
        w[k] = math.exp(-0.5 * ((k - r) / sigma) ** 2)
        total += w[k]
    for k in range(2 * r + 1):
        w[k] /= total
    for c in range(C):
        for y in range(H):
            q0 = (c * H + y) * W
            for q in range(q0, q0 + W):
                tmp[q] = 0.0
            for k in range(2 * r + 1):
                off = k - r
                wk = w[k]
                lo = min(max(-off, 0), W)       # columns [lo, hi) read inside the row
                hi = max(min(W - off, W), lo)
                for q in range(q0, q0 + lo):
                    tmp[q] += wk * img[q0]
                for q in range(q0 + lo, q0 + hi):
                    u = np.uint64(q)
                    tmp[u] += wk * img[np.uint64(q + off)]
                for q in range(q0 + hi, q0 + W):
                    tmp[q] += wk * img[q0 + W - 1]
    for c in range(C):
        for y in range(H):
            q0 = (c * H + y) * W
            for q in range(q0, q0 + W):
                img[q] = 0.0
            for k in range(2 * r + 1):
                wk = w[k]
                d = (min(max(y + k - r, 0), H - 1) - y) * W
                for q in range(q0, q0 + W):
                    u = np.uint64(q)
                    img[u] += wk * tmp[np.uint64(q + d)]


@serial_kernel
def _jitter(img, b, f, bright, contrast, value_range):
    """img (D,) += b (if bright); then deviations from the image's mean (over all channels)
    times f (if contrast); then clipped to [0, value_range]."""
    D = img.shape[0]
    if bright:
        for q in range(D):
            img[q] += b
    if contrast:
        total = 0.0
        for q in range(D):
            total += img[q]
        m = total / D
        for q in range(D):
            img[q] = (img[q] - m) * f + m
    for q in range(D):
        img[q] = min(max(img[q], 0.0), value_range)
