"""Oracle maps for ablations: fill a whole map with the ground-truth value of the nearest object."""
from __future__ import annotations

import numba
import numpy as np
import torch


@numba.jit(nopython=True, nogil=True, cache=False)
def gen_oracle_map(feat, ind, w, h):
    """B x D x h x w map where every pixel holds the feature of the object reached first by a 4-neighbour BFS.

    feat: B x N x D ground-truth values; ind: B x N flat indices (y * w + x) of the object centres.
    Only entries with ind > 0 are objects. Pixels are claimed in breadth-first order from all centres at
    once, neighbours visited as (x, y+1), (x, y-1), (x+1, y), (x-1, y); the first claim wins.
    """
    batch_size = feat.shape[0]
    max_objs = feat.shape[1]
    feat_dim = feat.shape[2]
    out = np.zeros((batch_size, feat_dim, h, w), dtype=np.float32)
    steps = ((0, 1), (0, -1), (1, 0), (-1, 0))
    for i in range(batch_size):
        seen = np.zeros((h, w), dtype=np.uint8)
        # every pixel is queued at most once after seeding, plus one entry per object
        qx = np.empty(h * w + max_objs, dtype=np.int64)
        qy = np.empty(h * w + max_objs, dtype=np.int64)
        qf = np.empty((h * w + max_objs, feat_dim), dtype=np.float32)
        head = 0
        tail = 0
        for j in range(max_objs):
            k = ind[i, j]
            if k > 0:
                x = k % w
                y = k // w
                for d in range(feat_dim):
                    out[i, d, y, x] = feat[i, j, d]
                    qf[tail, d] = feat[i, j, d]
                seen[y, x] = 1
                qx[tail] = x
                qy[tail] = y
                tail += 1
        while head < tail:
            x = qx[head]
            y = qy[head]
            for dx, dy in steps:
                xx = x + dx
                yy = y + dy
                if 0 <= xx < w and 0 <= yy < h and seen[yy, xx] == 0:
                    seen[yy, xx] = 1
                    for d in range(feat_dim):
                        out[i, d, yy, xx] = qf[head, d]
                        qf[tail, d] = qf[head, d]
                    qx[tail] = xx
                    qy[tail] = yy
                    tail += 1
            head += 1
    return out


def oracle_map(target: torch.Tensor, ind: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Dense ground-truth map shaped like `like`, flood-filled from each object's centre (gen_oracle_map)."""
    dense = gen_oracle_map(target.detach().cpu().numpy(), ind.detach().cpu().numpy(),
                           like.shape[3], like.shape[2])
    return torch.from_numpy(dense).to(like.device)
