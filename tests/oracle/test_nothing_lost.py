"""Nothing lost, nothing silent: --force keeps what the tool did not make,
and a failed write to standard output is exit 2 in every tool.

Each test reproduces a case that once ended with a user's files deleted or
with exit 0 after output was lost."""
import hashlib
import json
import os
import subprocess

import pytest

from conftest import generate, one_line_error, run, tool

CONVERT, TESTDATA = tool("kintsugi-convert"), tool("kintsugi-testdata")


def snapshot(path, skip=()):
    """Every entry under PATH with its kind and content hash."""
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, path)
            if rel.split(os.sep)[0] in skip:
                continue
            if os.path.islink(p):
                out[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("dir", oct(os.stat(p).st_mode))
            else:
                out[rel] = ("file", hashlib.sha256(open(p, "rb").read()).hexdigest(), oct(os.stat(p).st_mode))
    return out


def make_repo_clone(d):
    """What a user does with a conversion: a clone of their model repository
    in it, their own files beside the model."""
    subprocess.run(["git", "init", "-q", d], check=True)
    with open(os.path.join(d, ".gitattributes"), "w") as f:
        f.write("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    with open(os.path.join(d, "NOTES.md"), "w") as f:
        f.write("what I changed by hand\n")
    os.makedirs(os.path.join(d, "eval"))
    with open(os.path.join(d, "eval", "results.json"), "w") as f:
        f.write('{"acc": 0.5}\n')
    os.symlink("NOTES.md", os.path.join(d, "notes-link"))
    env = dict(os.environ, GIT_AUTHOR_NAME="u", GIT_AUTHOR_EMAIL="u@x", GIT_COMMITTER_NAME="u",
               GIT_COMMITTER_EMAIL="u@x")
    subprocess.run(["git", "-C", d, "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", d, "commit", "-qm", "model"], check=True, env=env)


USER = (".git", ".gitattributes", "NOTES.md", "eval", "notes-link")


def users_files(snap):
    return {k: v for k, v in snap.items() if k.split(os.sep)[0] in USER}


def test_convert_force_keeps_a_repository_clone(tmp_path):
    src = generate(tmp_path / "hf")
    dst = str(tmp_path / "mlx")
    run([CONVERT, src, dst, "--quiet", "--shard-size", "300KB"])
    shards_before = sorted(f for f in os.listdir(dst) if f.startswith("model-"))
    assert len(shards_before) > 1
    make_repo_clone(dst)
    before = users_files(snapshot(dst))
    r = run([CONVERT, src, dst, "--force"])
    after = snapshot(dst)
    assert users_files(after) == before  # byte for byte, kinds and modes
    # the earlier run's extra shards are gone: a loader globbing model*.safetensors sees one model
    assert sorted(f for f in os.listdir(dst) if f.endswith(".safetensors")) == ["model.safetensors"]
    assert not os.path.exists(os.path.join(dst, "model.safetensors.index.json")) or \
        json.load(open(os.path.join(dst, "model.safetensors.index.json")))["weight_map"]
    summary = r.stdout.strip().splitlines()[-1]
    assert "kept" in summary and "NOTES.md" in summary and ".git" in summary, summary
    assert "removed" in summary and shards_before[0] in summary, summary
    # git sees no change to what it tracked but the model files
    st = subprocess.run(["git", "-C", dst, "status", "--porcelain"], capture_output=True, text=True).stdout
    assert "NOTES.md" not in st and ".gitattributes" not in st and "eval" not in st, st
    # no leftovers beside DST
    assert sorted(os.listdir(tmp_path)) == ["hf", "mlx"]


def test_convert_force_never_overwrites_a_users_readme(tmp_path):
    src = generate(tmp_path / "hf")
    dst = tmp_path / "mlx"
    run([CONVERT, src, str(dst), "--quiet"])
    card = (dst / "README.md").read_text()
    # a card kintsugi wrote is replaced by the new card
    r = run([CONVERT, src, str(dst), "--force", "--json"])
    rep = json.loads(r.stdout)
    assert rep["card"] == "README.md" and "README.md" in rep["existing_output"]["replaced"]
    assert (dst / "README.md").read_text() == card
    # the user's own README is kept; the card goes beside it, and the summary says where
    (dst / "README.md").write_text("# My model\n\nmy words\n")
    r = run([CONVERT, src, str(dst), "--force"])
    assert (dst / "README.md").read_text() == "# My model\n\nmy words\n"
    assert (dst / "README.kintsugi.md").read_text() == card
    assert "README.kintsugi.md" in r.stdout and "README.md is not a kintsugi card" in r.stdout
    rep = json.loads(run([CONVERT, src, str(dst), "--force", "--json"]).stdout)
    assert rep["card"] == "README.kintsugi.md" and "README.md" in rep["existing_output"]["kept"]
    # once the user's README is gone, the card goes back to README.md and its twin is stale
    (dst / "README.md").unlink()
    run([CONVERT, src, str(dst), "--force", "--quiet"])
    assert (dst / "README.md").read_text() == card and not (dst / "README.kintsugi.md").exists()


def test_testdata_force_keeps_a_repository_clone(tmp_path):
    out = str(tmp_path / "ckpt")
    generate(out, "--shards", "3")
    make_repo_clone(out)
    before = users_files(snapshot(out))
    r = run([TESTDATA, "--force", "--shards", "1", out])
    assert users_files(snapshot(out)) == before
    assert sorted(f for f in os.listdir(out) if f.endswith(".safetensors")) == ["model.safetensors"]
    assert "kept" in r.stdout and "NOTES.md" in r.stdout


def test_a_killed_force_run_is_undone_by_the_next_run(tmp_path):
    """The states a --force run passes through, left as SIGKILL would leave
    them, and what the next run makes of each: the user's files come back."""
    src = generate(tmp_path / "hf")
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid = dead.pid

    def state(name, moved, old_aside):
        base = tmp_path / name
        dst = base / "mlx"
        base.mkdir()
        run([CONVERT, src, str(dst), "--quiet"])
        make_repo_clone(str(dst))
        expect = users_files(snapshot(str(dst)))
        tmp = base / f"mlx.kintsugi-tmp-{pid}"
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")  # a partial new output
        if moved:  # the user's entries already moved into the new output, the journal written first
            (tmp / ".kintsugi-kept").write_bytes(b"".join(n.encode() + b"\0" for n in USER))
            for n in USER:
                os.rename(dst / n, tmp / n)
        if old_aside:  # DST already renamed aside
            os.rename(dst, base / f"mlx.kintsugi-old-{pid}")
        return dst, expect

    for name, moved, old_aside in (("a", False, False), ("b", True, False), ("c", True, True)):
        dst, expect = state(name, moved, old_aside)
        r = run([CONVERT, src, str(dst), "--force"])
        assert users_files(snapshot(str(dst))) == expect, name
        assert sorted(os.listdir(dst.parent)) == ["mlx"], (name, os.listdir(dst.parent))
        assert "NOTES.md" in r.stdout


def tools_writing_stdout(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet"])
    shard = os.path.join(src, sorted(f for f in os.listdir(src) if f.endswith(".safetensors"))[0])
    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 8)
    choices = tmp_path / "choices.jsonl"
    choices.write_text(json.dumps({"context": "a b", "choices": [" c", " d"], "answer": 0}) + "\n")
    return [
        ("kintsugi-run", [mlx, "--prompt", "hi", "--max-tokens", "4"]),
        ("kintsugi-run", [mlx, "--prompt", "hi", "--max-tokens", "4", "--json"]),
        ("kintsugi-run", [mlx, "--perplexity", str(text)]),
        ("kintsugi-run", [mlx, "--choices", str(choices)]),
        ("kintsugi-run", [mlx, "--tokenize"]),
        ("kintsugi-convert", [src, str(tmp_path / "out1"), "--json"]),
        ("kintsugi-convert", [src, str(tmp_path / "out2")]),
        ("kintsugi-fixup", [mlx, "--json"]),
        ("kintsugi-fixup", [mlx, "--dry-run"]),
        ("kintsugi-fixup", [mlx, "--check"]),
        ("kintsugi-quantize", [shard, str(tmp_path / "q.safetensors"), "--error"]),
        ("kintsugi-verify", [mlx]),
        ("kintsugi-verify", [mlx, "--json"]),
        ("kintsugi-verify", [shard]),
        ("kintsugi-testdata", ["--help"]),
        ("kintsugi-verify", ["--version"]),
    ]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_every_tool_fails_on_a_full_stdout(tmp_path):
    for name, args in tools_writing_stdout(tmp_path):
        with open("/dev/full", "w") as full:
            r = subprocess.run([tool(name), *args], stdout=full, stderr=subprocess.PIPE, text=True, timeout=600,
                               input="hello world\n" * 2000)
        line = one_line_error(r, name, 2)
        assert "cannot write to standard output: no space left on the device" in line, (args, line)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_verify_leaves_no_report_saying_pass_when_one_cannot_be_written(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([CONVERT, src, mlx, "--quiet"])
    report = tmp_path / "report.json"
    run([tool("kintsugi-verify"), mlx, "--json-out", str(report)])
    assert json.loads(report.read_text())["checks"]  # an earlier run's report, saying pass
    with open("/dev/full", "w") as full:
        r = subprocess.run([tool("kintsugi-verify"), mlx, "--json-out", str(report), "--junit", "-"], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=600)
    assert "no space left on the device" in one_line_error(r, "kintsugi-verify", 2)
    assert not report.exists()
    assert [p.name for p in tmp_path.iterdir() if "report" in p.name] == []  # no temporary file either


def test_a_path_that_is_not_utf8_survives_json(tmp_path):
    """--json names paths losslessly: a byte that is not UTF-8 is \\udcXX, as
    Python's os.fsdecode spells it, so os.fsencode gives the bytes back."""
    src = generate(tmp_path / "hf")
    dst = os.path.join(os.fsencode(str(tmp_path)), b"out-\xff\xfe")
    r = subprocess.run([CONVERT.encode(), src.encode(), dst, b"--json"], capture_output=True, check=True)
    rep = json.loads(r.stdout)  # strict: the bytes are escaped, the output is UTF-8
    r.stdout.decode("utf-8")
    assert os.fsencode(rep["output"]) == dst
    assert "\\udcff\\udcfe" in r.stdout.decode() and "\\u0007" not in r.stdout.decode()
