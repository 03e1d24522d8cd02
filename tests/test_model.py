"""PromptIR: official names, shapes and parameter count; same outputs and gradients as the official-style
reference, and the plain blocks the same as the fast kernels; checkpoints load (Lightning, plain, ours) or
fail naming the problem; any image size works (pad_to_multiple)."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import torch.nn.functional as F

from benchmarks.official_promptir import LayerNorm as OfficialLayerNorm
from benchmarks.official_promptir import OfficialPromptIR
from hw4lib import kernels
from hw4lib.kernels import _GatedGelu, _TransposedAttention
from hw4lib.model import (
    DEAD_LAYERS,
    PAD_MULTIPLE,
    PRESETS,
    Attention,
    FeedForward,
    LayerNorm,
    PromptIR,
    build_model,
    count_parameters,
    pad_to_multiple,
)
from hw4lib.runs import load_model

FULL_PARAMETERS = (
    35_376_967  # official 35,592,263 minus the 215,296 of the six dead layers (architecture notes)
)
# a small config with several heads at every level, so the multi-head code paths are exercised
SMALL = dict(
    dim=16, num_blocks=(1, 1, 1, 2), num_refinement_blocks=1, heads=(2, 2, 4, 8),
    prompt_dims=(16, 32, 64), prompt_sizes=(16, 8, 4),
)  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny workloads: one thread is as fast, and far faster when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def full_model() -> PromptIR:
    torch.manual_seed(0)
    return PromptIR()


def _official_shapes(shared_dir) -> dict:
    return json.loads((shared_dir / "reference" / "promptir_state_dict_shapes.json").read_text())


def _with_random_temperatures(*models: torch.nn.Module) -> None:
    """Same non-trivial temperatures in each model (they start at 1, which hides a wrong temperature grad)."""
    generator = torch.Generator().manual_seed(1)
    names = [n for n, _ in models[0].named_parameters() if n.endswith("temperature")]
    with torch.no_grad():
        for name in names:
            value = torch.rand(models[0].get_parameter(name).shape, generator=generator) + 0.5
            for model in models:
                model.get_parameter(name).copy_(value)


# ---- architecture ---------------------------------------------------------------------------------------


def test_full_model_has_official_parameter_count_and_shapes(full_model):
    assert count_parameters(full_model) == FULL_PARAMETERS
    shapes = {name: tuple(t.shape) for name, t in full_model.state_dict().items()}
    assert shapes["patch_embed.proj.weight"] == (48, 3, 3, 3)
    assert shapes["prompt3.prompt_param"] == (1, 5, 320, 16, 16)
    assert shapes["prompt1.linear_layer.weight"] == (5, 96)
    assert shapes["encoder_level1.3.ffn.project_in.weight"] == (254, 48, 1, 1)
    assert shapes["latent.7.attn.temperature"] == (8, 1, 1)
    assert shapes["noise_level3.attn.qkv.weight"] == (2112, 704, 1, 1)
    assert shapes["reduce_noise_level3.weight"] == (192, 704, 1, 1)
    assert shapes["reduce_noise_level2.weight"] == (192, 320, 1, 1)
    assert shapes["reduce_noise_level1.weight"] == (96, 160, 1, 1)
    assert shapes["reduce_chan_level3.weight"] == (192, 288, 1, 1)
    assert shapes["up4_3.body.0.weight"] == (384, 192, 3, 3)
    assert shapes["refinement.3.norm2.body.bias"] == (96,)
    assert shapes["output.weight"] == (3, 96, 3, 3)
    assert not set(DEAD_LAYERS) & set(shapes)
    assert count_parameters(full_model, trainable_only=True) == FULL_PARAMETERS


def test_full_state_dict_is_the_official_one_without_dead_layers(full_model, shared_dir):
    official = _official_shapes(shared_dir)
    expected = [(n, s) for n, s in official["state_dict"].items() if n not in official["dead_layers"]]
    assert [
        (n, list(t.shape)) for n, t in full_model.state_dict().items()
    ] == expected  # names, shapes, order
    assert official["parameters_without_dead_layers"] == FULL_PARAMETERS


def test_official_style_reference_has_the_full_official_state_dict(shared_dir):
    official = _official_shapes(shared_dir)
    shapes = {n: list(t.shape) for n, t in OfficialPromptIR().state_dict().items()}
    assert shapes == official["state_dict"]
    assert count_parameters(OfficialPromptIR()) == official["total_parameters"]


def test_presets_and_overrides():
    assert set(PRESETS) >= {"full", "small", "tiny"}
    tiny = build_model("tiny", prompt_len=3)
    assert tiny.prompt2.prompt_param.shape[1] == 3
    assert tiny.config["prompt_len"] == 3 and tiny.config["dim"] == PRESETS["tiny"]["dim"]
    assert count_parameters(build_model("tiny")) < count_parameters(build_model("small")) < FULL_PARAMETERS
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        build_model("huge")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dim=15), "dim must be even"),
        (dict(dim=16, heads=(1, 2, 3, 8)), "cannot be split into 3 attention heads"),
        (dict(num_blocks=(1, 1, 1)), "need 4 entries"),
        (dict(LayerNorm_type="Batch"), "LayerNorm_type"),
    ],
)
def test_bad_configs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_model("tiny", **kwargs)


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        build_model("tiny")(torch.rand(3, 32, 32))


# ---- same maths as the official ---------------------------------------------------------------------------


def test_full_model_matches_official_reference_via_lightning_checkpoint(tmp_path):
    torch.manual_seed(0)
    official = OfficialPromptIR().eval()
    path = tmp_path / "epoch=119.ckpt"
    torch.save(
        {
            "state_dict": {f"net.{n}": t for n, t in official.state_dict().items()},  # dead layers included
            "epoch": 119,
            "hyper_parameters": {
                "opt": argparse.Namespace(lr=2e-4)
            },  # not weights-only loadable, as Lightning's
        },
        path,
    )
    model = load_model(path)
    assert not model.training
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(x) - official(x)).abs().max().item()
    assert diff < 1e-4


def test_gradients_match_official_reference():
    torch.manual_seed(0)
    official, model = OfficialPromptIR(**SMALL), PromptIR(**SMALL)
    model.load_state_dict({n: t for n, t in official.state_dict().items() if n not in DEAD_LAYERS})
    _with_random_temperatures(official, model)
    x, target = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    for net in (official, model):
        F.mse_loss(net(x), target).backward()
    reference = dict(official.named_parameters())
    for name, param in model.named_parameters():
        expected = reference[name].grad
        scale = expected.abs().max().item() + 1e-12
        assert (param.grad - expected).abs().max().item() / scale < 1e-4, name


def test_attention_and_gate_gradients_pass_gradcheck():
    generator = torch.Generator().manual_seed(0)
    qkv = torch.randn(2, 12, 3, 4, dtype=torch.double, generator=generator)
    temperature = torch.rand(2, 1, 1, dtype=torch.double, generator=generator) + 0.5
    for layout in (torch.contiguous_format, torch.channels_last):
        inputs = (qkv.contiguous(memory_format=layout).requires_grad_(), temperature.clone().requires_grad_())
        assert torch.autograd.gradcheck(
            lambda a, t: _TransposedAttention.apply(a, t, 2), inputs, fast_mode=True
        )
    x = torch.randn(2, 6, 3, 5, dtype=torch.double, generator=generator).requires_grad_()
    assert torch.autograd.gradcheck(_GatedGelu.apply, (x,), fast_mode=True)


def _fast_and_plain(**kwargs) -> tuple[PromptIR, PromptIR]:
    """The default (fast) model and a plain one with the same weights, temperatures not all ones."""
    torch.manual_seed(0)
    fast, plain = PromptIR(**SMALL, **kwargs), PromptIR(**SMALL, **kwargs, fast=False)
    plain.load_state_dict(fast.state_dict())
    _with_random_temperatures(fast, plain)
    return fast, plain


def _run(model: PromptIR, autocast: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Output and parameter gradients of an MSE step on a fixed batch whose sides need padding."""
    generator = torch.Generator().manual_seed(2)
    x, target = torch.rand(2, 3, 21, 27, generator=generator), torch.rand(2, 3, 21, 27, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(x).float()
    F.mse_loss(out, target).backward()
    return out.detach(), [p.grad for p in model.parameters()]


def _no_kernels(*args, **kwargs):
    raise AssertionError("the plain model called a hand-written kernel")


def test_the_fast_kernels_are_the_default_and_not_part_of_the_config():
    model, plain = build_model("tiny"), build_model("tiny", fast=False)
    blocks = [m for m in model.modules() if isinstance(m, (Attention, FeedForward))]
    assert blocks and all(m.fast for m in blocks)
    assert not any(m.fast for m in plain.modules() if isinstance(m, (Attention, FeedForward)))
    assert plain.config == model.config and "fast" not in model.config
    assert plain.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("channels_last", [True, False])
def test_plain_and_fast_models_give_the_same_outputs_and_gradients(channels_last, monkeypatch):
    fast, plain = _fast_and_plain(channels_last=channels_last)
    out_fast, grads_fast = _run(fast)
    monkeypatch.setattr(kernels, "transposed_attention", _no_kernels)
    monkeypatch.setattr(kernels, "gated_gelu", _no_kernels)
    out_plain, grads_plain = _run(plain)
    assert (out_fast - out_plain).abs().max().item() < 1e-5 * out_plain.abs().max().item()
    for (name, _), got, expected in zip(plain.named_parameters(), grads_fast, grads_plain, strict=True):
        # temperature gradients are sums of many cancelling terms: they agree the least
        assert (got - expected).abs().max().item() < 1e-4 * expected.abs().max().item(), name


def test_fast_kernels_are_as_accurate_as_the_plain_code_under_bfloat16_autocast():
    fast, plain = _fast_and_plain()
    reference = _fast_and_plain()[1]  # the plain model in float32
    x = torch.rand(2, 3, 21, 27, generator=torch.Generator().manual_seed(2))  # _run's input
    runs = {"fast": _run(fast, autocast=True), "plain": _run(plain, autocast=True)}
    out_ref, grads_ref = _run(reference)
    correction = out_ref - x  # compare what the network adds: the input itself passes in float32
    all_ref = torch.cat([g.flatten() for g in grads_ref])
    errors = {}
    for name, (out, grads) in runs.items():
        all_grads = torch.cat([g.flatten() for g in grads])
        errors[name] = (
            (out - x - correction).abs().max().item() / correction.abs().max().item(),
            ((all_grads - all_ref).norm() / all_ref.norm()).item(),  # all gradients as one vector
        )
        for (param, _), got, expected in zip(reference.named_parameters(), grads, grads_ref, strict=True):
            assert (got - expected).norm() < 0.35 * expected.norm(), (name, param)  # temperatures: loosest
    (out_fast, grad_fast), (out_plain, grad_plain) = errors["fast"], errors["plain"]
    assert out_fast < 0.05 and grad_fast < 0.05  # bfloat16 keeps ~3 significant digits
    assert out_fast < 2 * out_plain and grad_fast < 2 * grad_plain, errors
    difference = (runs["fast"][0] - runs["plain"][0]).abs().max().item()
    assert difference < 0.02 * correction.abs().max().item()


def test_pad_to_multiple_reflects_a_3d_tensor():
    x = torch.arange(30.0).reshape(1, 5, 6)  # (C, H, W); row r holds 6r .. 6r + 5
    p = pad_to_multiple(x, 4)  # 5 x 6 -> 8 x 8: pads 3 and 2 are smaller than the sides, so a mirror
    assert p.shape == (1, 8, 8)
    assert torch.equal(p[..., :5, :6], x)
    assert p[0, 0].tolist() == [0, 1, 2, 3, 4, 5, 4, 3]  # the edge pixel is not repeated
    assert p[0, :, 0].tolist() == [0, 6, 12, 18, 24, 18, 12, 6]
    assert p[0, 7].tolist() == [6, 7, 8, 9, 10, 11, 10, 9]  # row 7 mirrors row 1
    assert pad_to_multiple(torch.zeros(3, 9, 16)).shape == (3, 16, 16) and PAD_MULTIPLE == 8


def test_pad_to_multiple_reflects_each_image_of_a_4d_batch():
    x = torch.arange(18.0).reshape(2, 1, 3, 3)  # image 1 is image 0 + 9
    p = pad_to_multiple(x, 4)
    assert p.shape == (2, 1, 4, 4)
    assert p[0, 0].tolist() == [[0, 1, 2, 1], [3, 4, 5, 4], [6, 7, 8, 7], [3, 4, 5, 4]]
    assert torch.equal(p[1], p[0] + 9)


def test_pad_to_multiple_replicates_when_a_side_is_too_small_to_mirror():
    x = torch.arange(6.0).reshape(1, 1, 3, 2)  # width 2 needs a pad of 2: a mirror would need width 3
    p = pad_to_multiple(x, 4)
    assert p[0, 0].tolist() == [[0, 1, 1, 1], [2, 3, 3, 3], [4, 5, 5, 5], [4, 5, 5, 5]]
    assert pad_to_multiple(x[0], 4).tolist() == p[0].tolist()  # (C, H, W) alike


def test_pad_to_multiple_keeps_divisible_tensors_and_other_ranks():
    x = torch.rand(2, 3, 3, 16, 8)  # sides already divide by 8: nothing to do
    assert pad_to_multiple(x) is x
    y = torch.rand(2, 2, 1, 5, 7)  # (B, T, C, H, W): every (C, H, W) slice padded alike
    p = pad_to_multiple(y)
    assert p.shape == (2, 2, 1, 8, 8) and torch.equal(p[1, 0], pad_to_multiple(y[1, 0]))
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        pad_to_multiple(torch.zeros(5))


@pytest.mark.parametrize("kind", ["WithBias", "BiasFree"])
def test_layernorm_matches_official(kind):
    ours, official = LayerNorm(8, kind), OfficialLayerNorm(8, kind)
    with torch.no_grad():
        ours.body.weight.uniform_(0.5, 1.5)
        official.body.weight.copy_(ours.body.weight)
        if kind == "WithBias":
            ours.body.bias.uniform_(-1, 1)
            official.body.bias.copy_(ours.body.bias)
    x = torch.randn(2, 8, 5, 7) * 3 + 1
    torch.testing.assert_close(ours(x), official(x), atol=1e-5, rtol=1e-5)


def test_memory_layout_does_not_change_the_output():
    torch.manual_seed(0)
    last, first = build_model("tiny"), build_model("tiny", channels_last=False)
    first.load_state_dict(last.state_dict())
    x = torch.rand(2, 3, 40, 24)
    with torch.no_grad():
        torch.testing.assert_close(last(x), first(x), atol=1e-5, rtol=1e-5)


# ---- checkpoints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 53), (250, 333), (5, 7), (64, 64)])
def test_any_size_gives_a_same_size_output(size):
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_odd_sizes_are_reflection_padded_then_cropped():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        padded = model(F.pad(x, (0, 3, 0, 3), mode="reflect"))  # 40 x 56: no padding inside
        torch.testing.assert_close(model(x), padded[..., :37, :53])


def test_tiny_preset_trains_with_finite_gradients():
    torch.manual_seed(0)
    model = build_model("tiny")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(2, 3, 32, 32)
    target = x.clamp(0.1, 0.9)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = F.l1_loss(model(x), target)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_prompt_weights_are_distributions_over_components():
    torch.manual_seed(0)
    model = build_model("tiny")
    assert model.last_prompt_weights == {}
    model(torch.rand(3, 3, 32, 32))
    weights = model.last_prompt_weights
    assert sorted(weights) == ["prompt1", "prompt2", "prompt3"]
    for w in weights.values():
        assert w.shape == (3, PRESETS["tiny"]["prompt_len"]) and not w.requires_grad
        torch.testing.assert_close(w.sum(dim=1), torch.ones(3))
        assert (w > 0).all()


def test_prompt_free_ablation_runs_without_prompt_modules():
    model = build_model("tiny", decoder=False)
    names = model.state_dict().keys()
    assert not any(n.startswith(("prompt", "noise_level")) for n in names)
    out = model(torch.rand(1, 3, 24, 24))
    assert out.shape == (1, 3, 24, 24) and model.last_prompt_weights == {}


def test_runs_under_bfloat16_autocast():
    torch.manual_seed(0)
    official, model = OfficialPromptIR(**SMALL), PromptIR(**SMALL)
    model.load_state_dict({n: t for n, t in official.state_dict().items() if n not in DEAD_LAYERS})
    x = torch.rand(2, 3, 16, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, expected = model(x), official(x)
    out.float().mean().backward()
    assert (out.float() - expected.float()).abs().max().item() < 0.05  # bfloat16 keeps ~3 digits
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_bench_model_compares_with_the_official_reference(capsys):
    from benchmarks import bench_model

    argv = [
        "--preset",
        "tiny",
        "--train-size",
        "32",
        "--infer-size",
        "40",
        "--repeats",
        "1",
        "--compare-official",
    ]
    assert bench_model.main(argv) == 0
    out = capsys.readouterr().out
    assert "train speed-up ours vs official" in out and "infer speed-up ours vs official" in out
    diffs = [float(line.rsplit("=", 1)[1]) for line in out.splitlines() if "max |ours - official|" in line]
    assert len(diffs) == 2 and max(diffs) < 1e-4


def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    plain = build_model("tiny").train()
    saved = build_model("tiny", checkpointing=True).train()
    saved.load_state_dict(plain.state_dict())
    assert "checkpointing" not in saved.config  # a way of computing, not architecture
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    losses = []
    for model in (plain, saved):
        model.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        losses.append(loss.detach())
    assert torch.equal(losses[0], losses[1])
    for (name, a), b in zip(plain.named_parameters(), saved.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-7), name
    blocks = [m for m in saved.modules() if type(m).__name__ == "TransformerBlock"]
    assert blocks and all(m.checkpointing for m in blocks)
    assert not any(m.checkpointing for m in saved.set_checkpointing(False).modules() if m in blocks)


# ---- the GPU path, proven on the CPU ---------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_float16_autocast_forward_at_512_px_is_finite_and_close_to_float32(fast):
    """Raw q . k overflows float16 (65,504) at this size; the kernels normalise q and k first, as the plain
    code does, so a float16 forward stays finite and close to float32 (CPU autocast stands in for a GPU's)."""
    torch.manual_seed(0)
    model = build_model("tiny", fast=fast).eval()
    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(4))
    torch.set_num_threads(2)  # float16 convolutions have no fast CPU kernel: the slowest test here
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.float16):
            half = model(x).float()
    assert torch.isfinite(half).all()
    assert (half - reference).abs().max().item() < 0.05


def _matrix_products(batch: int) -> int:
    """Matrix-product kernels (mm, bmm, their fused forms) launched by one training step of the tiny model."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = build_model("tiny").train()
    x = torch.rand(batch, 3, 32, 32)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        (model(x) - x).abs().mean().backward()
    products = {"aten::mm", "aten::bmm", "aten::baddbmm", "aten::baddbmm_", "aten::addmm", "aten::addbmm"}
    return sum(event.count for event in prof.key_averages() if event.key in products)


def test_matrix_products_per_step_do_not_grow_with_the_batch():
    """One bmm per head over the whole batch: a GPU step launches as many products at batch 8 as at 2."""
    assert _matrix_products(2) == _matrix_products(8) > 0


@pytest.mark.parametrize("checkpointing", [False, True])
def test_torch_compile_traces_the_model_with_at_most_two_graph_breaks(checkpointing):
    """``torch._dynamo.explain`` traces forward and the kernels' backward without compiling (no Inductor)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build_model("tiny", checkpointing=checkpointing).train()
    explanation = torch._dynamo.explain(model)(torch.rand(2, 3, 32, 32))
    reasons = sorted({r.reason.splitlines()[0] for r in explanation.break_reasons})
    assert explanation.graph_break_count <= 2, reasons
    torch._dynamo.reset()


def test_the_gate_backward_under_compile_equals_the_eager_one(monkeypatch):
    """The gate's backward writes in place when eager and concatenates while torch.compile traces."""
    x = torch.randn(2, 8, 5, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(2, 4, 5, 6)
    eager = torch.autograd.grad(kernels.gated_gelu(x), x, grad)[0]
    monkeypatch.setattr(kernels, "_compiling", lambda: True)
    traced = torch.autograd.grad(kernels.gated_gelu(x), x, grad)[0]
    assert torch.equal(eager, traced)
