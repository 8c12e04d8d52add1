"""``benchmarks/profile_step.py`` reads oneDNN's verbose log right (issue 19, item 3).

The log lines are oneDNN 3.x's own format (copied from a run on an AMX Xeon); the FLOPs are
checked against the layer arithmetic by hand, and the window between the markers is what counts.
"""

import json

import pytest


@pytest.fixture(scope="module")
def profile_step(benchmark_module):
    return benchmark_module("profile_step")


CONV = ("onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv_bwd_w:avx10_1_512_amx,"
        "backward_weights,src:bf16::blocked:acdb::f0 wei:bf16:a:blocked:Acdb16a::f0 "
        "dst:bf16::blocked:acdb::f0,attr-scratchpad:user,alg:convolution_direct,"
        "mb128_ic64oc128_ih14oh7kh4sh2dh0ph1_iw14ow7kw4sw2dw0pw1,{ms}")
MATMUL = ("onednn_verbose,v1,primitive,exec,cpu,matmul,brg_matmul:avx10_1_512_amx,undef,"
          "src:bf16::blocked:ab::f0 wei:bf16::blocked:ab::f0 dst:bf16::blocked:ab::f0,"
          "attr-scratchpad:user,,256x1024:1024x3136,{ms}")
REORDER = ("onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,"
           "src:f32::blocked:abcd::f0 dst:bf16::blocked:Acdb16a::f0,,,64x1x4x4,{ms}")


def test_flops_follow_the_layer_arithmetic(profile_step):
    conv = profile_step._problem_flops(
        "convolution", "mb128_ic64oc128_ih14oh7kh4sh2dh0ph1_iw14ow7kw4sw2dw0pw1")
    assert conv == 2 * 128 * 64 * 128 * 7 * 7 * 4 * 4
    assert profile_step._problem_flops("matmul", "256x1024:1024x3136") == 2 * 256 * 1024 * 3136
    assert profile_step._problem_flops("matmul", "4x256x1024:4x1024x3136") == \
        4 * 2 * 256 * 1024 * 3136
    assert profile_step._problem_flops("inner_product", "mb256ic3136oc1024") == \
        2 * 256 * 3136 * 1024
    assert profile_step._problem_flops("reorder", "64x1x4x4") == 0


def test_only_the_window_between_the_markers_counts(profile_step):
    info = {"steps": 2, "images_per_s": 1000.0, "wall_s": 0.256, "epoch_s": 0.256,
            "flops_per_image": 10**8}
    log = "\n".join([
        CONV.format(ms="99.0"),  # the warm-up: before the window
        "noise from TensorFlow",
        profile_step.BEGIN,
        CONV.format(ms="20.0"), MATMUL.format(ms="5.0"), REORDER.format(ms="1.0"),
        CONV.format(ms="22.0"),
        "onednn_verbose,v1,primitive,create:cache_hit,cpu,convolution,x,y,z,,,mb1,0.5",
        profile_step.END + json.dumps(info),
        CONV.format(ms="99.0"),
    ])
    records, parsed = profile_step.parse_log(log)
    assert parsed == info
    assert [r["ms"] for r in records] == [20.0, 5.0, 1.0, 22.0]
    assert records[0]["impl"] == "brgconv_bwd_w:avx10_1_512_amx"
    assert records[0]["prop"] == "backward_weights" and records[0]["dtype"] == "bf16"
    rows = profile_step.aggregate(records, steps=2)
    assert rows[0]["kind"] == "convolution" and rows[0]["ms_per_step"] == pytest.approx(21.0)
    assert rows[0]["calls_per_step"] == 1.0
    assert sum(r["ms_per_step"] for r in rows) == pytest.approx(24.0)
    text = profile_step.summarize("dcgan", records, parsed, {"bfloat16": 1000.0,
                                                             "float32": 250.0})
    assert "**128.00 ms per step**" in text and "oneDNN primitives 24.00 ms (19 %)" in text
