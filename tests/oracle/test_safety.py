"""Regression tests for what a tester found: data loss, aborts on config
values, a repair that made missing data look complete, and the behaviour
details of kintsugi-run and kintsugi-convert. Each test names the
reproduction it keeps fixed."""
import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import generate, hub_cache, one_line_error, run, tool

CONVERT, FIXUP, VERIFY, RUN, QUANT = (tool("kintsugi-convert"), tool("kintsugi-fixup"), tool("kintsugi-verify"),
                                      tool("kintsugi-run"), tool("kintsugi-quantize"))


def tree_digest(path):
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(os.path.relpath(p, path).encode())
            h.update(open(p, "rb").read())
    return h.hexdigest()


@pytest.fixture
def ckpt(tmp_path):
    return generate(tmp_path / "models" / "ckpt")


def test_convert_never_replaces_or_deletes_its_source(ckpt, tmp_path):
    models = str(tmp_path / "models")
    (tmp_path / "models" / "notes.txt").write_text("keep me")
    before = tree_digest(models)
    link = str(tmp_path / "link")
    os.symlink(ckpt, link)
    for dst in (ckpt, models, os.path.join(ckpt, "out"), os.path.join(ckpt, "sub", ".."), link,
                str(tmp_path), os.path.join(models, "..", "models", "ckpt")):
        r = run([CONVERT, ckpt, dst, "--force"], check=False)
        line = one_line_error(r, "kintsugi-convert", 2)
        assert "input" in line, line
        assert tree_digest(models) == before, dst
    # --force replaces only a model directory
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("years of work")
    line = one_line_error(run([CONVERT, ckpt, str(other), "--force"], check=False), "kintsugi-convert", 2)
    assert "not a model directory" in line and (other / "thesis.tex").exists()
    # DST's parents are created; DST is checked before anything is printed
    deep = str(tmp_path / "a" / "b" / "c")
    r = run([CONVERT, ckpt, deep])
    assert os.path.isfile(os.path.join(deep, "config.json"))
    r = run([CONVERT, ckpt, deep], check=False)
    assert r.stdout == "" and "exists (use --force" in one_line_error(r, "kintsugi-convert", 2)
    run([CONVERT, ckpt, deep, "--force", "--quiet"])  # a model directory: replaced


def test_quantize_and_testdata_follow_the_same_rule(ckpt, tmp_path):
    shard = os.path.join(ckpt, sorted(f for f in os.listdir(ckpt) if f.endswith(".safetensors"))[0])
    link = str(tmp_path / "link.safetensors")
    os.symlink(shard, link)
    digest = hashlib.sha256(open(shard, "rb").read()).hexdigest()
    for out in (shard, link):
        one_line_error(run([QUANT, shard, out, "--force"], check=False), "kintsugi-quantize", 2)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert "not a .safetensors file" in one_line_error(run([QUANT, shard, str(notes), "--force"], check=False),
                                                 "kintsugi-quantize", 2)
    assert hashlib.sha256(open(shard, "rb").read()).hexdigest() == digest and notes.read_text() == "x"
    one_line_error(run([tool("kintsugi-testdata"), "--force", str(tmp_path)], check=False), "kintsugi-testdata", 2)
    assert notes.exists()


@pytest.mark.parametrize("key,value", [("conv_kernel", 33554436), ("mamba_head_dim", 536870944),
                                       ("head_dim", 536870928), ("layer_norm_epsilon", -1),
                                       ("hidden_size", "256"), ("num_attention_heads", 0),
                                       ("hybrid_override_pattern", "XXXXXX"), ("model_type", "llama")])
def test_config_values_are_one_line_everywhere(tmp_path, key, value):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet"])
    for d in (src, mlx):
        p = os.path.join(d, "config.json")
        cfg = json.load(open(p))
        cfg[key] = value
        json.dump(cfg, open(p, "w"))
    # convert refuses the source before writing anything
    out = str(tmp_path / "out")
    line = one_line_error(run([CONVERT, src, out], check=False), "kintsugi-convert", 1)
    assert key in line and not os.path.exists(out)
    # run, verify (with --generate and --kld) and fixup name the key, never abort
    line = one_line_error(run([RUN, mlx, "--prompt", "x", "--max-tokens", "2"], check=False), "kintsugi-run", 1)
    assert key in line
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 20)
    r = run([VERIFY, mlx, "--original", src, "--generate", "--kld", str(text), "--json"], check=False)
    assert r.returncode == 1 and "Sanitizer" not in r.stderr and "runtime error" not in r.stderr
    report = json.loads(r.stdout)
    assert any(c["name"] == "config" and c["status"] == "fail" and key in c["message"] for c in report["checks"])
    r = run([FIXUP, mlx, "--check"], check=False)
    assert r.returncode == 1 and "Sanitizer" not in r.stderr


def test_fixup_never_rebuilds_an_index_around_a_missing_shard(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet", "--shard-size", "300KB"])
    shards = sorted(f for f in os.listdir(mlx) if f.startswith("model-"))
    os.remove(os.path.join(mlx, shards[1]))
    index = open(os.path.join(mlx, "model.safetensors.index.json")).read()
    for args in ([], ["--check"], ["--dry-run"]):
        line = one_line_error(run([FIXUP, mlx, *args], check=False), "kintsugi-fixup", 1)
        assert shards[1] in line and "missing" in line
    assert open(os.path.join(mlx, "model.safetensors.index.json")).read() == index
    assert not [f for f in os.listdir(mlx) if f.endswith(".orig")]
    assert run([VERIFY, mlx, "--quiet"], check=False).returncode == 1


def test_fixup_speaks_in_the_conditional_and_keeps_permissions(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet"])
    cfg_path = os.path.join(mlx, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["dtype"] = cfg.pop("torch_dtype")
    cfg["quantization"]["mode"] = "affine"
    json.dump(cfg, open(cfg_path, "w"))
    os.chmod(cfg_path, 0o600)
    for args in (["--check"], ["--dry-run"]):
        r = run([FIXUP, mlx, *args], check=False)
        assert "would be renamed" in r.stdout and "would be removed" in r.stdout, r.stdout
        assert " renamed to" not in r.stdout.replace("would be renamed to", "")
        assert f"to repair: kintsugi-fixup {mlx}" in r.stdout
    r = run([FIXUP, mlx])
    assert "renamed to" in r.stdout and "would" not in r.stdout
    assert os.stat(cfg_path).st_mode & 0o777 == 0o600
    # verify's fix is a command that can be run as it is
    os.rename(os.path.join(mlx, "config.json.orig"), cfg_path)
    report = json.loads(run([VERIFY, mlx, "--json"], check=False).stdout)
    fixes = {c["fix"] for c in report["checks"] if c["status"] == "fail"}
    assert fixes == {f"kintsugi-fixup {mlx}"}
    cmd = next(iter(fixes)).split()
    run([tool(cmd[0])] + cmd[1:])
    assert run([VERIFY, mlx, "--quiet"]).returncode == 0


def test_fix_shards_message_says_what_it_does(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet", "--shard-size", "300KB"])
    first = sorted(f for f in os.listdir(mlx) if f.startswith("model-"))[0]
    shutil.copy(os.path.join(mlx, first), os.path.join(mlx, "model-old.safetensors"))
    r = run([FIXUP, mlx, "--fix-shards"])
    assert "moved to model-old.safetensors.unlisted (kept, not deleted" in r.stdout
    assert os.path.exists(os.path.join(mlx, "model-old.safetensors.unlisted"))


def test_gate_is_as_strict_as_the_loader(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet"])

    def broken(edit):
        d = str(tmp_path / f"b{len(os.listdir(tmp_path))}")
        shutil.copytree(mlx, d)
        edit(d)
        return d

    def cfg_edit(fn):
        def e(d):
            p = os.path.join(d, "config.json")
            c = json.load(open(p))
            fn(c)
            json.dump(c, open(p, "w"))
        return e
    cases = {
        "no config.json": lambda d: os.remove(os.path.join(d, "config.json")),
        "group_size missing": cfg_edit(lambda c: [c[k].pop("group_size") for k in ("quantization", "quantization_config")]),
        "bits a string": cfg_edit(lambda c: [c[k].update(bits="4") for k in ("quantization", "quantization_config")]),
        "group_size 1e12": cfg_edit(lambda c: [c[k].update(group_size=10 ** 12) for k in ("quantization", "quantization_config")]),
        "tokenizer.json missing": lambda d: os.remove(os.path.join(d, "tokenizer.json")),
        "tokenizer.json empty": lambda d: open(os.path.join(d, "tokenizer.json"), "w").close(),
        "tokenizer.json not JSON": lambda d: open(os.path.join(d, "tokenizer.json"), "w").write("nope"),
        "model_type llama": cfg_edit(lambda c: c.update(model_type="llama")),
    }
    for name, edit in cases.items():
        d = broken(edit)
        r = run([VERIFY, d, "--quiet"], check=False)
        assert r.returncode == 1, name
        r = run([RUN, d, "--prompt", "x", "--max-tokens", "1"], check=False)
        assert r.returncode in (1, 2) and "Sanitizer" not in r.stderr, name


def test_run_values_and_context(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet"])
    for args, text in [(["--temperature", "nan"], "--temperature"), (["--temperature", "inf"], "--temperature"),
                       (["--top-p", "0"], "--top-p"), (["--top-p", "1.5"], "--top-p"), (["--min-p", "-0.1"], "--min-p"),
                       (["--min-p", "2"], "--min-p"), (["--repetition-penalty", "0"], "--repetition-penalty"),
                       (["--max-tokens", "-1"], "'-1' is not a count >= 0"),
                       (["--chat"], "--prompt and --chat do not go together"),
                       (["--window", "8"], "--window and --prompt"), (["--raw", "--system", "s"], "--raw and --system")]:
        line = one_line_error(run([RUN, mlx, "--prompt", "hello", *args], check=False), "kintsugi-run", 2)
        assert text in line, (args, line)
    assert "--json and --tokenize" in one_line_error(run([RUN, mlx, "--tokenize", "--json"], check=False, input=""),
                                               "kintsugi-run", 2)
    # a prompt longer than the context: refused before any work
    line = one_line_error(run([RUN, mlx, "--prompt", "hello " * 50, "--context", "20"], check=False), "kintsugi-run", 1)
    assert "--context 20" in line and "tokens" in line
    # reaching the context while generating is said, on stderr and in --json
    r = run([RUN, mlx, "--prompt", "hi /no_think", "--context", "40", "--max-tokens", "100", "--json"])
    out = json.loads(r.stdout)
    assert out["stop_reason"] in ("context", "eos")
    if out["stop_reason"] == "context":
        assert "context limit of 40 tokens" in r.stderr
        assert len(out["prompt_ids"]) + len(out["generated_ids"]) == 40
    # --prompt - reads stdin
    a = json.loads(run([RUN, mlx, "--prompt", "-", "--max-tokens", "2", "--json"], input="こんにちは").stdout)
    b = json.loads(run([RUN, mlx, "--prompt", "こんにちは", "--max-tokens", "2", "--json"]).stdout)
    assert a["prompt_ids"] == b["prompt_ids"]


def test_run_warns_about_a_foreign_template(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet"])
    r = run([RUN, mlx, "--prompt", "x", "--max-tokens", "1", "--quiet"])
    assert r.stderr == ""  # the Nemotron-H template is recognised
    p = os.path.join(mlx, "tokenizer_config.json")
    tc = json.load(open(p))
    tc["chat_template"] = "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"
    json.dump(tc, open(p, "w"))
    r = run([RUN, mlx, "--prompt", "x", "--max-tokens", "1", "--quiet"])
    assert r.stderr.count("warning:") == 1 and "built-in Nemotron-H format" in r.stderr
    line = one_line_error(run([RUN, mlx, "--prompt", "x", "--strict-template"], check=False), "kintsugi-run", 1)
    assert "not a known Nemotron-H template" in line
    assert run([RUN, mlx, "--raw", "--prompt", "x", "--max-tokens", "1", "--quiet"]).stderr == ""


def test_archive_with_two_models_is_refused(tmp_path):
    a = generate(tmp_path / "a")
    b = generate(tmp_path / "b")
    arc = str(tmp_path / "two.tar")
    with tarfile.open(arc, "w") as t:
        t.add(a, arcname="first")
        t.add(b, arcname="second")
    out = str(tmp_path / "out")
    line = one_line_error(run([CONVERT, arc, out], check=False), "kintsugi-convert", 1)
    assert "2 model directories" in line and "first/" in line and "second/" in line and not os.path.exists(out)


def test_hub_names_resolve_in_the_local_cache(tmp_path):
    src = generate(tmp_path / "hf")
    env, commit = hub_cache(tmp_path, src)  # files as links into blobs/, as huggingface_hub lays them out
    cache = tmp_path / "cache"
    out = str(tmp_path / "out")
    run([CONVERT, "nvidia/Tiny-Nemotron", out, "--quiet"], env=env)
    assert "nvidia/Tiny-Nemotron" in open(os.path.join(out, "README.md")).read()
    run([VERIFY, out, "--original", "nvidia/Tiny-Nemotron", "--quiet"], env=env)
    # run and fixup take the name too (the snapshot is an original: fixup refuses it as not a conversion)
    r = run([RUN, "nvidia/Tiny-Nemotron", "--prompt", "x", "--max-tokens", "1", "--quiet"], env=env)
    r = run([FIXUP, "nvidia/Tiny-Nemotron", "--check"], check=False, env=env)
    assert r.returncode == 1 and "not an MLX conversion" in r.stderr and "snapshots" in r.stderr
    run([CONVERT, "nvidia/Tiny-Nemotron", str(tmp_path / "out2"), "--revision", commit, "--quiet"], env=env)
    # HF_HOME/hub is the cache when HF_HUB_CACHE is unset
    home = tmp_path / "home"
    home.mkdir()
    os.symlink(cache, home / "hub")
    env2 = {k: v for k, v in os.environ.items() if k != "HF_HUB_CACHE"}
    env2["HF_HOME"] = str(home)
    run([VERIFY, "nvidia/Tiny-Nemotron", "--quiet"], env=env2)
    line = one_line_error(run([CONVERT, "nvidia/Missing", str(tmp_path / "o3")], check=False, env=env),
                    "kintsugi-convert", 1)
    assert "not in the local Hugging Face cache" in line and str(cache) in line
    line = one_line_error(run([CONVERT, "nvidia/Tiny-Nemotron", str(tmp_path / "o4"), "--revision", "v9"], check=False,
                        env=env), "kintsugi-convert", 1)
    assert "revision v9" in line


def test_convert_help_and_threads(tmp_path):
    r = run([CONVERT, "--help"])
    for kind in (".tar", ".tar.gz", ".tar.zst", ".zip"):
        assert kind in r.stdout
    src = generate(tmp_path / "hf")
    r = run([CONVERT, src, str(tmp_path / "o"), "--threads", "4096", "--json"])
    assert json.loads(r.stdout)["repairs"] == []
