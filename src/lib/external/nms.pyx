# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Greedy NMS and Soft-NMS (Bodla et al.) on N x (>= 5) float32 arrays [x1, y1, x2, y2, score, ...].

Areas use the inclusive-pixel convention (width = x2 - x1 + 1). The soft variants rearrange `boxes` in
place and return the indices 0..n-1 of the surviving rows; discarded rows are overwritten by copies of
the current last row, so rows from n on hold stale copies (callers that ignore the returned list keep them).
"""
from libc.math cimport exp, pow

import numpy as np


cdef enum:
    # soft-NMS flavours of the shared core loop
    MODE_PLAIN = 0  # columns 0..4 only
    MODE_CARRY = 1  # also move the extra columns (keypoints) along with their box
    MODE_MERGE = 2  # also average overlapping boxes' coordinates, weighted by columns 5 / 6


cdef inline float _fmax(float a, float b) noexcept nogil:
    return a if a >= b else b


cdef inline float _fmin(float a, float b) noexcept nogil:
    return a if a <= b else b


cdef inline float _decay(float ov, float sigma, float Nt, unsigned int method) noexcept nogil:
    """Score multiplier for a box overlapping the current maximum by IoU `ov`."""
    if method == 1:  # linear
        return 1 - ov if ov > Nt else 1
    if method == 2:  # gaussian
        return <float>exp(<double>(-(ov * ov) / sigma))
    return 0 if ov > Nt else 1  # hard NMS


cdef inline void _copy_box(float[:, :] boxes, Py_ssize_t dst, Py_ssize_t src) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(5):
        boxes[dst, k] = boxes[src, k]


cdef inline void _swap_extra(float[:, :] boxes, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t k
    cdef float tmp
    for k in range(5, boxes.shape[1]):
        tmp = boxes[a, k]
        boxes[a, k] = boxes[b, k]
        boxes[b, k] = tmp


cdef Py_ssize_t _soft_nms_core(float[:, :] boxes, float sigma, float Nt, float threshold, unsigned int method,
                               int mode, float weight_exp) noexcept nogil:
    """Shared Soft-NMS loop; returns the number of surviving rows."""
    cdef Py_ssize_t N = boxes.shape[0]
    cdef Py_ssize_t total = N
    cdef Py_ssize_t i, pos, maxpos
    cdef float maxscore, tx1, ty1, tx2, ty2, ts, x1, y1, x2, y2, area, iw, ih, ua, ov, weight
    cdef float mx1 = 0, my1 = 0, mx2 = 0, my2 = 0, mts = 0, mbs = 0, mw

    for i in range(total):  # the original bound, although N shrinks (later rows are then left alone)
        maxscore = boxes[i, 4]
        maxpos = i
        tx1 = boxes[i, 0]
        ty1 = boxes[i, 1]
        tx2 = boxes[i, 2]
        ty2 = boxes[i, 3]
        ts = boxes[i, 4]

        pos = i + 1
        while pos < N:  # first maximum among the remaining rows
            if maxscore < boxes[pos, 4]:
                maxscore = boxes[pos, 4]
                maxpos = pos
            pos += 1

        # exchange row i with the maximum (columns 0..4; extra columns depend on the mode)
        _copy_box(boxes, i, maxpos)
        boxes[maxpos, 0] = tx1
        boxes[maxpos, 1] = ty1
        boxes[maxpos, 2] = tx2
        boxes[maxpos, 3] = ty2
        boxes[maxpos, 4] = ts
        if mode == MODE_CARRY:
            _swap_extra(boxes, i, maxpos)
        elif mode == MODE_MERGE:
            # the weight columns 5 / 6 stay with row i (not exchanged), as in the original
            mx1 = boxes[i, 0] * boxes[i, 5]
            my1 = boxes[i, 1] * boxes[i, 5]
            mx2 = boxes[i, 2] * boxes[i, 6]
            my2 = boxes[i, 3] * boxes[i, 6]
            mts = boxes[i, 5]
            mbs = boxes[i, 6]

        tx1 = boxes[i, 0]
        ty1 = boxes[i, 1]
        tx2 = boxes[i, 2]
        ty2 = boxes[i, 3]

        pos = i + 1
        while pos < N:
            x1 = boxes[pos, 0]
            y1 = boxes[pos, 1]
            x2 = boxes[pos, 2]
            y2 = boxes[pos, 3]
            area = (x2 - x1 + 1) * (y2 - y1 + 1)
            iw = _fmin(tx2, x2) - _fmax(tx1, x1) + 1
            if iw > 0:
                ih = _fmin(ty2, y2) - _fmax(ty1, y1) + 1
                if ih > 0:
                    ua = (tx2 - tx1 + 1) * (ty2 - ty1 + 1) + area - iw * ih
                    ov = iw * ih / ua
                    weight = _decay(ov, sigma, Nt, method)
                    if mode == MODE_MERGE:
                        mw = <float>pow(<double>(1 - weight), <double>weight_exp)
                        mx1 = mx1 + boxes[pos, 0] * boxes[pos, 5] * mw
                        my1 = my1 + boxes[pos, 1] * boxes[pos, 5] * mw
                        mx2 = mx2 + boxes[pos, 2] * boxes[pos, 6] * mw
                        my2 = my2 + boxes[pos, 3] * boxes[pos, 6] * mw
                        mts = mts + boxes[pos, 5] * mw
                        mbs = mbs + boxes[pos, 6] * mw
                    boxes[pos, 4] = weight * boxes[pos, 4]
                    if boxes[pos, 4] < threshold:
                        # discard: overwrite with the last live row (its extra columns are exchanged)
                        _copy_box(boxes, pos, N - 1)
                        if mode == MODE_CARRY:
                            _swap_extra(boxes, pos, N - 1)
                        N -= 1
                        pos -= 1
            pos += 1

        if mode == MODE_MERGE:
            boxes[i, 0] = mx1 / mts
            boxes[i, 1] = my1 / mts
            boxes[i, 2] = mx2 / mbs
            boxes[i, 3] = my2 / mbs
    return N


def _check(boxes, int min_cols):
    if boxes.ndim != 2 or boxes.shape[1] < min_cols:
        raise ValueError(f"boxes must be an N x >={min_cols} float32 array, got shape {boxes.shape}")


def soft_nms(float[:, :] boxes, float sigma=0.5, float Nt=0.3, float threshold=0.001, unsigned int method=0):
    """Soft-NMS in place (method 0 hard, 1 linear, 2 gaussian); returns the kept row indices."""
    _check(np.asarray(boxes), 5)
    cdef Py_ssize_t n
    with nogil:
        n = _soft_nms_core(boxes, sigma, Nt, threshold, method, MODE_PLAIN, 0)
    return list(range(n))


def soft_nms_39(float[:, :] boxes, float sigma=0.5, float Nt=0.3, float threshold=0.001, unsigned int method=0):
    """soft_nms for pose rows (box, score, keypoints...): the extra columns travel with their row."""
    _check(np.asarray(boxes), 5)
    cdef Py_ssize_t n
    with nogil:
        n = _soft_nms_core(boxes, sigma, Nt, threshold, method, MODE_CARRY, 0)
    return list(range(n))


def soft_nms_merge(float[:, :] boxes, float sigma=0.5, float Nt=0.3, float threshold=0.001,
                   unsigned int method=0, float weight_exp=6):
    """soft_nms that also replaces each kept box by the average of the boxes it suppresses.

    Column 5 weighs the top-left corner, column 6 the bottom-right one; suppressed boxes count with
    weight (1 - decay) ** weight_exp.
    """
    _check(np.asarray(boxes), 7)
    cdef Py_ssize_t n
    with nogil:
        n = _soft_nms_core(boxes, sigma, Nt, threshold, method, MODE_MERGE, weight_exp)
    return list(range(n))


def nms(dets, thresh):
    """Greedy NMS: indices of the boxes kept, highest score first; suppresses IoU >= thresh."""
    cdef float[:, :] d = dets
    _check(np.asarray(dets), 5)
    cdef Py_ssize_t ndets = d.shape[0]
    cdef float[:] areas = np.asarray((np.asarray(dets)[:, 2] - np.asarray(dets)[:, 0] + 1)
                                     * (np.asarray(dets)[:, 3] - np.asarray(dets)[:, 1] + 1), dtype=np.float32)
    cdef Py_ssize_t[:] order = np.ascontiguousarray(np.asarray(dets)[:, 4].argsort()[::-1], dtype=np.intp)
    cdef unsigned char[:] suppressed = np.zeros(ndets, dtype=np.uint8)
    cdef double t = thresh
    cdef Py_ssize_t _i, _j, i, j
    cdef float ix1, iy1, ix2, iy2, iarea, w, h, inter, ovr
    keep = []
    for _i in range(ndets):
        i = order[_i]
        if suppressed[i]:
            continue
        keep.append(i)
        ix1 = d[i, 0]
        iy1 = d[i, 1]
        ix2 = d[i, 2]
        iy2 = d[i, 3]
        iarea = areas[i]
        for _j in range(_i + 1, ndets):
            j = order[_j]
            if suppressed[j]:
                continue
            w = _fmax(0.0, _fmin(ix2, d[j, 2]) - _fmax(ix1, d[j, 0]) + 1)
            h = _fmax(0.0, _fmin(iy2, d[j, 3]) - _fmax(iy1, d[j, 1]) + 1)
            inter = w * h
            ovr = inter / (iarea + areas[j] - inter)
            if ovr >= t:
                suppressed[j] = 1
    return keep
