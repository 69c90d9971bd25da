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


cdef inline void _copy_cols(float[:, :] boxes, Py_ssize_t dst, Py_ssize_t src, Py_ssize_t first,
                            Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(first, stop):
        boxes[dst, k] = boxes[src, k]


cdef inline void _swap_cols(float[:, :] boxes, Py_ssize_t a, Py_ssize_t b, Py_ssize_t first,
                            Py_ssize_t stop) noexcept nogil:
    cdef Py_ssize_t k
    cdef float held
    for k in range(first, stop):
        held = boxes[a, k]
        boxes[a, k] = boxes[b, k]
        boxes[b, k] = held


cdef inline Py_ssize_t _first_max(float[:, :] boxes, Py_ssize_t first, Py_ssize_t stop) noexcept nogil:
    """Row of the highest score among rows first..stop-1 (the earliest on ties; `first` when the range is empty)."""
    cdef Py_ssize_t best = first, row
    for row in range(first + 1, stop):
        if boxes[best, 4] < boxes[row, 4]:
            best = row
    return best


cdef inline bint _iou(float[:, :] boxes, Py_ssize_t kept, Py_ssize_t row, float *out) noexcept nogil:
    """IoU of two rows' boxes into `out`; False (out untouched) when their pixel ranges do not intersect."""
    # float arithmetic term for term as in the reference, so decays and discards match it bit for bit
    cdef float row_area = (boxes[row, 2] - boxes[row, 0] + 1) * (boxes[row, 3] - boxes[row, 1] + 1)
    cdef float iw = _fmin(boxes[kept, 2], boxes[row, 2]) - _fmax(boxes[kept, 0], boxes[row, 0]) + 1
    cdef float ih, union_area
    if not iw > 0:  # NaN too, as in the reference
        return False
    ih = _fmin(boxes[kept, 3], boxes[row, 3]) - _fmax(boxes[kept, 1], boxes[row, 1]) + 1
    if not ih > 0:  # NaN too, as in the reference
        return False
    union_area = ((boxes[kept, 2] - boxes[kept, 0] + 1) * (boxes[kept, 3] - boxes[kept, 1] + 1) + row_area
                  - iw * ih)
    out[0] = iw * ih / union_area
    return True


cdef inline void _merge_start(float *sums, float[:, :] boxes, Py_ssize_t row) noexcept nogil:
    """Weighted corner sums of the kept box alone: x1, y1 times column 5, x2, y2 times column 6, then 5 and 6."""
    cdef Py_ssize_t k
    for k in range(4):
        sums[k] = boxes[row, k] * boxes[row, 5 + k // 2]
    sums[4] = boxes[row, 5]
    sums[5] = boxes[row, 6]


cdef inline void _merge_add(float *sums, float[:, :] boxes, Py_ssize_t row, float share) noexcept nogil:
    """Add a decayed box to the corner sums, every term scaled by `share`."""
    cdef Py_ssize_t k
    for k in range(4):
        sums[k] = sums[k] + boxes[row, k] * boxes[row, 5 + k // 2] * share
    sums[4] = sums[4] + boxes[row, 5] * share
    sums[5] = sums[5] + boxes[row, 6] * share


cdef Py_ssize_t _soft_nms_core(float[:, :] boxes, float sigma, float Nt, float threshold, unsigned int method,
                               int mode, float weight_exp) noexcept nogil:
    """Shared Soft-NMS loop; returns the number of surviving rows."""
    cdef Py_ssize_t live = boxes.shape[0]  # rows from `live` on are discarded
    # columns that travel with a row when rows are exchanged (MODE_MERGE's weights stay where they are)
    cdef Py_ssize_t carried = boxes.shape[1] if mode == MODE_CARRY else 5
    cdef Py_ssize_t i, row, k
    cdef float ov = 0, decay
    cdef float sums[6]
    for k in range(6):  # only MODE_MERGE reads them, after _merge_start; zeroed so no path reads garbage
        sums[k] = 0

    for i in range(boxes.shape[0]):  # the original bound, although `live` shrinks (later rows are then left alone)
        _swap_cols(boxes, i, _first_max(boxes, i, live), 0, carried)
        if mode == MODE_MERGE:
            _merge_start(sums, boxes, i)
        row = i + 1
        while row < live:
            if _iou(boxes, i, row, &ov):
                decay = _decay(ov, sigma, Nt, method)
                if mode == MODE_MERGE:
                    _merge_add(sums, boxes, row, <float>pow(<double>(1 - decay), <double>weight_exp))
                boxes[row, 4] = decay * boxes[row, 4]
                if boxes[row, 4] < threshold:
                    # discard: the last live row takes this place (extra columns exchanged) and is tested next
                    live -= 1
                    _copy_cols(boxes, row, live, 0, 5)
                    _swap_cols(boxes, row, live, 5, carried)
                    continue
            row += 1
        if mode == MODE_MERGE:
            for k in range(4):
                boxes[i, k] = sums[k] / sums[4 + k // 2]
    return live


def _check(boxes, int min_cols):
    if boxes.ndim != 2 or boxes.shape[1] < min_cols:
        raise ValueError(f"boxes must be an N x >={min_cols} float32 array, got shape {boxes.shape}")


cdef list _run_soft_nms(float[:, :] boxes, float sigma, float Nt, float threshold, unsigned int method, int mode,
                        float weight_exp, int min_cols):
    """Check the rows, run the shared loop without the GIL and return the kept row indices (rows 0..n-1)."""
    _check(np.asarray(boxes), min_cols)
    cdef Py_ssize_t n
    with nogil:
        n = _soft_nms_core(boxes, sigma, Nt, threshold, method, mode, weight_exp)
    return list(range(n))


def soft_nms(float[:, :] boxes, float sigma=0.5, float Nt=0.3, float threshold=0.001, unsigned int method=0):
    """Soft-NMS in place (method 0 hard, 1 linear, 2 gaussian); returns the kept row indices."""
    return _run_soft_nms(boxes, sigma, Nt, threshold, method, MODE_PLAIN, 0, 5)


def soft_nms_39(float[:, :] boxes, float sigma=0.5, float Nt=0.3, float threshold=0.001, unsigned int method=0):
    """soft_nms for pose rows (box, score, keypoints...): the extra columns travel with their row."""
    return _run_soft_nms(boxes, sigma, Nt, threshold, method, MODE_CARRY, 0, 5)


def soft_nms_merge(float[:, :] boxes, float sigma=0.5, float Nt=0.3, float threshold=0.001,
                   unsigned int method=0, float weight_exp=6):
    """soft_nms that also replaces each kept box by the average of the boxes it suppresses.

    Column 5 weighs the top-left corner, column 6 the bottom-right one; suppressed boxes count with
    weight (1 - decay) ** weight_exp.
    """
    return _run_soft_nms(boxes, sigma, Nt, threshold, method, MODE_MERGE, weight_exp, 7)


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
