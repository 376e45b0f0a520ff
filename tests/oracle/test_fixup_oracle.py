"""kintsugi-fixup on directories broken the way mlx-lm 0.30-0.32 with
transformers 5 leave them, judged by mlx_lm.load / mlx_lm.generate; and the
LM Studio host patch on a tree that mirrors its layout."""
import hashlib
import importlib.util
import json
import os
import shutil
import sys

import mlx.core as mx
import pytest

from conftest import generate, run, tool

FIXUP = tool("kintsugi-fixup")


def digest(d):
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(d)):
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(os.path.relpath(p, d).encode() + open(p, "rb").read())
    return h.hexdigest()


def greedy(path):
    from mlx_lm import generate as gen, load
    model, tok = load(path)
    out = []
    gen(model, tok, prompt="こんにちは、今日は", max_tokens=10, verbose=False,
        sampler=lambda lg: (out.append(int(mx.argmax(lg, axis=-1).item())) or mx.argmax(lg, axis=-1)))
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("fx")
    src = generate(d / "hf")
    good = str(d / "good")
    run([tool("kintsugi-convert"), src, good, "--mode", "cpu", "--quiet"])
    return src, good, greedy(good)


def edit_json(path, fn):
    data = json.load(open(path))
    fn(data)
    json.dump(data, open(path, "w"), indent=2)


def break_mode(d):
    def f(c):
        c["quantization"]["mode"] = "affine"
        c["quantization_config"]["mode"] = "affine"
        c["quantization"]["lm_head"] = {"group_size": 64, "bits": 4, "mode": "affine"}
        c["quantization_config"]["lm_head"] = {"group_size": 64, "bits": 4, "mode": "affine"}
    edit_json(os.path.join(d, "config.json"), f)


def break_tsl_missing(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.pop("time_step_limit"))


def break_tsl_tagged(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.update(time_step_limit=[0.0, {"__float__": "Infinity"}]))


def break_tsl_string(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.update(time_step_limit="(0.0, inf)"))


def break_dtype(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.update(dtype=c.pop("torch_dtype")))


def break_twin(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.pop("quantization_config"))


def break_pattern(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.update(hybrid_override_pattern="M-M*MM", num_hidden_layers=7))


def break_layers_block_type(d):
    """transformers 5 style: a list of block types instead of the pattern, one wrong."""
    def f(c):
        names = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
        types = [names[ch] for ch in c.pop("hybrid_override_pattern")]
        types[1] = "attention"
        c["layers_block_type"] = types
    edit_json(os.path.join(d, "config.json"), f)


def break_tokenizer(d):
    """What transformers 5 saves: TokenizersBackend, the template beside it."""
    p = os.path.join(d, "tokenizer_config.json")
    cfg = json.load(open(p))
    template = cfg.pop("chat_template")
    cfg["tokenizer_class"] = "TokenizersBackend"
    json.dump(cfg, open(p, "w"), indent=2)
    open(os.path.join(d, "chat_template.jinja"), "w").write(template)


def break_tokenizer_no_template(d):
    p = os.path.join(d, "tokenizer_config.json")
    edit_json(p, lambda c: (c.pop("chat_template"), c.update(tokenizer_class="TokenizersBackend")))


def break_conv1d(d):
    p = os.path.join(d, "model.safetensors")
    w = mx.load(p)
    for k in list(w):
        if k.endswith("conv1d.weight"):
            c, k_, _ = w[k].shape
            w[k] = w[k].reshape(c, 1, k_)
    mx.save_safetensors(p, w, metadata={"format": "mlx"})


def break_stale_shard(d):
    w = mx.load(os.path.join(d, "model.safetensors"))
    mx.save_safetensors(os.path.join(d, "model-stale.safetensors"), {"backbone.norm_f.weight": w["backbone.norm_f.weight"] * 0})


def break_index(d):
    def f(i):
        i["metadata"]["total_size"] += 1000
        i["weight_map"].pop("lm_head.scales")
    edit_json(os.path.join(d, "model.safetensors.index.json"), f)


BREAKAGES = {
    "mode": (break_mode, "config-mode"),
    "tsl_missing": (break_tsl_missing, "config-time-step-limit"),
    "tsl_tagged": (break_tsl_tagged, "config-time-step-limit"),
    "tsl_string": (break_tsl_string, "config-time-step-limit"),
    "dtype": (break_dtype, "config-dtype"),
    "twin": (break_twin, "config-quantization-twin"),
    "pattern": (break_pattern, "config-layer-pattern"),
    "layers_block_type": (break_layers_block_type, "config-layer-pattern"),
    "tokenizer": (break_tokenizer, "tokenizer-class"),
    "tokenizer_no_template": (break_tokenizer_no_template, "tokenizer-chat-template"),
    "conv1d": (break_conv1d, "tensors-conv1d-layout"),
    "stale_shard": (break_stale_shard, "shards-unlisted"),
    "index": (break_index, "index-rebuild"),
}


# breakages that repeat a sibling's rule (or contradict it) are left out of "all"
SIBLINGS = ("tokenizer_no_template", "tsl_tagged", "tsl_string", "layers_block_type")


def check(d, *extra):
    r = run([FIXUP, d, "--check", "--json", *extra], check=False)
    return r.returncode, {f["rule"] for f in json.loads(r.stdout)["findings"]} if r.stdout.strip() else set()


@pytest.mark.parametrize("name", [*sorted(BREAKAGES), "all"])
def test_repairs_make_it_load_and_generate_like_a_good_conversion(base, tmp_path, name):
    src, good, tokens = base
    d = str(tmp_path / "model")
    shutil.copytree(good, d)
    chosen = list(BREAKAGES) if name == "all" else [name]
    for b in chosen:
        if name == "all" and b in ("tokenizer_no_template", "tsl_tagged", "tsl_string"):
            continue  # the same rules as their siblings
        BREAKAGES[b][0](d)
    rc, rules = check(d)
    assert rc == 1 and {BREAKAGES[b][1] for b in chosen if not (name == "all" and b in SIBLINGS)} <= rules
    before = {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d)}
    r = run([FIXUP, d, "--original", src, "--fix-shards"])
    assert "repaired" in r.stdout
    # the first original of every touched file is kept
    for f, data in before.items():
        if os.path.exists(os.path.join(d, f + ".orig")):
            assert open(os.path.join(d, f + ".orig"), "rb").read() == data
    changed = [f for f in before if not os.path.exists(os.path.join(d, f)) or open(os.path.join(d, f), "rb").read() != before[f]]
    assert changed and all(os.path.exists(os.path.join(d, f + ".orig")) or f.endswith("stale.safetensors") for f in changed)
    assert check(d)[0] == 0
    state = digest(d)
    r = run([FIXUP, d, "--original", src, "--fix-shards"])
    assert "nothing to repair" in r.stdout and digest(d) == state  # a second run changes nothing
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["time_step_limit"] == [0.0, float("inf")] and "mode" not in cfg["quantization"]
    assert "torch_dtype" in cfg and "dtype" not in cfg
    assert greedy(d) == tokens


def test_a_correct_directory_is_left_byte_identical(base, tmp_path):
    _, good, _ = base
    d = str(tmp_path / "model")
    shutil.copytree(good, d)
    state = digest(d)
    assert check(d) == (0, set())
    r = run([FIXUP, d])
    assert "nothing to repair" in r.stdout and digest(d) == state


def test_mlx_lm_own_conversion_is_repaired(base, tmp_path):
    """mlx-lm 0.32 with transformers 5 writes mode, a tagged Infinity and TokenizersBackend itself."""
    src, _, tokens = base
    d = str(tmp_path / "mlxlm")
    run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", src, "--mlx-path", d, "-q"])
    rc, rules = check(d)
    assert rc == 1 and {"config-mode", "config-time-step-limit", "tokenizer-class"} <= rules
    run([FIXUP, d, "--original", src])
    assert check(d)[0] == 0
    assert open(os.path.join(d, "tokenizer_config.json"), "rb").read() == open(os.path.join(src, "tokenizer_config.json"), "rb").read()
    assert greedy(d) == tokens


def test_without_original_the_class_is_set_with_a_warning(base, tmp_path):
    _, good, _ = base
    d = str(tmp_path / "model")
    shutil.copytree(good, d)
    break_tokenizer(d)
    r = run([FIXUP, d])
    assert "warning" in r.stdout and "PreTrainedTokenizerFast" in r.stdout
    assert json.load(open(os.path.join(d, "tokenizer_config.json")))["tokenizer_class"] == "PreTrainedTokenizerFast"


def apply_unified_diff(old, diff):
    """A minimal applier, to prove the dry-run diff is a real diff."""
    lines, out, i = old.split("\n"), [], 0
    for h in diff.split("\n@@ ")[1:]:
        head, *body = h.split("\n")
        start = int(head.split()[0][1:].split(",")[0]) - 1
        out.extend(lines[i:start])
        i = start
        for b in body:
            if b.startswith(" "):
                out.append(lines[i]); i += 1
            elif b.startswith("-"):
                i += 1
            elif b.startswith("+"):
                out.append(b[1:])
    out.extend(lines[i:])
    return "\n".join(out)


def test_dry_run_shows_a_diff_and_changes_nothing(base, tmp_path):
    _, good, _ = base
    d = str(tmp_path / "model")
    shutil.copytree(good, d)
    break_mode(d)
    break_tsl_missing(d)
    state = digest(d)
    r = run([FIXUP, d, "--dry-run"])
    assert digest(d) == state
    diff = r.stdout[r.stdout.index("--- "):]
    old = open(os.path.join(d, "config.json")).read()
    run([FIXUP, d])
    assert apply_unified_diff(old, diff) == open(os.path.join(d, "config.json")).read()


def test_refuses_what_is_not_an_mlx_nemotron_conversion(base):
    src, _, _ = base
    r = run([FIXUP, src], check=False)
    assert r.returncode == 1 and "not an MLX conversion" in r.stderr
    r = run([FIXUP, "/nonexistent-dir"], check=False)
    assert r.returncode == 2


# ---- LM Studio ----

BROKEN_CONFIG = '''"""A stand-in with the lines of transformers 5.x configuration_nemotron_h.py that matter."""


class NemotronHConfig:
    @staticmethod
    def _validate_layers_block_type(layers_block_type, expected_length=None, param_name="layers_block_type"):
        valid_types = {"mamba", "attention", "moe"}
        if not all(block_type in valid_types for block_type in layers_block_type):
            invalid = set(layers_block_type) - valid_types
            raise ValueError(f"{param_name} contains invalid types: {invalid}. Must be one of: {valid_types}")

    @staticmethod
    def _validate_mtp(mtp_layers_block_type):
        valid_types = {"mamba", "attention", "moe"}
        if not all(t in valid_types for t in mtp_layers_block_type):
            raise ValueError("bad")

    @staticmethod
    def _list_to_pattern(layers_list: list) -> str:
        reverse_mapping = {"mamba": "M", "moe": "E", "attention": "*"}
        return "".join(reverse_mapping[layer_type] for layer_type in layers_list)

    @staticmethod
    def _pattern_to_list(pattern: str) -> list:
        pattern_mapping = {"M": "mamba", "E": "moe", "*": "attention"}
        return [pattern_mapping[char] for char in pattern]
'''

BROKEN_UTILS = '''ALLOWED_LAYER_TYPES = (
    "full_attention",
    "sliding_attention",
    "chunked_attention",
    "linear_attention",
)


def layer_type_validation(layer_types):
    if not all(t in ALLOWED_LAYER_TYPES for t in layer_types):
        raise ValueError(f"The `layer_types` entries must be in {ALLOWED_LAYER_TYPES}")
'''


def lmstudio_tree(root, config_text=BROKEN_CONFIG):
    sp = os.path.join(root, "mlx-llm-mac-arm64-apple-metal-advsimd-1.7.0", "lib", "python3.11", "site-packages")
    cfg_dir = os.path.join(sp, "transformers", "models", "nemotron_h")
    os.makedirs(cfg_dir)
    open(os.path.join(cfg_dir, "configuration_nemotron_h.py"), "w").write(config_text)
    open(os.path.join(sp, "transformers", "configuration_utils.py"), "w").write(BROKEN_UTILS)
    return os.path.join(cfg_dir, "configuration_nemotron_h.py"), os.path.join(sp, "transformers", "configuration_utils.py")


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_lmstudio_patch(tmp_path):
    root = str(tmp_path / "backends")
    cfg_path, utils_path = lmstudio_tree(root)
    with pytest.raises(KeyError):
        load_module(cfg_path, "before").NemotronHConfig._pattern_to_list("M-M*")
    assert run([FIXUP, "--lmstudio", root, "--check"], check=False).returncode == 1
    state = digest(root)
    r = run([FIXUP, "--lmstudio", root, "--dry-run"])
    assert digest(root) == state and '+        pattern_mapping = {"M": "mamba", "E": "moe", "*": "attention", "-": "mlp"}' in r.stdout
    run([FIXUP, "--lmstudio", root])
    cfg = load_module(cfg_path, "after").NemotronHConfig
    assert cfg._pattern_to_list("M-M*E") == ["mamba", "mlp", "mamba", "attention", "moe"]
    assert cfg._pattern_to_list("M?") == ["mamba"]  # unknown characters are skipped
    assert cfg._list_to_pattern(["mamba", "mlp"]) == "M-"
    cfg._validate_layers_block_type(["mamba", "mlp"])
    cfg._validate_mtp(["mlp"])
    utils = load_module(utils_path, "utils_after")
    assert "mlp" in utils.ALLOWED_LAYER_TYPES
    utils.layer_type_validation(["mlp", "linear_attention"])
    assert open(cfg_path + ".orig").read() == BROKEN_CONFIG and open(utils_path + ".orig").read() == BROKEN_UTILS
    state = digest(root)
    r = run([FIXUP, "--lmstudio", root])
    assert "nothing to do" in r.stdout and digest(root) == state
    assert run([FIXUP, "--lmstudio", root, "--check"]).returncode == 0


def test_lmstudio_already_fixed_or_unknown(tmp_path):
    fixed = BROKEN_CONFIG.replace('"*": "attention"}', '"*": "attention", "-": "mlp"}').replace(
        '{"mamba", "attention", "moe"}', '{"mamba", "attention", "moe", "mlp"}').replace(
        '"attention": "*"}', '"attention": "*", "mlp": "-"}').replace("for char in pattern]", "for char in pattern if char in pattern_mapping]")
    root = str(tmp_path / "a")
    _, utils_path = lmstudio_tree(root, fixed)
    open(utils_path, "w").write(BROKEN_UTILS.replace('"linear_attention",\n', '"linear_attention",\n    "mlp",\n'))
    state = digest(root)
    r = run([FIXUP, "--lmstudio", root])
    assert "nothing to do" in r.stdout and digest(root) == state
    root = str(tmp_path / "b")
    lmstudio_tree(root, "class NemotronHConfig:\n    pass\n")
    state = digest(root)
    r = run([FIXUP, "--lmstudio", root], check=False)
    assert r.returncode == 1 and "not one we know how to patch" in r.stderr and digest(root) == state
    r = run([FIXUP, "--lmstudio", str(tmp_path / "none")], check=False)
    assert r.returncode == 2 and "LM Studio" in r.stderr
