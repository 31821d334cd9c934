"""A Hugging Face ``config.json`` mapped onto the fields of a case's ``[model]`` section.

Families read (by ``model_type``): ``llama`` (Llama 2, 3, 3.1), ``mistral``, ``mixtral``,
``qwen2``, ``qwen2_moe``, ``qwen3``, ``qwen3_moe``, ``deepseek_v3`` and ``gpt_oss``. The key
names and their meaning follow the ``transformers`` configuration classes of those families
(``LlamaConfig``, ``MixtralConfig``, ``Qwen2MoeConfig``, ``DeepseekV3Config``,
``GptOssConfig``; the per-layer rules quoted below are those of their modelling code).

Every key of the file falls in one of three classes, and any other key is an error naming it:

- **mapped** onto a model field (``num_hidden_layers`` -> ``layers``, ...);
- **without effect** on any quantity perfcost models: token ids, initialisation, norm epsilon,
  the rotary base and its scaling (RoPE and YaRN change the angles, not FLOPs or weights),
  router loss coefficients, routing score functions, storage dtype and quantisation (the
  case's precision decides bytes per weight), GPT-OSS's SwiGLU clamp;
- **checked**: a feature perfcost does not represent is refused unless it cannot matter here.

Decisions on the features perfcost does not represent (each is small where it is accepted):

- **Sliding-window attention** on every layer (Mistral 7B v0.1, Qwen with
  ``use_sliding_window``) is accepted only while ``model.seq_len`` is at most the window --
  then the window never cuts anything; otherwise the error says to lower ``model.seq_len``.
  A window on *some* layers only (GPT-OSS alternates 128-token windows with full attention)
  is modelled as full attention on every layer: weights are unchanged, the windowed layers'
  attention core and KV cache are overestimated (an upper bound), and the model's
  description says so.
- **Bias vectors** on some projections only (Qwen2's Q/K/V biases, GPT-OSS's attention,
  router and expert biases) are left out: they are under 0.1 % of the weights, and perfcost's
  ``biases`` flag means biases on every linear layer and norm (GPT-2), which is set only
  when a config has both ``attention_bias`` and ``mlp_bias``.
- Qwen3's per-head Q/K norms (2 x head_dim weights a layer), Qwen2-MoE's shared-expert gate
  (hidden weights a layer) and GPT-OSS's attention sinks (one scalar per head) are left out for
  the same reason.
- DeepSeek-V3's group-limited routing (``topk_group`` of ``n_group`` expert groups) is
  node-limited routing when a group is a node: ``route_domains = topk_group``, as the built-in
  entry has it; its multi-token prediction layers become ``mtp_modules``.
- ``seq_len`` is ``max_position_embeddings``, the longest context the model supports; set
  ``model.seq_len`` in the case for the length a job runs at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perfcost.solver.case.errors import MISSING, CaseError

#: Keys of every family that change no modelled quantity (see the module docstring).
NO_EFFECT = frozenset({
    "_name_or_path", "architectures", "auto_map", "model_type", "torch_dtype", "dtype",
    "transformers_version", "bos_token_id", "eos_token_id", "pad_token_id",
    "initializer_range", "rms_norm_eps", "use_cache", "rope_theta", "rope_scaling",
    "rope_parameters", "pretraining_tp", "quantization_config", "output_router_logits",
    "router_aux_loss_coef", "router_jitter_noise", "norm_topk_prob", "use_qk_norm",
})
#: Further keys without effect, by family.
NO_EFFECT_BY_FAMILY: dict[str, frozenset[str]] = {
    "deepseek_v3": frozenset({"routed_scaling_factor", "scoring_func", "topk_method",
                              "aux_loss_alpha", "seq_aux", "ep_size"}),
    "gpt_oss": frozenset({"swiglu_limit", "initial_context_length"}),
}
#: Activation functions of a gated (SwiGLU) MLP.
SWIGLU_ACTIVATIONS = ("silu", "swish")
FAMILIES = ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe",
            "deepseek_v3", "gpt_oss")
LAYER_TYPES = ("full_attention", "sliding_attention")


@dataclass(frozen=True)
class Window:
    """A sliding attention window of ``size`` tokens on ``layers`` of the model's layers."""

    size: int
    layers: int


class _Reader:
    """Reads keys of one config, checking each value and remembering which keys it read."""

    def __init__(self, config: dict[str, Any], field: str, file_name: str) -> None:
        self.config = config
        self.field = field
        self.file_name = file_name
        self.read: set[str] = set()

    def error(self, key: str, value: Any, expected: str) -> CaseError:
        return CaseError(f"{self.field}: {self.file_name}: {key}", value, expected)

    def raw(self, key: str, default: Any = MISSING) -> Any:
        self.read.add(key)
        value = self.config.get(key)
        if value is None:
            if default is MISSING:
                raise self.error(key, MISSING, "expected it in a config of model_type "
                                 f"'{self.config.get('model_type')}'")
            return default
        return value

    def integer(self, key: str, default: Any = MISSING, minimum: int = 1) -> Any:
        """An integer of at least ``minimum``, or ``default`` where the key is absent."""
        if self.config.get(key) is None and default is not MISSING:
            return self.raw(key, default)
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, value, f"expected an integer of at least {minimum}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, value, "expected true or false")
        return value

    def ignore(self, *keys: str) -> None:
        self.read.update(keys)


def model_table(config: dict[str, Any], field: str, file_name: str, label: str
                ) -> tuple[dict[str, Any], Window | None]:
    """The ``[model]`` table of a Hugging Face config, and its sliding window if it has one
    (:func:`check_window` judges the window against the case's final ``seq_len``)."""
    r = _Reader(config, field, file_name)
    family = config.get("model_type")
    if family not in FAMILIES:
        raise r.error("model_type", family if family is not None else MISSING,
                      f"expected one of {', '.join(FAMILIES)} (a Hugging Face config.json "
                      "of a model perfcost can map)")
    table = _dense(r, label, family)
    if family in ("mixtral", "gpt_oss"):
        table.update(_mixtral_experts(r, family))
    elif family in ("qwen2_moe", "qwen3_moe"):
        table.update(_qwen_experts(r, family, table["layers"]))
    elif family == "deepseek_v3":
        table.update(_deepseek(r, table))
    window = _window(r, family, table["layers"])
    if window is not None and window.layers < table["layers"]:
        table["description"] += (f"; its sliding window ({window.size} tokens on "
                                 f"{window.layers} of {table['layers']} layers) is modelled as "
                                 "full attention (an upper bound)")
    unknown = [k for k in config if k not in r.read and k not in NO_EFFECT
               and k not in NO_EFFECT_BY_FAMILY.get(family, ())]
    if unknown:
        key = unknown[0]
        raise r.error(key, config[key], f"a key perfcost cannot map for model_type "
                      f"'{family}'; expected only the keys it maps or knows to change nothing "
                      "(perfcost.solver.case.hf_config)")
    return table, window


def check_window(window: Window | None, table: dict[str, Any], field: str,
                 file_name: str) -> None:
    """A window on every layer is exact only while no sequence is longer than it."""
    if window is None or window.layers < table.get("layers", 0):
        return
    seq_len = table.get("seq_len")
    if isinstance(seq_len, int) and seq_len > window.size:
        raise CaseError(f"{field}: {file_name}: sliding_window", window.size,
                        f"expected no window shorter than model.seq_len = {seq_len}: perfcost "
                        "models full causal attention; set model.seq_len to at most "
                        f"{window.size}, where the window cuts nothing")


def _dense(r: _Reader, label: str, family: str) -> dict[str, Any]:
    """The fields every family has: sizes, attention heads, vocabulary, MLP kind."""
    heads = r.integer("num_attention_heads")
    hidden = r.integer("hidden_size")
    table: dict[str, Any] = {
        "name": label,
        "description": f"{label} (Hugging Face config.json, model_type '{family}')",
        "source": f"Hugging Face config.json read from {r.file_name}",
        "layers": r.integer("num_hidden_layers"),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": r.integer("num_key_value_heads", heads),
        "ffn": r.integer("intermediate_size"),
        "ffn_kind": "swiglu",
        "vocab": r.integer("vocab_size"),
        "seq_len": r.integer("max_position_embeddings"),
        "tied_embeddings": r.flag("tie_word_embeddings", False),
        "biases": r.flag("attention_bias", False) and r.flag("mlp_bias", False),
        "positions": "rope",
    }
    r.ignore("attention_bias", "mlp_bias")
    act = r.raw("hidden_act", "silu")
    if act not in SWIGLU_ACTIVATIONS:
        raise r.error("hidden_act", act, f"expected one of {', '.join(SWIGLU_ACTIVATIONS)}: "
                      "these families have a gated MLP, modelled as SwiGLU")
    dropout = r.raw("attention_dropout", 0.0)
    if dropout != 0:
        raise r.error("attention_dropout", dropout, "expected 0: perfcost's dropout is "
                      "GPT's (attention probabilities and both residual branches)")
    head_dim = r.integer("head_dim", None)
    if head_dim is not None and head_dim * heads != hidden:
        table["head_dim"] = head_dim
    return table


def _mixtral_experts(r: _Reader, family: str) -> dict[str, Any]:
    """Mixtral and GPT-OSS: every layer's MLP is ``num_local_experts`` experts of width
    ``intermediate_size``, ``num_experts_per_tok`` of them per token, no shared expert."""
    top_k = r.integer("num_experts_per_tok")
    if family == "gpt_oss":
        other = r.integer("experts_per_token", top_k)
        if other != top_k:
            raise r.error("experts_per_token", other,
                          f"expected num_experts_per_tok = {top_k} (the same count)")
    ffn = r.integer("intermediate_size")
    return {"experts": r.integer("num_local_experts"), "top_k": top_k, "expert_ffn": ffn}


def _qwen_experts(r: _Reader, family: str, layers: int) -> dict[str, Any]:
    """Qwen2-MoE and Qwen3-MoE: a layer is MoE when it is not in ``mlp_only_layers`` and
    ``(index + 1) % decoder_sparse_step == 0``; Qwen2-MoE adds one shared expert of width
    ``shared_expert_intermediate_size``."""
    expert_ffn = r.integer("moe_intermediate_size")
    out: dict[str, Any] = {"experts": r.integer("num_experts"),
                           "top_k": r.integer("num_experts_per_tok"), "expert_ffn": expert_ffn}
    step = r.integer("decoder_sparse_step", 1)
    dense = r.raw("mlp_only_layers", [])
    if not isinstance(dense, list) or dense != list(range(len(dense))) or (dense and step > 1):
        raise r.error("mlp_only_layers", dense, "expected [] or the first layers [0, 1, ..., "
                      "k-1] with decoder_sparse_step = 1: perfcost places dense layers first")
    out["moe_every"] = step
    if step > 1:
        # Layers step-1, 2*step-1, ...: the last of every group of step (moe_layers counts them).
        out["moe_layers"] = layers // step
    else:
        out["first_dense_layers"] = len(dense)
    if family == "qwen2_moe":
        shared = r.integer("shared_expert_intermediate_size", 0, minimum=0)
        if shared % expert_ffn:
            raise r.error("shared_expert_intermediate_size", shared,
                          f"expected a multiple of moe_intermediate_size = {expert_ffn}: "
                          "perfcost counts shared experts of the routed experts' width")
        out["shared_experts"] = shared // expert_ffn
    return out


def _deepseek(r: _Reader, table: dict[str, Any]) -> dict[str, Any]:
    """DeepSeek-V3: multi-head latent attention, ``n_shared_experts`` + ``n_routed_experts``
    experts on layers ``index >= first_k_dense_replace`` with ``index % moe_layer_freq == 0``,
    group-limited routing."""
    out: dict[str, Any] = {
        "experts": r.integer("n_routed_experts"),
        "shared_experts": r.integer("n_shared_experts", 0, minimum=0),
        "top_k": r.integer("num_experts_per_tok"),
        "expert_ffn": r.integer("moe_intermediate_size"),
        "moe_every": r.integer("moe_layer_freq", 1),
        "first_dense_layers": r.integer("first_k_dense_replace", 0, minimum=0),
        "kv_lora_rank": r.integer("kv_lora_rank"),
        "qk_nope_head_dim": r.integer("qk_nope_head_dim"),
        "qk_rope_head_dim": r.integer("qk_rope_head_dim"),
        "v_head_dim": r.integer("v_head_dim"),
        "mtp_modules": r.integer("num_nextn_predict_layers", 0, minimum=0),
    }
    q_lora = r.integer("q_lora_rank", None)
    if q_lora is not None:
        out["q_lora_rank"] = q_lora
    groups = r.integer("n_group", None)
    limit = r.integer("topk_group", None)
    if groups is not None and limit is not None and limit < groups:
        out["route_domains"] = limit
    # Latent attention gives every head its own keys and values.
    table["kv_heads"] = table["heads"]
    table.pop("head_dim", None)
    return out


def _window(r: _Reader, family: str, layers: int) -> Window | None:
    """The sliding window, from ``layer_types`` where the config lists them, else from the
    family's rule (Mistral: every layer; Qwen: layers from ``max_window_layers`` on when
    ``use_sliding_window``; GPT-OSS: every other layer)."""
    size = r.integer("sliding_window", None)
    use = r.flag("use_sliding_window", family in ("mistral", "mixtral", "gpt_oss"))
    first = r.integer("max_window_layers", 0, minimum=0)
    types = r.raw("layer_types", None)
    if types is not None:
        if (not isinstance(types, list) or len(types) != layers
                or any(t not in LAYER_TYPES for t in types)):
            raise r.error("layer_types", types, f"expected a list of {layers} entries, each "
                          f"one of {', '.join(LAYER_TYPES)}")
        windowed = types.count("sliding_attention")
    elif family.startswith("qwen"):
        windowed = max(layers - first, 0) if use else 0
    elif family == "gpt_oss":
        windowed = (layers + 1) // 2  # GptOssConfig's default: every other layer, from the first
    else:
        windowed = layers if use else 0
    if windowed and size is None and types is not None:
        raise r.error("sliding_window", MISSING, "expected the window length of the "
                      "layers that layer_types marks 'sliding_attention'")
    if size is None or windowed == 0:
        return None
    return Window(size, windowed)
