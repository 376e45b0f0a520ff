"""Faults injected into kintsugi-convert and kintsugi-fixup, and inputs built
to exhaust resources. After every fault: the source is untouched, nothing
that looks complete is left behind (kintsugi-verify refuses whatever is
there), the error is one line naming the problem, and a re-run succeeds."""
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import tarfile
import time

import pytest

from conftest import generate, run, tool

CONVERT, FIXUP, VERIFY, RUN = tool("kintsugi-convert"), tool("kintsugi-fixup"), tool("kintsugi-verify"), tool("kintsugi-run")


def digest(d):
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(d)):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(os.path.relpath(p, d).encode() + open(p, "rb").read())
    return h.hexdigest()


def leftovers(parent):
    return [n for n in os.listdir(parent) if ".kintsugi-tmp-" in n or ".kintsugi-old-" in n]


def one_line_error(stderr, *words):
    lines = [l for l in stderr.strip().splitlines() if l]
    assert len(lines) >= 1 and all(w in stderr for w in words), stderr
    assert not any(w in stderr for w in ("Segmentation", "AddressSanitizer", "runtime error", "Aborted")), stderr


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A checkpoint large enough (260 MB, 3 shards) that a conversion takes a
    few tenths of a second, so that kills land inside it."""
    d = tmp_path_factory.mktemp("faults")
    src = generate(d / "hf", "--vocab", "262144", "--shards", "3")
    return src, digest(src)


def limit_file_size(nbytes, ignore_signal):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
        if ignore_signal:  # the write then fails with EFBIG, as on a full disk
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return pre


def test_full_disk_during_convert(big, tmp_path):
    src, before = big
    dst = str(tmp_path / "out")
    r = subprocess.run([CONVERT, src, dst, "--quiet"], capture_output=True, text=True,
                       preexec_fn=limit_file_size(20 << 20, True), timeout=120)
    assert r.returncode == 2
    one_line_error(r.stderr, "kintsugi-convert")
    assert ".kintsugi-tmp" not in r.stderr and dst in r.stderr  # the destination named, not our temporary directory
    assert not os.path.exists(dst) and leftovers(tmp_path) == []
    assert digest(src) == before


def test_file_size_signal_kills_convert_then_rerun_cleans_up(big, tmp_path):
    src, before = big
    dst = str(tmp_path / "out")
    r = subprocess.run([CONVERT, src, dst, "--quiet"], capture_output=True, text=True,
                       preexec_fn=limit_file_size(20 << 20, False), timeout=120)
    assert r.returncode == -signal.SIGXFSZ
    assert not os.path.exists(dst)
    assert run([VERIFY, dst, "--quiet"], check=False).returncode != 0
    run([CONVERT, src, dst, "--quiet"])
    assert leftovers(tmp_path) == [] and digest(src) == before
    assert run([VERIFY, dst, "--original", src, "--quiet"], check=False).returncode == 0


@pytest.mark.release_only
def test_sigkill_at_random_points_of_convert(big, tmp_path):
    src, before = big
    t0 = time.monotonic()
    run([CONVERT, src, str(tmp_path / "timing"), "--quiet"])
    took = time.monotonic() - t0
    rng = random.Random(1)
    outcomes = {"absent": 0, "complete": 0}
    for i in range(10):
        dst = str(tmp_path / f"out{i}")
        p = subprocess.Popen([CONVERT, src, dst, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, took))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert digest(src) == before
        if os.path.exists(dst):  # the kill came after the final rename: it must be whole
            outcomes["complete"] += 1
            assert run([VERIFY, dst, "--original", src, "--quiet"], check=False).returncode == 0
        else:
            outcomes["absent"] += 1
            for tmp in leftovers(tmp_path):  # a partial output is never accepted
                assert run([VERIFY, str(tmp_path / tmp), "--quiet"], check=False).returncode != 0
            run([CONVERT, src, dst, "--quiet"])  # and the re-run succeeds
            assert run([VERIFY, dst, "--original", src, "--quiet"], check=False).returncode == 0
    assert leftovers(tmp_path) == []
    assert outcomes["absent"] >= 3, outcomes  # most kills must land inside the run


def test_an_unfinished_output_is_never_accepted(big, tmp_path):
    """A run killed after its last file but before the final rename leaves
    a temporary directory whose every file is whole: verify still fails it,
    by name, and points to the re-run."""
    src, _ = big
    dst = tmp_path / "out"
    run([CONVERT, src, str(dst), "--quiet"])
    tmp = tmp_path / "out.kintsugi-tmp-4242"
    shutil.copytree(dst, tmp)
    r = run([VERIFY, str(tmp) + "/", "--quiet"], check=False)
    assert r.returncode == 1 and "out.kintsugi-tmp-4242 is the temporary directory" in r.stderr, r.stderr
    assert "run the conversion again" in r.stderr
    assert run([VERIFY, str(dst), "--quiet"], check=False).returncode == 0


def test_shard_truncated_mid_stream(big, tmp_path):
    """The last shard is read last: cut it while the first ones are converted."""
    src0, _ = big
    src = str(tmp_path / "hf")
    shutil.copytree(src0, src)
    last = sorted(f for f in os.listdir(src) if f.endswith(".safetensors"))[-1]
    dst = str(tmp_path / "out")
    p = subprocess.Popen([CONVERT, src, dst, "--quiet"], stderr=subprocess.PIPE, text=True)
    time.sleep(0.05)
    size = os.path.getsize(os.path.join(src, last))
    os.truncate(os.path.join(src, last), size // 2)
    err = p.communicate(timeout=120)[1]
    if p.returncode == 0:  # finished before the cut: then the output is whole
        assert run([VERIFY, dst, "--quiet"], check=False).returncode == 0
        pytest.skip("conversion finished before the truncation")  # never in CI: see the assert below
    assert p.returncode in (1, 2), (p.returncode, err)
    one_line_error(err, "kintsugi-convert")
    assert not os.path.exists(dst)
    r = run([CONVERT, src, dst, "--quiet"], check=False)  # now refused up front, naming the shard
    assert r.returncode == 1 and last in r.stderr
    shutil.copy(os.path.join(src0, last), os.path.join(src, last))
    run([CONVERT, src, dst, "--quiet"])  # the shard back: converts, and removes the killed run's leftovers
    assert leftovers(tmp_path) == []


def test_unreadable_shard(big, tmp_path):
    src0, _ = big
    src = str(tmp_path / "hf")
    shutil.copytree(src0, src)
    shard = sorted(f for f in os.listdir(src) if f.endswith(".safetensors"))[1]
    os.remove(os.path.join(src, shard))
    os.mkdir(os.path.join(src, shard))  # unreadable as a file, even for root
    r = run([CONVERT, src, str(tmp_path / "out"), "--quiet"], check=False)
    assert r.returncode in (1, 2)
    one_line_error(r.stderr, shard)
    assert not os.path.exists(tmp_path / "out") and leftovers(tmp_path) == []


def test_corrupted_archive(tmp_path):
    src = generate(tmp_path / "hf")
    arc = str(tmp_path / "model.tar.gz")
    with tarfile.open(arc, "w:gz") as tf:
        tf.add(src, arcname="model")
    data = bytearray(open(arc, "rb").read())
    rng = random.Random(3)
    for _ in range(20):
        data[rng.randrange(200, len(data) - 100)] ^= 0xFF
    open(arc, "wb").write(data)
    r = run([CONVERT, arc, str(tmp_path / "out"), "--quiet"], check=False)
    assert r.returncode in (1, 2)
    one_line_error(r.stderr, "model.tar.gz")
    assert not os.path.exists(tmp_path / "out") and leftovers(tmp_path) == []


def test_read_only_destination(tmp_path):
    src = generate(tmp_path / "hf")
    if os.geteuid() == 0:
        dst = "/proc/kintsugi-out"  # root ignores permission bits; /proc refuses new entries
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        dst = str(ro / "out")
    r = run([CONVERT, src, dst, "--quiet"], check=False)
    assert r.returncode == 2
    one_line_error(r.stderr, "kintsugi-convert", "out")


# ---- fixup ----

@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    d = tmp_path_factory.mktemp("fixup-faults")
    src = generate(d / "hf")
    out = str(d / "mlx")
    run([CONVERT, src, out, "--quiet"])
    cfg = json.load(open(os.path.join(out, "config.json")))
    cfg["quantization"]["mode"] = "affine"
    cfg.pop("time_step_limit")
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=4)
    tc = json.load(open(os.path.join(out, "tokenizer_config.json")))
    tc["tokenizer_class"] = "TokenizersBackend"
    json.dump(tc, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)
    return src, out


def all_json_parse(d):
    for f in os.listdir(d):
        if f.endswith(".json"):
            json.load(open(os.path.join(d, f)))


def test_full_disk_during_fixup(broken, tmp_path):
    src, out = broken
    d = str(tmp_path / "m")
    shutil.copytree(out, d)
    before = digest(d)
    r = subprocess.run([FIXUP, d], capture_output=True, text=True, preexec_fn=limit_file_size(512, True), timeout=60)
    assert r.returncode == 2
    one_line_error(r.stderr, "kintsugi-fixup")
    all_json_parse(d)
    # what was not replaced is byte for byte the original; a re-run finishes the job
    run([FIXUP, d, "--original", src])
    assert run([VERIFY, d, "--original", src, "--quiet"], check=False).returncode == 0
    assert before != digest(d)


def test_sigkill_at_random_points_of_fixup(broken, tmp_path):
    src, out = broken
    rng = random.Random(5)
    originals = {f: open(os.path.join(out, f), "rb").read() for f in ("config.json", "tokenizer_config.json")}
    for i in range(12):
        d = str(tmp_path / f"m{i}")
        shutil.copytree(out, d)
        p = subprocess.Popen([FIXUP, d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.03))
        p.send_signal(signal.SIGKILL)
        p.wait()
        all_json_parse(d)  # never a half-written file
        for f, data in originals.items():  # a backup, when present, is the original
            if os.path.exists(os.path.join(d, f + ".orig")):
                assert open(os.path.join(d, f + ".orig"), "rb").read() == data
        run([FIXUP, d, "--original", src])  # the original's tokenizer_config.json, byte for byte
        assert run([VERIFY, d, "--original", src, "--quiet"], check=False).returncode == 0


# ---- resource bounds ----

def measured(args, stdin=""):
    """Run ARGS; its exit status, stderr and its own peak RSS in MiB (not the
    maximum over every child this test process ever had)."""
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    p.stdin.write(stdin)
    p.stdin.close()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, err, usage.ru_maxrss / 1024


def test_header_claiming_a_huge_size(tmp_path):
    for claim in (1 << 62, 100 << 20, 0xFFFFFFFFFFFFFFFF):
        p = tmp_path / "huge.safetensors"
        p.write_bytes(struct.pack("<Q", claim) + b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' + bytes(4))
        t0 = time.monotonic()
        rc, err, rss = measured([VERIFY, str(p)])
        assert rc == 1 and time.monotonic() - t0 < 5
        one_line_error(err, "huge.safetensors")
        assert rss < 1024


def test_tokenizer_with_millions_of_merges(tmp_path):
    """Two million merges over a byte alphabet: loads in bounded time and
    memory, or is refused with a clear error."""
    src = generate(tmp_path / "hf")
    t = json.load(open(os.path.join(src, "tokenizer.json")))
    base = [s for s in t["model"]["vocab"] if len(s) == 1][:200]
    merges, vocab = [], dict(t["model"]["vocab"])
    i = 0
    while len(merges) < 2_000_000:
        a, b = base[i % len(base)], base[(i // len(base)) % len(base)] + str(i)
        merges.append([a, b])
        i += 1
    t["model"]["merges"] = merges
    big = tmp_path / "tok"
    big.mkdir()
    (big / "tokenizer.json").write_text(json.dumps(t))
    # kintsugi-run reads the model directory's tokenizer: replace it with the big one
    shutil.copy(big / "tokenizer.json", os.path.join(src, "tokenizer.json"))
    t0 = time.monotonic()
    rc, err, rss = measured([RUN, str(src), "--tokenize"], "hello world\n")
    took = time.monotonic() - t0
    assert rc in (0, 1), err
    if rc:
        one_line_error(err, "merges")
    assert took < 120, took
    assert rss < 4096


def test_deeply_nested_json(tmp_path):
    src = generate(tmp_path / "hf")
    out = str(tmp_path / "mlx")
    run([CONVERT, src, out, "--quiet"])
    for depth in (2000, 1_000_000):
        open(os.path.join(out, "config.json"), "w").write("[" * depth + "]" * depth)
        t0 = time.monotonic()
        r = run([VERIFY, out, "--quiet"], check=False)
        assert r.returncode in (1, 2) and time.monotonic() - t0 < 10
        one_line_error(r.stderr, "config.json")


# ---- inputs that once crashed (found by tests/fuzz/fuzz_tokenizer) ----

def test_tokenizer_with_an_added_id_twice(tmp_path):
    """Used to free an added token's text while another entry still pointed at
    it (ASan: use after free in encoding); now refused by name."""
    src = generate(tmp_path / "hf")
    p = os.path.join(src, "tokenizer.json")
    t = json.load(open(p))
    dup = dict(t["added_tokens"][5])
    dup["content"] = "<another>"
    t["added_tokens"].append(dup)
    json.dump(t, open(p, "w"))
    r = subprocess.run([RUN, src, "--tokenize"], input="<another> hello\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    one_line_error(r.stderr, "appears twice", "tokenizer.json")


def test_config_with_a_key_three_times(tmp_path):
    """Used to read a freed key in the JSON reader (ASan: use after free);
    Python's rule holds: the first position, the last value."""
    src = generate(tmp_path / "hf")
    out = str(tmp_path / "mlx")
    run([CONVERT, src, out, "--quiet"])
    p = os.path.join(out, "config.json")
    text = open(p).read().rstrip()
    assert text.endswith("}")
    open(p, "w").write(text[:-1] + ', "model_type": "x", "model_type": "y", "model_type": "nemotron_h"}')
    rc = run([VERIFY, out, "--quiet"], check=False)
    assert rc.returncode == 0, rc.stderr


def test_tokenizer_with_a_huge_id(tmp_path):
    """A vocabulary id of 99,999,999 in a small file used to allocate a token
    table of 2.8 GB (found by fuzz_tokenizer as an out-of-memory); now refused."""
    src = generate(tmp_path / "hf")
    p = os.path.join(src, "tokenizer.json")
    t = json.load(open(p))
    t["model"]["vocab"]["zzz-huge"] = 99_999_999
    json.dump(t, open(p, "w"))
    rc, err, rss = measured([RUN, src, "--tokenize"], "hello\n")
    assert rc == 1
    one_line_error(err, "99999999", "nearly dense")
    assert rss < 1024
