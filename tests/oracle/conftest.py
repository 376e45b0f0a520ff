"""Shared fixtures: where our binaries are, and generated checkpoints."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("KT_BIN", os.path.join(ROOT, "bin"))
TESTTOOL = os.environ.get("KT_TESTTOOL", os.path.join(ROOT, "build", "release", "tests", "testtool"))
# The oracles compare the exact path (float32 activations) with mlx-lm; tests
# of the integer path (generation's default) ask for it explicitly.
os.environ["KT_ACTIVATIONS"] = "f32"
INT8 = dict(os.environ, KT_ACTIVATIONS="int8")
# the ASan+UBSan pass (tests/run.sh): repetitive tests take a sample
SANITIZED = os.environ.get("KT_SANITIZED") == "1"


def pytest_configure(config):
    # Tests whose point is a measured figure over a whole data set (accuracy,
    # KL divergence): the release pass runs them; the sanitizer pass leaves
    # them out (-m "not figures"), since the paths they take are the ones the
    # other tests take, and under the sanitizers they would cost half the run.
    config.addinivalue_line("markers", "figures: a figure over a whole data set (release pass only)")
    # Tests whose C paths other tests already take under the sanitizers, and
    # whose time goes elsewhere: the Python peer's (one recipe of several),
    # Mesa's JIT on lavapipe (the other Vulkan tests stay), or killing a
    # process at random points (an outcome on disk, not a memory error).
    config.addinivalue_line("markers", "release_only: its C paths are taken under the sanitizers by other tests")


def tool(name):
    return os.path.join(BIN, name)


def run(args, check=True, **kw):
    r = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}): {r.stderr}")
    return r


def one_line_error(r, name, code=2):
    """R failed with CODE and said one line, "NAME: ...", with no sanitizer
    report; returns the line."""
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"{name}: ") and not lines[0].startswith(f"{name}: {name}:"), lines[0]
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr
    return lines[0]


def generate(out_dir, *options):
    run([tool("kintsugi-testdata"), "--force", *options, str(out_dir)])
    return str(out_dir)


def generate_and_convert(base, *convert_options):
    """The default tiny checkpoint in BASE/hf and its conversion in BASE/mlx."""
    src = generate(base / "hf")
    mlx = str(base / "mlx")
    run([tool("kintsugi-convert"), src, mlx, "--quiet", *convert_options])
    return src, mlx


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The default tiny checkpoint: M, -, * layers, two shards, A_log in f32."""
    return generate(tmp_path_factory.mktemp("tiny") / "model")


def hub_cache(tmp_path, src, name="nvidia/Tiny-Nemotron"):
    """SRC laid out in TMP_PATH/cache as huggingface_hub caches NAME: refs/main
    names a commit, its snapshot's files are links into blobs/. Returns the
    environment that points at the cache, and the commit."""
    import hashlib
    import shutil
    cache = tmp_path / "cache"
    repo = cache / ("models--" + name.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in os.listdir(src):
        blob = repo / "blobs" / hashlib.sha256(f.encode()).hexdigest()
        shutil.copy(os.path.join(src, f), blob)
        os.symlink(os.path.relpath(blob, snap), snap / f)
    return {**os.environ, "HF_HUB_CACHE": str(cache)}, commit
