"""Mixture of experts: routing, expert GEMMs, expert parallelism and its all-to-all.

An MoE layer replaces the dense MLP of a decoder layer by ``experts`` routed experts of width
``expert_ffn``, of which each token uses ``top_k`` (Shazeer et al. 2017; GShard, Lepikhin et
al. 2020, Sec. 2), plus ``shared_experts`` experts every token uses (DeepSeekMoE, Dai et al.
2024, Sec. 3.2; DeepSeek-V3, arXiv:2412.19437, Sec. 2.1.2, Eq. 12-16). Layers follow
DeepSeek-V3 and GShard: the first ``first_dense_layers`` are dense, then every
``moe_every``-th layer is an MoE layer.

Parallel layout (Megatron-Core's "MoE parallel folding", Liu et al., arXiv:2504.14960):
the ``t * c * d`` ranks of one pipeline stage, which run attention as ``tp x cp x dp``,
run the experts as ``etp x ep x edp`` with

    edp = t * c * d / (ep * etp)      (expert data parallelism)

ranks ordered ``etp`` innermost, then ``ep``. Each rank holds ``experts / ep`` experts, each
split over ``etp`` ranks; expert weights, gradients and optimizer states are therefore sharded
``ep * etp`` ways and reduced (and, with ZeRO, partitioned) over the ``edp`` replicas. Tokens
enter the MoE block split over the tensor-parallel ranks (Megatron-Core requires sequence
parallelism with MoE and tp > 1), ``T_r = b s / (c t)`` per rank.

Per MoE layer and micro-batch, on the busiest rank (Megatron-Core's alltoall dispatcher):

* router: a ``T_r x h x experts`` GEMM and a softmax/top-k pass over the scores;
* dispatch: a permutation of the ``T_r * top_k`` token copies, an all-to-all over ``ep``, and
  with ``etp > 1`` an all-gather over ``etp``; combine is the mirror image;
* the routed experts: a grouped GEMM of ``experts / ep`` GEMMs with ``M_e`` tokens each,

      M_e = etp * T_r * top_k * ep / experts * load,

  timed by :mod:`compute`'s tile-and-wave model with that per-expert ``M`` -- this is what
  makes small per-expert batches slow (grouped-GEMM efficiency);
* the shared experts: a dense, tensor-parallel MLP of width ``shared_experts * expert_ffn``.

``load`` is the busiest rank's tokens over the even share: the load-imbalance factor, capped
by the capacity factor when one is set (tokens beyond an expert's capacity are dropped, as in
GShard Sec. 2.2 and Megatron-Core's ``moe_expert_capacity_factor`` without padding).

With node-limited routing (``route_domains``, DeepSeek-V3 Sec. 2.1.2 and 3.2.2) a token
crosses the scale-out fabric once per destination domain, at most ``route_domains`` times,
and is forwarded to its experts over the scale-up links there. Whether the all-to-alls
overlap computation (DualPipe) is the training job's choice (formulations.training).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import algorithms
from .collectives import Link, ring_all_gather, ring_reduce_scatter
from .parallelism import ranks_per_domain
from .topology import Fabric, link_for
from .transformer import FLOPS_PER_MAC, Dims, Op, elementwise, gemm, gemm_backward

#: Names of the dense MLP's kernels that an MoE layer replaces (:mod:`transformer`).
DENSE_MLP_OPS: tuple[str, ...] = ("fc1", "activation", "fc2")
#: Router scores: softmax (or sigmoid in DeepSeek-V3) and top-k read the scores and write
#: probabilities; backward reads probabilities and their gradient and writes one gradient.
ROUTER_ACCESSES = (2, 3)
#: Token permutation before dispatch and after combine: read and write each token copy.
PERMUTE_ACCESSES = (2, 2)
#: Activation kernels of one expert MLP: SwiGLU reads gate and up and writes one output
#: (backward: reads three, writes two); GeLU reads one, writes one (backward: 3).
EXPERT_ACTIVATION_ACCESSES = {True: (3, 5), False: (2, 3)}
#: All-to-alls per MoE layer and pass: dispatch and combine.
ALL_TO_ALLS_PER_PASS = 2


@dataclass(frozen=True)
class ExpertDims:
    """Symbols of an MoE layer and its expert-parallel layout."""

    experts: sp.Expr
    shared: sp.Expr  # shared experts (0 for none)
    top_k: sp.Expr
    ffn: sp.Expr  # width of one expert
    ep: sp.Expr  # expert-parallel ranks
    etp: sp.Expr  # expert tensor-parallel ranks
    load: sp.Expr  # busiest rank's tokens over the even share
    #: Node-limited routing (DeepSeek-V3 Sec. 2.1.2 and 3.2.2): each token goes to at most
    #: this many scale-up domains, crossing the scale-out fabric once per domain and reaching
    #: its experts there over the scale-up links. None: every routed copy travels alone.
    route_domains: sp.Expr | None = None

    @property
    def local_experts(self) -> sp.Expr:
        return self.experts / self.ep

    @property
    def remote_copies(self) -> sp.Expr:
        """Copies of one token that cross the scale-out fabric, per domain it reaches."""
        if self.route_domains is None:
            return self.top_k
        return sp.Min(self.top_k, self.route_domains)


def load_factor(imbalance: sp.Expr, capacity_factor: sp.Expr | None) -> sp.Expr:
    """Tokens of the busiest expert over the even share: the imbalance, capped by the
    capacity factor when tokens beyond capacity are dropped (None: dropless)."""
    if capacity_factor is None:
        return imbalance
    return sp.Min(imbalance, capacity_factor)


def dropped_fraction(imbalance: sp.Expr, capacity_factor: sp.Expr | None) -> sp.Expr:
    """Fraction of the busiest expert's tokens dropped by its capacity (0 when dropless)."""
    if capacity_factor is None:
        return sp.Integer(0)
    return sp.Max(0, 1 - capacity_factor / imbalance)


def tokens_per_rank(d: Dims) -> sp.Expr:
    """Tokens entering the MoE block on one rank: split over context and tensor parallel."""
    return d.tokens / d.t


def tokens_per_expert(d: Dims, x: ExpertDims) -> sp.Expr:
    """``M`` of each GEMM of the grouped expert GEMM on the busiest rank."""
    return x.etp * tokens_per_rank(d) * x.top_k * x.ep / x.experts * x.load


def token_copies(d: Dims, x: ExpertDims) -> sp.Expr:
    """Token copies the busiest rank's experts take per micro-batch: each of its tokens
    ``top_k`` times, scaled by the load factor, gathered over ``etp``."""
    return tokens_per_rank(d) * x.top_k * x.load * x.etp


def distinct_ranks_per_token(x: ExpertDims, domain_ranks: sp.Expr, top_k: int) -> sp.Expr:
    """Expected expert-parallel ranks one token's ``top_k`` experts sit on: a rank holding
    several of them receives the token once (DeepEP's dispatch sends one copy per rank and
    lists its local experts; DeepSeek-V3 Sec. 3.2.2). The experts are taken uniformly among
    those the token may reach -- all ranks, or with node-limited routing the ranks of
    ``route_domains`` scale-up domains (``domain_ranks`` expert-parallel ranks each) -- and a
    rank holding ``n`` of ``R`` reachable experts is missed with the hypergeometric
    probability ``prod_{i < k} (R - n - i) / (R - i)``. ``top_k`` is the model's (an integer:
    the number of factors)."""
    per_rank = x.local_experts
    ranks = x.ep if x.route_domains is None else sp.Min(x.ep, x.route_domains * domain_ranks)
    reachable = ranks * per_rank
    missed = sp.Integer(1)
    for i in range(top_k):
        missed *= (reachable - per_rank - i) / (reachable - i)
    return ranks * (1 - missed)


def _expert_shapes(d: Dims, x: ExpertDims) -> dict[str, tuple[sp.Expr, sp.Expr, sp.Expr]]:
    m_e = tokens_per_expert(d, x)
    return {
        "expert_fc1": (m_e, d.gate_factor * x.ffn / x.etp, d.h),
        "expert_fc2": (m_e, d.h, x.ffn / x.etp),
    }


def _shared_shapes(d: Dims, x: ExpertDims) -> dict[str, tuple[sp.Expr, sp.Expr, sp.Expr]]:
    width = x.shared * x.ffn
    return {
        "shared_fc1": (d.tokens, d.gate_factor * width / d.t, d.h),
        "shared_fc2": (d.tokens, d.h, width / d.t),
    }


def _router_shape(d: Dims, x: ExpertDims) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    return (tokens_per_rank(d), x.experts, d.h)


def moe_forward(d: Dims, x: ExpertDims, shared: bool = True) -> list[Op]:
    """Kernels of one MoE block's forward pass on the busiest rank, for one micro-batch.

    The same list serves training and inference (a decode step is a micro-batch of ``b``
    sequences of one token: ``s = 1``). Communication is in :func:`all_to_all_time`.
    """
    scores = tokens_per_rank(d) * x.experts
    copies = token_copies(d, x)
    act_in = EXPERT_ACTIVATION_ACCESSES[d.swiglu][0]
    experts = _expert_shapes(d, x)
    ops = [
        gemm("router", "layer", *_router_shape(d, x), d.e),
        elementwise("router_topk", "layer", scores, ROUTER_ACCESSES[0], d.e),
        elementwise("permute", "layer", copies * d.h, PERMUTE_ACCESSES[0], d.e),
        gemm("expert_fc1", "layer", *experts["expert_fc1"], d.e, x.local_experts),
        elementwise("expert_activation", "layer", copies * x.ffn / x.etp, act_in, d.e),
        gemm("expert_fc2", "layer", *experts["expert_fc2"], d.e, x.local_experts),
        elementwise("unpermute", "layer", copies * d.h, PERMUTE_ACCESSES[0], d.e),
    ]
    if shared:
        sh = _shared_shapes(d, x)
        ops += [
            gemm("shared_fc1", "layer", *sh["shared_fc1"], d.e),
            elementwise("shared_activation", "layer", d.tokens * x.shared * x.ffn / d.t,
                        act_in, d.e),
            gemm("shared_fc2", "layer", *sh["shared_fc2"], d.e),
        ]
    return ops


def moe_backward(d: Dims, x: ExpertDims, shared: bool = True) -> list[Op]:
    """Kernels of one MoE block's backward pass (the router's weight gradient included)."""
    scores = tokens_per_rank(d) * x.experts
    copies = token_copies(d, x)
    act_bwd = EXPERT_ACTIVATION_ACCESSES[d.swiglu][1]
    experts = _expert_shapes(d, x)
    ops: list[Op] = []
    if shared:
        sh = _shared_shapes(d, x)
        ops += [
            *gemm_backward("shared_fc2", "layer", *sh["shared_fc2"], d.e),
            elementwise("shared_activation.bwd", "layer", d.tokens * x.shared * x.ffn / d.t,
                        act_bwd, d.e),
            *gemm_backward("shared_fc1", "layer", *sh["shared_fc1"], d.e),
        ]
    ops += [
        elementwise("unpermute.bwd", "layer", copies * d.h, PERMUTE_ACCESSES[1], d.e),
        *gemm_backward("expert_fc2", "layer", *experts["expert_fc2"], d.e, x.local_experts),
        elementwise("expert_activation.bwd", "layer", copies * x.ffn / x.etp, act_bwd, d.e),
        *gemm_backward("expert_fc1", "layer", *experts["expert_fc1"], d.e, x.local_experts),
        elementwise("permute.bwd", "layer", copies * d.h, PERMUTE_ACCESSES[1], d.e),
        elementwise("router_topk.bwd", "layer", scores, ROUTER_ACCESSES[1], d.e),
        *gemm_backward("router", "layer", *_router_shape(d, x), d.e),
    ]
    return ops


def replace_mlp(ops: list[Op], moe_ops: list[Op]) -> list[Op]:
    """A dense layer's kernels with its MLP (fc1, activation, fc2, forward or backward)
    replaced by ``moe_ops`` at the place of the first of them."""
    out: list[Op] = []
    inserted = False
    for op in ops:
        if op.name.split(".")[0] in DENSE_MLP_OPS:
            if not inserted:
                out.extend(moe_ops)
                inserted = True
            continue
        out.append(op)
    if not inserted:
        raise ValueError("no dense MLP kernels to replace")
    return out


# -- parameters -------------------------------------------------------------------------------

def expert_parameters(h: sp.Expr, x: ExpertDims, gate_factor: int) -> sp.Expr:
    """Weights of the routed experts of one MoE layer (sharded over ep * etp)."""
    return x.experts * (gate_factor + 1) * h * x.ffn


def shared_expert_parameters(h: sp.Expr, x: ExpertDims, gate_factor: int) -> sp.Expr:
    """Weights of the shared experts of one MoE layer (tensor parallel like a dense MLP)."""
    return x.shared * (gate_factor + 1) * h * x.ffn


def router_parameters(h: sp.Expr, x: ExpertDims) -> sp.Expr:
    """The router's weights (replicated on every rank of the stage)."""
    return h * x.experts


def active_expert_parameters(h: sp.Expr, x: ExpertDims, gate_factor: int) -> sp.Expr:
    """Weights one token uses in one MoE block: its top-k routed experts, the shared ones and
    the router (the quantity behind DeepSeek-V3's "37B activated")."""
    per_expert = (gate_factor + 1) * h * x.ffn
    return (x.top_k + x.shared) * per_expert + router_parameters(h, x)


def forward_flops_per_token(h: sp.Expr, x: ExpertDims, gate_factor: int) -> sp.Expr:
    """Model FLOPs per token of one MoE block, forward: a multiply-accumulate per active
    weight."""
    return FLOPS_PER_MAC * active_expert_parameters(h, x, gate_factor)


# -- communication ----------------------------------------------------------------------------

def dispatch_bytes(d: Dims, x: ExpertDims) -> sp.Expr:
    """Bytes one rank sends (and the busiest receives) in one dispatch or combine
    all-to-all: its token copies, one hidden vector each."""
    return tokens_per_rank(d) * x.top_k * x.load * d.h * d.e


def all_to_all_time(size: sp.Expr, ranks: sp.Expr, inside: sp.Expr, up: Link, out: Link,
                    dedup: sp.Expr = sp.S.One) -> sp.Expr:
    """Pairwise all-to-all of ``size`` bytes per rank over ``ranks`` ranks, ``inside`` of them
    in each scale-up domain (formulations.algorithms: pairwise, n - 1 steps, (n-1)/n S).

    The share for peers in the same domain crosses the scale-up links, the rest the
    scale-out links; NCCL posts every send at once, so the two proceed concurrently and the
    slower one sets the time. With ``dedup`` < 1 (node-limited routing) only that fraction
    of the remote share crosses the scale-out fabric, and every remote copy is forwarded to
    its GPU over the scale-up links of the receiving domain (DeepSeek-V3 Sec. 3.2.2).
    """
    pairwise = algorithms.find("all_to_all", "pairwise")
    up_bytes = pairwise.volume(size * inside / ranks, inside)
    # The rest of the pairwise volume (n-1)/n S, written as one product.
    remote = (ranks - inside) / ranks * size
    out_bytes = remote * dedup
    if dedup != 1:
        up_bytes += remote * (inside - 1) / inside
    up_time = (inside - 1) * up.latency + up_bytes / up.rate
    out_time = (ranks - inside) * out.latency + out_bytes / out.rate
    return sp.Max(up_time, out_time, evaluate=False)


def expert_parallel_time(d: Dims, x: ExpertDims, stride: sp.Expr, domain: sp.Expr, up: Link,
                         out: Link, fabric: Fabric | None = None) -> sp.Expr:
    """Communication of one MoE block in one pass (forward or backward) on the busiest rank:
    dispatch and combine all-to-alls over ``ep`` ranks whose members are ``stride`` ranks
    apart, and with expert tensor parallelism the all-gather of the dispatched tokens and the
    reduce-scatter of the experts' outputs over ``etp`` neighbouring ranks."""
    size = dispatch_bytes(d, x)
    inside = ranks_per_domain(x.ep, stride, domain)
    across = link_for(out, fabric, x.ep * stride)
    a2a = all_to_all_time(size, x.ep, inside, up, across, x.remote_copies / x.top_k)
    etp = ring_all_gather(size * x.etp, x.etp, up) + ring_reduce_scatter(size * x.etp, x.etp,
                                                                        up)
    return ALL_TO_ALLS_PER_PASS * a2a + etp


# -- memory -----------------------------------------------------------------------------------

def activation_bytes(d: Dims, x: ExpertDims, linear_input_bytes: sp.Expr | None = None,
                     recompute_activation: bool = False,
                     input_copies: sp.Expr | None = None) -> sp.Expr:
    """Bytes one MoE block keeps for backward per micro-batch on the busiest rank: the router
    scores, the dispatched token copies (input of the expert fc1), the experts' fc1 outputs
    and fc2 inputs, and the same for the shared experts (Korthikanti et al. 2022 Sec. 4.1
    applied to the grouped GEMMs); the inputs of fc1 and fc2 at ``linear_input_bytes`` (one
    byte in FP8 training, formulations.memory). With ``recompute_activation`` the activation's
    output (the fc2 input) is recomputed in backward from its input, which is then cached at
    the linear-input width (DeepSeek-V3, arXiv:2412.19437, Sec. 3.3.4 (2)). ``input_copies``:
    the token copies whose fc1 input is kept, where a rank keeps one per token rather than one
    per routed expert (:func:`distinct_ranks_per_token`); default :func:`token_copies`."""
    lin = d.e if linear_input_bytes is None else linear_input_bytes
    act_in, fc2_in = (lin, 0) if recompute_activation else (d.e, lin)
    copies = token_copies(d, x)
    inputs = copies if input_copies is None else input_copies
    routed = inputs * lin * d.h + copies * (act_in * d.gate_factor * x.ffn / x.etp
                                            + fc2_in * x.ffn / x.etp)
    shared = d.tokens * x.shared * x.ffn / d.t * (act_in * d.gate_factor + fc2_in)
    return d.e * tokens_per_rank(d) * x.experts + routed + shared


def stage_moe_layers(stage_layers: sp.Expr, moe_every: sp.Expr, moe_layers: sp.Expr
                     ) -> sp.Expr:
    """MoE layers on the stage that holds most of them: every ``moe_every``-th of its
    ``stage_layers`` layers, at most all of the model's MoE layers (a late stage of DeepSeek-V3
    is all MoE; the first holds its dense layers)."""
    return sp.Min(sp.ceiling(stage_layers / moe_every), moe_layers)


def stage_dense_layers(stage_layers: sp.Expr, moe_every: sp.Expr, moe_layers: sp.Expr
                       ) -> sp.Expr:
    """The other layers of that stage, ``stage_layers`` minus :func:`stage_moe_layers`,
    written as one maximum so that it stays a single non-negative table when compiled."""
    return sp.Max(stage_layers - sp.ceiling(stage_layers / moe_every),
                  stage_layers - moe_layers)
