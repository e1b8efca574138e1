"""log p(x) = log integral p(x, z) dz over a 1- or 2-D latent by the trapezoid rule, to 1e-4 nats per point.

Two grids, one answer (``integrate_log_marginal``):

- the shared lattice (``lattice_log_marginal``): nodes z = h i (i integer) common to all points, cut into tiles of
  T^d nodes. Each point sums over its own window, a set of tiles around its posterior, and a tile is evaluated once
  for all the points whose window holds it (log_joint(x[those], z_tile (T^d, 1, d))): a network decoder runs once per
  node, not once per node and point. Every point starts on a coarse pilot lattice over [-10, 10)^d; a point is
  accepted when the lattice resolves its posterior: its estimate moves by at most a tenth of the tolerance asked for
  (REFINE_TOL, 1e-4 nats, by default) when any one of the 2^d interleaved sub-lattices of spacing 2h replaces the
  whole (a free halving test), its weights spread over enough nodes, and no mass reaches an open edge of its window. A
  point whose halving test nearly passes is checked on the same window offset by half a spacing on every axis, which
  unmasks a ridge aliased with the lattice, and answered by the two lattices' mean where they agree. A point that
  fails moves to a finer lattice (the spacing its halving test asks for) with a window fitted to its mass, or keeps
  its lattice and widens its window.
- the per-point adaptive grid (``LatentGrid``, ``adapt_latent_grid``, ``adaptive_log_marginal``), whitened by each
  point's own posterior moments: the fallback for the points the lattice gives up on (mass beyond the pilot box,
  windows beyond MAX_WINDOW_NODES), and the grid behind expectations under q (``estimators.quadrature_elbo``).

Both ask the model for ``log_joint(x, z)``, broadcasting z (n, 1, d) or (n, batch, d) against x (batch, D). The
lattice, for a model that has them, computes the same sum as log_prior(z) + log_likelihood_given(x, params) with
params = likelihood_params(z) per tile, kept so that finer lattices reuse them at the nodes they share.
Like any grid, both can miss a mode of p(z|x) so narrow that every pilot node near it lies below another mode's
window (the per-point grid's search shares that blind spot); the pilot's spacing, 0.3125, sets how narrow. And the
halving and offset tests are evidence, not proof: measured against float64 references (two moons, a sharpened two
moons, the shipped digits model, 2,360 points in all) the worst point was 6e-5 off. A looser ``tol`` scales every
test's threshold with it, ratios set at 1e-4: at tol = 1e-2, on five snapshots of a two-moons model's training (5,000
points), 6 points were beyond 1e-2 (the worst 3.4e-2 off) and each snapshot's mean within 1.5e-4 of the 1e-4 answer.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch

# grid evaluations per call of log_f on the adaptive grid: small enough that a small network's activations stay in cache
EVAL_CHUNK = 1 << 15
# adaptive grid: cells further than this below the peak of the integrand carry less than e^-40 of its mass
LOG_MASS_CUTOFF = 40.0
REFINE_TOL = 1e-4  # nats: the accuracy promised per point
MAX_REFINE = 3  # the adaptive grid doubles its resolution at most this often (81 -> 641 nodes per axis in 2-D)

# ----- the shared lattice
# The tests below scale with the tolerance tol asked for (REFINE_TOL by default); their ratios were set at 1e-4.
# the halving test's threshold, a tenth of the tolerance: where a feature of the posterior is unresolved at spacings h
# and 2h alike, the sub-lattices can agree with each other better than with the integral (seen on a trained two-moons
# model: 7e-5 apart, 1.4e-4 off); at a tenth such points go on refining
HALVING_RATIO = 0.1
HALVING_TOL = HALVING_RATIO * REFINE_TOL
# a point between the halving threshold and OFFSET_HALVING_RATIO tol is checked on the lattice offset by half a spacing
# on every axis: a thin ridge parallel to an axis can alias, so that the sub-lattices agree by chance while the lattice
# is off (seen on a sharpened two-moons model: sub-lattices 1.4e-4 apart, 9.7e-4 off, the offset lattice 8.6e-4 off
# the other way). Accepted, with the two lattices' mean, when they agree within tol. Measured against float64
# references on that model and the shipped digits model (2,350 checks): with the halving deviation at most 3e-4 and
# the lattices 1e-4 apart the mean was at worst 1.8e-5 off; at 1e-3 and 3e-5, 7.8e-5 off
OFFSET_HALVING_RATIO = 3.0
# a window holds every node within WINDOW_LOG_MASS + log((2 pi)^(d/2) / A) nats of the point's peak, where
# A = p(x) / max_z p(x, z) is the posterior's effective area: past an edge that deep, an integrand falling off at
# least like the prior holds less than e^-14 (1e-6) of the mass, however narrow the posterior
WINDOW_LOG_MASS = 14.0
MAX_WINDOW_LOG_MASS = 40.0
# the weights' effective number of nodes, (sum w)^2 / sum w^2, must reach MIN_ESS_PER_AXIS^d: a posterior narrower than
# the spacing, centred between nodes, can fool the halving test (equal weights on the 2^d nearest nodes, one per
# sub-lattice) but not this; a posterior that passes the halving test has at least ~5 nodes per axis
MIN_ESS_PER_AXIS = 3.0
TILE = {1: 64, 2: 16}  # lattice nodes per axis of a tile, the unit of shared work; even, so parities line up
PILOT_HALF_WIDTH = 10.0  # the pilot covers [-10, 10)^d; the prior's density at its edge is e^-50
PILOT_TILES = 2  # tiles per half-axis of the pilot: its spacing h0 = PILOT_HALF_WIDTH / (PILOT_TILES * T)
# spacings h0 2^-k; a round moves a point at most MAX_OCTAVES_PER_ROUND finer. Whole octaves: a tile then splits into
# whole tiles of the finer lattice, so a window can follow the nodes that hold mass; and finer steps would fit each
# point's spacing closer, but every distinct spacing is a pass of its own over the tiles (the decoder and a call per
# tile again), which costs more than the nodes saved (measured: 1.5x the time at 2 steps per octave on a trained
# two-moons model). One octave per round (two for a posterior narrower than the spacing): a pass one octave finer
# costs a quarter of one two octaves finer, and the halving test's forecast overshoots (measured: two octaves per
# round took 1.5x the time on the digits and 1.3x on two moons, at the same accuracy)
MAX_OCTAVES_PER_ROUND = 1
MIN_SPACING_RATIO = 2.0**-12  # finer than h0 / 4096 (8e-5 in 2-D): the per-point adaptive grid takes over
NEXT_TILES_CHUNK = 1 << 12  # (point, tile) pairs whose masks are dilated at once: ~7 MB of float32 canvases
PAD = 2  # cells of padding round the nodes that hold mass when a window is drawn for the next lattice
# a point needing more nodes goes to the per-point adaptive grid, which cannot resolve what such a lattice could not
# (a sharpened two-moons model: a broad fan with a thin ridge at its apex, resolved at 2-4M nodes, 9e-3 off on the
# adaptive grid). The pair lists of a chunk hold at most 24 bytes per tile of each point's window
MAX_WINDOW_NODES = 1 << 22
MAX_ROUNDS = 12
PAIR_BUDGET = 1 << 20  # (node, point, data_dim) elements of log_joint's intermediates held at once
POINT_CHUNK = 1 << 10  # points sharing the lattices at a time; their windows (up to MAX_WINDOW_NODES each) are held
MAX_TILE_PAIRS = 1 << 16  # (point, tile) pairs of one pass: bounds the per-pair statistics held (d * T values each)
STATS_PAIRS = 1 << 10  # (point, tile) pairs whose statistics are reduced at once: fewer, larger tensor operations
# the decoder's outputs kept per tile, so that a finer lattice takes its nodes shared with coarser ones (a quarter from
# the lattice of spacing 2h, a quarter from the one offset by h / 2) instead of running the decoder there again. A
# round's finer passes follow its coarser ones, so the tiles asked for are the latest: on the shipped digits model (65
# values per node) 256 MiB keeps what unbounded keeps, 128 MiB loses most of it (4.6 s, 6.2 s, 6.3 s with none)
NODE_CACHE_BYTES = 1 << 28
# a block's pairs each take their tile's likelihood_params, for one likelihood call per block, when a node's params are
# at most this many numbers; more (the digits' 64 logits) are cheaper through one call per tile, whose shared params
# let the model use a matrix product
GATHER_PARAMS = 16


def lattice_log_marginal(model, x: torch.Tensor, tol: float = REFINE_TOL) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) on lattices shared by all points, each point summing over its own window: (log_px, resolved).

    x: (batch, data_dim) -> log_px: (batch,), resolved: (batch,) bool. log p(x) ~= log(h^d sum_{i in window}
    p(x, z_i)) with z_i = h i, a window being a set of tiles of the lattice. A point is resolved when its estimate
    moves by at most HALVING_RATIO tol if any one of the 2^d sub-lattices of spacing 2h replaces the whole (or by at
    most OFFSET_HALVING_RATIO tol, and the lattice offset by h / 2 on every axis agrees within tol: the two lattices'
    mean is the answer), its weights spread over enough nodes, and its window's open edges lie deep in the tails.
    ``tol``: the accuracy aimed at, nats per point. Unresolved values are NaN: the caller falls back to the per-point
    adaptive grid.
    """
    if model.latent_dim not in (1, 2):
        raise ValueError(f"quadrature needs a 1- or 2-D latent, got latent_dim={model.latent_dim}")
    batch = x.shape[0]
    log_px = torch.full((batch,), math.nan, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for i in range(0, batch, POINT_CHUNK):
            log_px[i:i + POINT_CHUNK] = _lattice_chunk(model, x[i:i + POINT_CHUNK], tol)
    return log_px, ~torch.isnan(log_px)


def _lattice_chunk(model, x: torch.Tensor, tol: float) -> torch.Tensor:
    """The rounds for one chunk of points: the pilot over the whole box, then each unresolved point on a finer lattice
    (or a wider window), its window fitted to its mass. Returns (batch,) with NaN where unresolved."""
    d, batch, dev = model.latent_dim, x.shape[0], x.device
    T = TILE[d]
    halving_tol = HALVING_RATIO * tol
    out = torch.full((batch,), math.nan, dtype=x.dtype, device=dev)
    rung = torch.zeros(batch, dtype=torch.long, device=dev)
    # a window is a set of tiles, kept as (point, tile) pairs; the pilot's: the (2 PILOT_TILES)^d tiles of the box
    pilot = torch.cartesian_prod(*[torch.arange(-PILOT_TILES, PILOT_TILES, device=dev)] * d).reshape(-1, d)
    pair_point = torch.arange(batch, device=dev).repeat_interleave(pilot.shape[0])
    pair_tile = pilot.repeat(batch, 1)
    # a point the halving test nearly accepts waits, its estimate in `pending`, for the same window on the lattice
    # offset by half a spacing on every axis (`offset` True)
    pending = torch.full((batch,), math.nan, dtype=x.dtype, device=dev)
    offset = torch.zeros(batch, dtype=torch.bool, device=dev)
    # a model that can say what p(x | z) takes from z lets finer lattices reuse the decoder's work on coarser ones
    nodes = _NodeParams(model, T, d) if hasattr(model, "likelihood_params") else None
    for _ in range(MAX_ROUNDS):
        nxt = []
        pair_pass = 2 * rung[pair_point] + offset[pair_point]  # this round's, before any point moves on
        for kk in torch.unique(pair_pass).tolist():
            k, shifted = divmod(kk, 2)
            at_k = pair_pass == kk
            for pp, tt in _batches(pair_point[at_k], pair_tile[at_k]):
                pts, local = torch.unique(pp, return_inverse=True)
                st = _lattice_pass(model, x[pts], k, local, tt, T, tol, shifted, nodes)
                if shifted:
                    # the two lattices' estimates differ by about twice the error of either; their mean is the
                    # lattice of spacing h / sqrt(2) turned by 45 degrees, whose error is smaller still
                    gap = (st.estimate - pending[pts]).abs().nan_to_num(math.inf)
                    st.ok = torch.isfinite(st.estimate) & ~st.ess_low & ~st.touch & (gap <= tol)
                    st.estimate = torch.logaddexp(st.estimate, pending[pts]) - math.log(2)
                    st.halving = torch.maximum(st.halving, gap)
                    st.unresolved = st.unresolved | (gap > tol)
                    offset[pts] = False
                    done = st.ok
                else:
                    done = st.ok & (st.halving <= halving_tol)
                    wait = st.ok & ~done
                    pending[pts[wait]] = st.estimate[wait]
                    offset[pts[wait]] = True
                    waiting = wait[local]
                    nxt.append((pp[waiting], tt[waiting]))
                    st.ok = done
                out[pts[done]] = st.estimate[done]
                # give up on what no lattice pass can use, and on mass at the pilot box's edge (a far posterior)
                again = ~st.ok & ~offset[pts] & torch.isfinite(st.M) & ~(st.touch & (k == 0))
                if not again.any():
                    continue
                # the spacing the halving test asks for, if the sub-lattice error fell like 2 exp(-pi a / h) (an
                # integrand analytic in a strip of half-width a; a Gaussian's falls faster):
                # h_new / h = log(2 / dev) / log(2 / halving_tol); 2 octaves for a posterior narrower than the spacing
                dev_ = st.halving.clamp(min=halving_tol, max=0.5)
                ratio = (torch.log(2 / dev_) / math.log(2 / halving_tol)).clamp(min=2.0**-MAX_OCTAVES_PER_ROUND)
                ratio = torch.where(st.ess_low | (st.halving >= 0.5), 0.25, ratio)
                step = torch.ceil(-torch.log2(ratio)).clamp(min=1).long()
                new_rung = k + torch.where(st.unresolved, step, 0)
                rung[pts[again]] = new_rung[again]
                keep = again[local] & st.mass
                octaves = (new_rung - k)[local[keep]]
                new_point, new_tile = _next_tiles(st.node_mass[keep], tt[keep], local[keep], octaves, T)
                nxt.append((pts[new_point], new_tile))
        if not nxt:
            break
        pair_point, pair_tile = (torch.cat(t) for t in zip(*nxt, strict=True))
        # drop points whose window outgrew the budget or whose spacing fell below the floor
        tiles = torch.bincount(pair_point, minlength=batch)
        too_much = (tiles * T**d > MAX_WINDOW_NODES) | (2.0**-rung < MIN_SPACING_RATIO)
        keep = ~too_much[pair_point]
        pair_point, pair_tile = pair_point[keep], pair_tile[keep]
        if pair_point.numel() == 0:
            break
    return out


def _batches(pair_point: torch.Tensor, pair_tile: torch.Tensor):
    """Split (point, tile) pairs into passes of whole points, each with at most ~MAX_TILE_PAIRS pairs."""
    order = torch.argsort(pair_point, stable=True)
    pair_point, pair_tile = pair_point[order], pair_tile[order]
    _, counts = torch.unique_consecutive(pair_point, return_counts=True)
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < pair_point.numel():
        # the last whole point that keeps this pass within the budget (at least one point)
        stop = int(ends[torch.searchsorted(ends, start + MAX_TILE_PAIRS, right=True).clamp(min=1) - 1])
        stop = max(stop, int(ends[torch.searchsorted(ends, start, right=True)]))
        yield pair_point[start:stop], pair_tile[start:stop]
        start = stop


def _next_tiles(node_mass: torch.Tensor, tiles: torch.Tensor, point: torch.Tensor, octaves: torch.Tensor,
                T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tiles of the next lattices that cover the nodes holding mass, each padded by PAD cells (the mass's true edge
    lies within a cell of its last node): node_mass (n, T^d) bool on the tiles tiles (n, d) of point (n,), octaves (n,)
    how many times finer the point's next spacing is (0: the same lattice, a wider window). A tile of the lattice
    2^j times finer covers a block of T / 2^j cells of this one, so the next window is the set of blocks that hold
    padded mass, not their bounding box. Returns the unique (point, tile) pairs."""
    d = tiles.shape[1]
    pool = torch.nn.functional.max_pool1d if d == 1 else torch.nn.functional.max_pool2d
    pieces = []
    for j in torch.unique(octaves).tolist():
        s = T >> j  # cells of this lattice per block
        nb = T // s + 2  # blocks per axis: the tile's own, and one beyond each edge for the padding
        # canvas cell c is the tile's node c - PAD; its block floor((c - PAD) / s) + 1 in [0, nb)
        block = torch.div(torch.arange(T + 2 * PAD, device=tiles.device) - PAD, s, rounding_mode="floor") + 1
        assign = torch.nn.functional.one_hot(block, nb).to(torch.float32)  # (T + 2 PAD, nb)
        for rows in torch.split(torch.nonzero(octaves == j)[:, 0], NEXT_TILES_CHUNK):
            mask = node_mass[rows].view(-1, *(T,) * d).to(torch.float32)
            mask = torch.nn.functional.pad(mask, (PAD, PAD) * d)
            mask = pool(mask, 2 * PAD + 1, stride=1, padding=PAD)  # (n, T + 2 PAD, ...): dilated by PAD cells
            held = (mask @ assign) if d == 1 else (assign.T @ mask @ assign)  # (n, nb) or (n, nb, nb)
            idx = torch.nonzero(held > 0)  # (m, 1 + d): pair, block per axis
            owner = rows[idx[:, 0]]
            pieces.append((point[owner], tiles[owner] * (T // s) + idx[:, 1:] - 1))
    pp = torch.cat([p for p, _ in pieces])
    tile = torch.cat([t for _, t in pieces])
    key = pp
    # unique (point, tile) pairs, through one integer per pair (torch.unique along a dim is far slower)
    tmin = tile.amin(0)
    span = tile.amax(0) - tmin + 1
    for a in range(tile.shape[1]):
        key = key * span[a] + (tile[:, a] - tmin[a])
    key = torch.unique(key)
    tile = torch.empty(len(key), len(span), dtype=torch.long, device=key.device)
    for a in reversed(range(len(span))):
        tile[:, a] = key % span[a] + tmin[a]
        key = torch.div(key, span[a], rounding_mode="floor")
    return key, tile


class _NodeParams:
    """The model's ``likelihood_params`` at the nodes of the lattice tiles evaluated so far, the least recently used
    dropped past NODE_CACHE_BYTES. Lattice (k, o) has the nodes z = h0 2^-k (i + o / 2). A node of (k, 0) whose indices
    are all even is node i / 2 of (k - 1, 0); one whose indices are all odd is node (i - 1) / 2 of (k - 1, 1), the
    offset lattice. So a tile of (k, 0) takes those nodes from a quadrant of the tile of (k - 1, .) that holds it, and
    the decoder runs on the rest only, once for all the tiles asked for together."""

    def __init__(self, model, T: int, d: int):
        self.model, self.T, self.d = model, T, d
        self.store: OrderedDict[tuple[int, ...], tuple[torch.Tensor, ...]] = OrderedDict()
        self.bytes = 0

    def at(self, k: int, o: int, tiles: list[list[int]], z: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """The params at the nodes z (tiles, T^d, 1, d) of the tiles ``tiles`` of lattice (k, o), per tile a tuple of
        (T^d, 1, ...) tensors."""
        T, d = self.T, self.d
        grid = (T,) * d
        found: list[tuple[torch.Tensor, ...] | None] = []
        todo = []  # (tile's index, its parents, the nodes they leave to the decoder)
        for i, tile in enumerate(tiles):
            key = (k, o, *tile)
            params = self.store.get(key)
            if params is not None:
                self.store.move_to_end(key)
            else:
                parents = self._parents(k, o, tile)
                have = torch.zeros(grid, dtype=torch.bool, device=z.device)
                for nodes, _, _ in parents:
                    have[nodes] = True
                todo.append((i, parents, ~have.view(-1)))
            found.append(params)
        if todo:
            miss_z = torch.cat([z[i][miss] for i, _, miss in todo])  # (nodes, 1, d)
            counts = [int(miss.sum()) for _, _, miss in todo]
            # in chunks of EVAL_CHUNK nodes: a block's nodes at once would hold a wide network's activations for all
            decoded = zip(*[self.model.likelihood_params(c) for c in miss_z.split(EVAL_CHUNK)], strict=True)
            decoded = [torch.cat(p).split(counts) for p in decoded]
            for j, (i, parents, miss) in enumerate(todo):
                fresh = tuple(p[j] for p in decoded)
                if parents:
                    out = tuple(torch.empty(T**d, *p.shape[1:], dtype=p.dtype, device=p.device) for p in fresh)
                    for nodes, quadrant, params in parents:
                        for o_, p in zip(out, params, strict=True):
                            o_.view(*grid, *o_.shape[1:])[nodes] = p.reshape(*grid, *p.shape[1:])[quadrant]
                    for o_, p in zip(out, fresh, strict=True):
                        o_[miss] = p
                    fresh = out
                found[i] = fresh
                self._keep((k, o, *tiles[i]), fresh)
        return found

    def _parents(self, k: int, o: int, tile: list[int]) -> list[tuple[tuple[slice, ...], tuple[slice, ...], tuple]]:
        """(this tile's nodes, the coarser tile's quadrant that holds them, the coarser tile's params) per coarser
        lattice whose tile is kept."""
        if o != 0 or k == 0:
            return []
        T, d = self.T, self.d
        up = tuple(t // 2 for t in tile)
        quadrant = tuple(slice(t % 2 * T // 2, (t % 2 + 1) * T // 2) for t in tile)
        parents = []
        for parity in (0, 1):
            params = self.store.get((k - 1, parity, *up))
            if params is not None:
                parents.append(((slice(parity, None, 2),) * d, quadrant, params))
        return parents

    def _keep(self, key: tuple[int, ...], params: tuple[torch.Tensor, ...]) -> None:
        self.store[key] = params
        self.bytes += sum(p.numel() * p.element_size() for p in params)
        while self.bytes > NODE_CACHE_BYTES:
            _, old = self.store.popitem(last=False)
            self.bytes -= sum(p.numel() * p.element_size() for p in old)


class _PassStats:
    """What one lattice pass says about each of its b points and each of its (point, tile) pairs.

    Per point: estimate (b,) log(h^d sum w) + M; M (b,) the max of log p(x, z) over the window; halving (b,) the
    largest |log(2^d S_c / sum S)| over the sub-lattices c; ess_low (b,) too few effective nodes; touch (b,) mass on
    an open edge of the window; unresolved (the halving deviation beyond OFFSET_HALVING_RATIO tol, or ess failed) and ok
    (not unresolved, no touch: the caller decides between accepting and the offset check) (b,) bools.
    Per pair: mass (pairs,) the tile holds nodes within the window depth of M; node_mass (pairs, T^d) which nodes do,
    the mask the next window is drawn round.
    """


def _lattice_pass(model, x: torch.Tensor, k: int, point: torch.Tensor, tiles: torch.Tensor, T: int,
                  tol: float = REFINE_TOL, shifted: int = 0, nodes: _NodeParams | None = None) -> _PassStats:
    """Sum exp(log p(x_b, z_i)) over the nodes z_i = h (i + shifted / 2), h = h0 2^-k, of each point's tiles:
    x (b, D), point (pairs,) in [0, b), tiles (pairs, d). A tile is evaluated once for all the points whose window
    holds it: log_joint(x[those], z_tile (T^d, 1, d)), its likelihood_params taken from ``nodes`` where given.
    Per pair it keeps the tile's max m, the sums of exp(f - m) per sub-lattice and of their squares, and the max of f
    along each axis index; the per-point statistics are reduced from these.
    """
    h, offset = PILOT_HALF_WIDTH / (PILOT_TILES * T) * 2.0**-k, 0.5 * shifted
    b, d = x.shape[0], tiles.shape[1]
    dev, dtype = x.device, x.dtype
    tmin = tiles.amin(0) - 1  # shifted tile coordinates, neighbours included, code (point, tile) as one integer
    span = tiles.amax(0) - tmin + 2

    def code(p, t):
        c = p
        for a in range(d):
            c = c * span[a] + (t[:, a] - tmin[a])
        return c

    keys = code(point, tiles)
    order = torch.argsort(keys)
    point, tiles, keys = point[order], tiles[order], keys[order]  # grouped by point, then by tile
    tile_key = code(torch.zeros_like(point), tiles)
    by_tile = torch.argsort(tile_key, stable=True)
    _, counts = torch.unique_consecutive(tile_key[by_tile], return_counts=True)
    local = torch.arange(T, device=dev)
    local = local[:, None] if d == 1 else torch.cartesian_prod(local, local)  # (T^d, d) node offsets in a tile
    step = max(1, PAIR_BUDGET // (T**d * max(1, x.shape[1])))
    P = point.numel()
    m = torch.empty(P, dtype=dtype, device=dev)
    sums = torch.empty(P, 2**d, dtype=dtype, device=dev)  # per sub-lattice: the node index's parities
    sq = torch.empty(P, dtype=dtype, device=dev)
    amax = torch.empty(P, d, T, dtype=dtype, device=dev)
    # each node's depth below its tile's max in quarter nats, rounded down (so a window errs on the wide side): the
    # next window is drawn round the nodes that hold mass, not round their bounding box
    below = torch.empty(P, T**d, dtype=torch.uint8, device=dev)
    tile_of = tiles[by_tile[torch.cumsum(counts, 0) - counts]]  # (tiles, d)
    counts, tile_list = counts.tolist(), tile_of.tolist()
    # blocks of consecutive tiles with up to STATS_PAIRS pairs: the decoder runs once per block, and the blocks'
    # statistics are reduced in one go
    t0 = start = 0
    while t0 < len(counts):
        t1, block_pairs = t0 + 1, counts[t0]
        while t1 < len(counts) and block_pairs + counts[t1] <= STATS_PAIRS:
            block_pairs += counts[t1]
            t1 += 1
        z = ((tile_of[t0:t1, None, :] * T + local).to(dtype) + offset).mul_(h)[:, :, None, :]  # (tiles, T^d, 1, d)
        if nodes is not None:
            params, log_prior = nodes.at(k, shifted, tile_list[t0:t1], z), model.log_prior(z)
        block, block_start = [], start
        # a NaN from the model spreads through its point's sums: that point goes to the per-point grid
        if nodes is not None and sum(p[0, 0].numel() for p in params[0]) <= GATHER_PARAMS:
            # each pair takes its tile's params, and the block is one call: cheaper than a call per tile when a
            # node's params are a few numbers (a Gaussian decoder's mean and scale), dearer when they are many
            owner = torch.repeat_interleave(torch.arange(t1 - t0, device=dev),
                                            torch.tensor(counts[t0:t1], device=dev))  # (pairs,) tile in the block
            stacked = [torch.stack(p) for p in zip(*params, strict=True)]  # each (tiles, T^d, 1, ...)
            for j in range(0, block_pairs, step):
                own = owner[j:j + step]
                xs = x[point[by_tile[start + j:start + j + len(own)]]]
                given = tuple(p[own, :, 0].transpose(0, 1) for p in stacked)  # each (T^d, bp, ...)
                block.append(log_prior[own, :, 0].T + model.log_likelihood_given(xs, given))  # (T^d, bp)
            start += block_pairs
        else:
            for t in range(t1 - t0):
                for j in range(start, start + counts[t0 + t], step):
                    xs = x[point[by_tile[j:min(j + step, start + counts[t0 + t])]]]
                    f = (model.log_joint(xs, z[t]) if nodes is None
                         else log_prior[t] + model.log_likelihood_given(xs, params[t]))
                    block.append(f)  # (T^d, bp)
                start += counts[t0 + t]
        t0 = t1
        rows = by_tile[block_start:start]
        f = torch.cat(block, 1)  # (T^d, pairs of the block)
        fv = f.view(*(T,) * d, -1)
        axis_max = fv[None].clone() if d == 1 else torch.stack([fv.amax(1), fv.amax(0)])  # (d, T, pairs)
        top = axis_max[0].amax(0)  # (pairs,)
        f.sub_(torch.where(torch.isfinite(top), top, 0.0))  # in place: f is not needed again
        below[rows] = torch.floor(-4 * f).clamp_(max=255).nan_to_num_(255).T.to(torch.uint8)
        w = f.exp_()
        m[rows] = top
        sums[rows] = w.view(*(T // 2, 2) * d, -1).sum((0, 2) if d == 2 else (0,)).reshape(2**d, -1).T
        sq[rows] = torch.linalg.vecdot(w, w, dim=0)
        amax[rows] = axis_max.permute(2, 0, 1)
    st = _PassStats()
    st.M = torch.full((b,), -math.inf, dtype=dtype, device=dev).scatter_reduce(0, point, m, "amax")
    r = torch.exp(m - torch.where(torch.isfinite(st.M), st.M, 0.0)[point])
    S = torch.zeros(b, 2**d, dtype=dtype, device=dev).index_add_(0, point, sums * r[:, None])
    Q = torch.zeros(b, dtype=dtype, device=dev).index_add_(0, point, sq * r * r)
    total = S.sum(1)
    log_area = torch.log(total) + d * math.log(h)  # log A, A = p(x) / max p(x, z)
    st.estimate = st.M + log_area
    st.halving = (torch.log(S * 2**d) - torch.log(total)[:, None]).abs().amax(1)
    st.ess_low = 2 * torch.log(total) - torch.log(Q) < d * math.log(MIN_ESS_PER_AXIS)
    depth = (WINDOW_LOG_MASS + (0.5 * d * math.log(2 * math.pi) - log_area).clamp(min=0)).clamp(max=MAX_WINDOW_LOG_MASS)
    floor = (st.M - depth)[point]  # (pairs,)
    has = amax >= floor[:, None, None]  # (pairs, d, T)
    st.mass = has[:, 0].any(1)
    st.node_mass = m[:, None] - 0.25 * below.to(dtype) >= floor[:, None]  # (pairs, T^d)
    touch = torch.zeros(P, dtype=torch.bool, device=dev)
    for a in range(d):
        for shift, line in ((-1, 0), (1, T - 1)):
            neighbour = tiles.clone()
            neighbour[:, a] += shift
            c = code(point, neighbour)
            at = torch.searchsorted(keys, c).clamp(max=P - 1)
            open_edge = keys[at] != c
            touch |= open_edge & (amax[:, a, line] >= floor)  # mass on an edge with no tile beyond it
    st.touch = torch.zeros(b, dtype=torch.long, device=dev).index_add_(0, point, touch.long()) > 0
    # resolved: the halving test passes, or nearly (the caller then checks on the offset lattice)
    st.unresolved = (st.halving > OFFSET_HALVING_RATIO * tol) | st.ess_low
    st.ok = torch.isfinite(st.estimate) & ~st.unresolved & ~st.touch
    # the caller indexes pairs in its own order
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(P, device=dev)
    st.mass, st.node_mass = st.mass[inverse], st.node_mass[inverse]
    return st


# ------------------------------------------------------------------------------------------- the combined answer
def integrate_log_marginal(model, x: torch.Tensor, tol: float = REFINE_TOL) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(x) to ``tol`` nats per point: the shared lattice, then the per-point adaptive grid for the points it
    leaves.

    x: (batch, data_dim) -> (log_px: (batch,), on_lattice: (batch,) bool, False where the adaptive grid answered).
    """
    log_px, on_lattice = lattice_log_marginal(model, x, tol)
    if not on_lattice.all():
        rest = ~on_lattice
        log_px[rest] = adaptive_log_marginal(model, x[rest], tol=tol)
    return log_px, on_lattice


def quadrature_log_marginal(model, x: torch.Tensor, resolution: int | None = None,
                            tol: float = REFINE_TOL) -> torch.Tensor:
    """log p(x) = log integral p(x, z) dz for a 1- or 2-D latent, x: (batch, data_dim) -> (batch,).

    resolution None: accurate to ``tol`` nats per point (``integrate_log_marginal``). An integer: the per-point adaptive
    grid at that many nodes per axis and no refinement, an approximation (cheaper only on very small batches).
    """
    if resolution is not None:
        return adaptive_log_marginal(model, x, resolution=resolution)
    return integrate_log_marginal(model, x, tol)[0]


# ------------------------------------------------------------------------------------------- adaptive quadrature
# The grid lives in whitened coordinates u, z = center + u @ scale^T, found per point by a few search rounds: a grid
# whose mass touches its edge grows, a grid whose mass fills only a few cells zooms in, and a resolved grid is
# re-whitened by the mass's own mean and covariance, so narrow, tilted or far-away posteriors all end up as a round
# blob filling the grid. The trapezoid rule then converges fast for the smooth integrands we meet.


def adaptive_log_marginal(model, x: torch.Tensor, resolution: int | None = None,
                          tol: float = REFINE_TOL) -> torch.Tensor:
    """log p(x) by the trapezoid rule on a grid adapted to each point's posterior, x: (batch, data_dim) -> (batch,).

    With the default resolution, a point is recomputed on a grid twice as fine (up to MAX_REFINE times) while any of
    the 2^d interleaved half-resolution grids (each a trapezoid or midpoint rule) moves its estimate by more than
    HALVING_RATIO tol. Costs a decoder evaluation per node and point; the fallback of ``integrate_log_marginal``.
    """
    with torch.no_grad():
        d = model.latent_dim
        grid = adapt_latent_grid(lambda z: model.log_joint(x, z), x.shape[0], d, x.dtype, x.device,
                                 resolution=resolution)
        out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
        idx = torch.arange(x.shape[0], device=x.device)  # the points still being refined
        for round_ in range(MAX_REFINE + 1):
            xi = x[idx]
            f = _evaluate(lambda z: model.log_joint(xi, z), grid.z) + grid.log_cell  # noqa: B023 (used at once)
            out[idx] = fine = torch.logsumexp(f, dim=0)
            if resolution is not None or round_ == MAX_REFINE:
                break
            m = grid.m
            fv = f.view(*(m,) * d, -1)
            halves = [fv[a::2] if d == 1 else fv[a::2, b::2] for a in (0, 1) for b in ((0,) if d == 1 else (0, 1))]
            coarse = torch.stack([torch.logsumexp(c.reshape(-1, c.shape[-1]), 0) for c in halves]) + d * math.log(2)
            todo = (coarse - fine).abs().amax(0) > HALVING_RATIO * tol
            if not todo.any():
                break
            idx = idx[todo]
            grid = LatentGrid(grid.center[todo], grid.scale[todo], grid.lo[todo], grid.hi[todo], 2 * m - 1)
        return out


def _evaluate(log_f: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """log_f on z: (n, batch, d) in chunks along n, so n * batch stays near EVAL_CHUNK. Returns (n, batch)."""
    step = max(1, EVAL_CHUNK // z.shape[1])
    return torch.cat([log_f(z[i:i + step]) for i in range(0, z.shape[0], step)])


class LatentGrid:
    """A tensor grid of m points per axis in each point's whitened box.

    center: (batch, d), scale: (batch, d, d) lower-triangular, lo, hi: (batch, d) in whitened coordinates.
    ``z``: (m^d, batch, d) grid points; ``log_cell``: (m^d, batch) log trapezoid weights (cell volume in z).
    """

    def __init__(self, center, scale, lo, hi, m: int):
        self.center, self.scale, self.lo, self.hi, self.m = center, scale, lo, hi, m
        d = lo.shape[-1]
        u_axes = lo + (hi - lo) * torch.linspace(0.0, 1.0, m, dtype=lo.dtype, device=lo.device)[:, None, None]
        self.h = (hi - lo) / (m - 1)  # (batch, d) spacing in u
        log_edge = torch.zeros(m, dtype=lo.dtype, device=lo.device)
        log_edge[0] = log_edge[-1] = math.log(0.5)  # trapezoid end weights
        if d == 1:
            u, log_w = u_axes, log_edge[:, None]
        else:
            u = torch.stack(torch.broadcast_tensors(u_axes[:, None, :, 0], u_axes[None, :, :, 1]), -1)
            u, log_w = u.reshape(m * m, -1, 2), (log_edge[:, None] + log_edge[None, :]).reshape(-1, 1)
        self.u = u  # (n, batch, d)
        self.z = center + (scale @ u[..., None])[..., 0]
        log_det = torch.log(torch.diagonal(scale, dim1=-2, dim2=-1)).sum(-1)  # (batch,)
        self.log_cell = log_w + torch.log(self.h).sum(-1) + log_det


def _search_resolution(d: int) -> int:
    return 129 if d == 1 else 33


def _final_resolution(d: int, resolution: int | None) -> int:
    return resolution if resolution is not None else (513 if d == 1 else 81)


def adapt_latent_grid(log_f: Callable[[torch.Tensor], torch.Tensor], batch: int, d: int, dtype: torch.dtype,
                      device: torch.device, resolution: int | None = None, start: float = 10.0,
                      max_rounds: int = 30) -> LatentGrid:
    """A trapezoid grid covering where exp(log_f(z)) holds its mass (within LOG_MASS_CUTOFF nats of the peak).

    log_f: z (n, batch, d) -> (n, batch). integral exp(log_f) dz ~= exp(logsumexp(log_f(grid.z) + grid.log_cell, 0)).
    Three phases per point: locate the mass (grow / zoom an axis-aligned box until the mass spans many cells),
    whiten by the mass's mean and covariance, then widen the whitened box until the mass no longer touches its edge.
    """
    if d not in (1, 2):
        raise ValueError(f"quadrature needs a 1- or 2-D latent, got latent_dim={d}; use a Monte Carlo estimator")
    eye = torch.eye(d, dtype=dtype, device=device)
    center = torch.zeros(batch, d, dtype=dtype, device=device)
    scale = eye.expand(batch, d, d).clone()
    lo = torch.full((batch, d), -start, dtype=dtype, device=device)
    hi = -lo
    m = _search_resolution(d)

    def mass_extent(grid):
        f = _evaluate(log_f, grid.z).nan_to_num(nan=-math.inf)  # (n, batch)
        keep = (f >= f.max(0).values - LOG_MASS_CUTOFF)[..., None]
        in_lo = torch.where(keep, grid.u, math.inf).amin(0)  # (batch, d): the mass's extent in u
        in_hi = torch.where(keep, grid.u, -math.inf).amax(0)
        touch_lo, touch_hi = in_lo <= grid.lo + 0.5 * grid.h, in_hi >= grid.hi - 0.5 * grid.h
        return f, in_lo, in_hi, touch_lo & (grid.hi - grid.lo < 1e8), touch_hi & (grid.hi - grid.lo < 1e8)

    # 1. locate: a point is frozen once its mass is inside the box and spans at least m/4 cells on every axis
    active = torch.ones(batch, dtype=torch.bool, device=device)
    for _ in range(max_rounds):
        grid = LatentGrid(center, scale, lo, hi, m)
        f, in_lo, in_hi, touch_lo, touch_hi = mass_extent(grid)
        h, width = grid.h, hi - lo
        zoom = ~(touch_lo | touch_hi) & ((in_hi - in_lo) / h < m / 4)
        active = active & (touch_lo | touch_hi | zoom).any(-1)
        if not active.any():
            break
        upd = active[:, None]
        # grow a touched side by the box's width; zoom to the mass padded by two cells (its true edge lies within one)
        lo = torch.where(upd, torch.where(touch_lo, lo - width, torch.where(zoom, in_lo - 2 * h, lo)), lo)
        hi = torch.where(upd, torch.where(touch_hi, hi + width, torch.where(zoom, in_hi + 2 * h, hi)), hi)
    # 2. whiten by the mass's mean and covariance in u (plus each cell's own variance h^2 / 12, so it is never 0)
    p = torch.softmax(f, 0)[..., None]  # (n, batch, 1)
    mean_u = (p * grid.u).sum(0)  # (batch, d)
    du = grid.u - mean_u
    cov_u = (p[..., None] * du[..., :, None] * du[..., None, :]).sum(0) + torch.diag_embed(grid.h**2 / 12)
    center = center + (scale @ mean_u[..., None])[..., 0]
    scale = scale @ torch.linalg.cholesky(cov_u)
    lo = torch.full_like(lo, -start)
    hi = -lo
    # 3. widen: heavy or skewed tails may reach past +-start standard deviations
    for _ in range(max_rounds):
        _, _, _, touch_lo, touch_hi = mass_extent(LatentGrid(center, scale, lo, hi, m))
        if not (touch_lo | touch_hi).any():
            break
        width = hi - lo
        lo, hi = torch.where(touch_lo, lo - width / 2, lo), torch.where(touch_hi, hi + width / 2, hi)
    return LatentGrid(center, scale, lo, hi, _final_resolution(d, resolution))
