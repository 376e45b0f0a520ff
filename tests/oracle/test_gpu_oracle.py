"""kintsugi-run --backend vulkan on Mesa's lavapipe (the real SPIR-V kernels,
executed on the CPU) against the CPU backend and mlx-lm: the same greedy
tokens, the same perplexity, MoE models included; --backend auto never takes
lavapipe; a device or host that is not there is one clear error."""
import json
import os

import pytest

from conftest import SANITIZED, generate, generate_and_convert, one_line_error, run, tool
from test_run_oracle import mlx_greedy

RUN = tool("kintsugi-run")
# lavapipe by name (auto never takes a CPU driver); under the sanitizers the
# leak check is off for these runs: Mesa's own allocations at exit are not ours
LAVAPIPE = dict(os.environ, KINTSUGI_VULKAN_DEVICE="llvmpipe", XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
if SANITIZED:
    LAVAPIPE["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return generate_and_convert(tmp_path_factory.mktemp("gpu"))


def ours(path, *args, env=None):
    return json.loads(run([RUN, path, "--json", *args], env=env).stdout)


@pytest.mark.parametrize("which", [0, 1], ids=["bf16", "4-bit"])
def test_vulkan_generates_what_the_cpu_and_mlx_lm_do(model, which):
    path = model[which]
    args = ["--raw", "--prompt", "日本の首都は東京です。", "--max-tokens", "16", "--temperature", "0"]
    cpu = ours(path, *args, "--backend", "cpu")
    gpu = ours(path, *args, "--backend", "vulkan", env=LAVAPIPE)
    assert gpu["stats"]["backend"].startswith("vulkan (llvmpipe") and cpu["stats"]["backend"] == "cpu"
    assert gpu["generated_ids"] == cpu["generated_ids"] == mlx_greedy(path, cpu["prompt_ids"], len(cpu["generated_ids"]))


@pytest.mark.release_only
def test_vulkan_perplexity_equals_the_cpu(model, tmp_path):
    f = tmp_path / "text.txt"
    f.write_text("東京は日本の首都です。 The quick brown fox jumps over the lazy dog. " * 6)
    cpu = ours(model[1], "--perplexity", str(f), "--window", "64", "--backend", "cpu")
    gpu = ours(model[1], "--perplexity", str(f), "--window", "64", "--backend", "vulkan", env=LAVAPIPE)
    assert gpu["tokens"] == cpu["tokens"] > 64
    assert gpu["token_perplexity"] == pytest.approx(cpu["token_perplexity"], rel=1e-5)


def test_auto_never_takes_lavapipe(model):
    r = ours(model[1], "--raw", "--prompt", "日本", "--max-tokens", "2", env=LAVAPIPE)
    assert r["stats"]["backend"] == "cpu"


@pytest.mark.release_only
def test_vulkan_runs_moe_models_as_the_cpu_does(tmp_path):
    """A MoE model's router and experts on the device (the choice never goes
    back to the host): the CPU's greedy tokens, the original and its 4-bit
    conversion."""
    src = generate(tmp_path / "hf", "--moe")
    run([tool("kintsugi-convert"), src, str(tmp_path / "mlx"), "--quiet"])
    for path in (src, str(tmp_path / "mlx")):
        args = ["--raw", "--prompt", "日本の首都は東京です。", "--max-tokens", "16", "--temperature", "0", "--exact"]
        cpu = ours(path, *args, "--backend", "cpu")
        gpu = ours(path, *args, "--backend", "vulkan", env=LAVAPIPE)
        assert gpu["stats"]["backend"].startswith("vulkan (llvmpipe")
        assert gpu["generated_ids"] == cpu["generated_ids"] and len(cpu["generated_ids"]) == 16


def test_what_the_backend_cannot_take_is_one_error(tmp_path):
    src = generate(tmp_path / "dense")
    r = run([RUN, src, "--backend", "metal", "--prompt", "hi"], check=False, env=LAVAPIPE)
    assert "Metal is built on macOS only" in one_line_error(r, "kintsugi-run", 1)
    r = run([RUN, src, "--backend", "vulkan", "--prompt", "hi"], check=False,
            env=dict(LAVAPIPE, KINTSUGI_VULKAN_DEVICE="no-such-gpu"))
    assert "no-such-gpu" in one_line_error(r, "kintsugi-run", 1)
    r = run([RUN, src, "--backend", "vulkan", "--prompt", "hi"], check=False,
            env={k: v for k, v in LAVAPIPE.items() if k != "KINTSUGI_VULKAN_DEVICE"})
    assert "lavapipe is used only when named" in one_line_error(r, "kintsugi-run", 1)
    # a context the device cannot hold: one line, never a crash in the first token
    r = run([RUN, src, "--backend", "vulkan", "--prompt", "hi", "--context", "16000000", "--max-tokens", "8000000",
             "--max-reasoning-tokens", "8000000"], check=False, env=LAVAPIPE)
    line = one_line_error(r, "kintsugi-run", 2)
    assert "cannot allocate the state for a context of 16000000 tokens" in line and "lower --context" in line


@pytest.mark.release_only
def test_verify_runs_the_model_under_test_on_vulkan(model, tmp_path):
    """kintsugi-verify --backend vulkan: --generate and --kld on the device give
    the CPU's figures, and say where they ran. The text is the first lines of
    the held-out prose: lavapipe runs a prompt one token per submission, so the
    whole file takes minutes on a small CI machine."""
    src, mlx = model
    prose = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "testdata", "trained", "data", "prose-heldout.txt")
    text = tmp_path / "prose.txt"
    with open(prose, encoding="utf-8") as f:
        text.write_text("".join(f.readlines()[:12]), encoding="utf-8")
    args = [tool("kintsugi-verify"), mlx, "--original", src, "--generate", "--max-tokens", "12",
            "--kld", str(text), "--min-top1", "0.2", "--json"]
    cpu = json.loads(run(args, check=False).stdout)
    gpu = json.loads(run([*args, "--backend", "vulkan"], check=False, env=LAVAPIPE).stdout)
    beh = lambda rep: {c["name"]: c for c in rep["checks"] if c["group"] == "behaviour"}
    a, b = beh(cpu), beh(gpu)
    assert set(a) == set(b) == {"generate:think", "generate:no_think", "kld"}
    assert b["kld"]["figures"]["backend"].startswith("vulkan (llvmpipe") and a["kld"]["figures"]["backend"] == "cpu"
    assert b["kld"]["figures"]["kld_mean"] == pytest.approx(a["kld"]["figures"]["kld_mean"], rel=1e-3, abs=1e-6)
    assert b["generate:think"]["figures"]["text"] == a["generate:think"]["figures"]["text"]
    assert [c["status"] for c in b.values()] == [c["status"] for c in a.values()]
