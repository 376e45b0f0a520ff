"""Files we write read back identically through Python safetensors and
mx.load; files Python writes are read and listed correctly by us."""
import glob
import json
import os

import mlx.core as mx
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import TESTTOOL, run, tool


def ours_listing(path):
    files = sorted(glob.glob(os.path.join(path, "model*.safetensors"))) if os.path.isdir(path) else [path]
    return {t["name"]: t for f in files for t in json.loads(run([tool("kintsugi-verify"), "--json", f]).stdout)["tensors"]}


def python_written(tmp_path):
    rng = np.random.default_rng(7)
    tensors = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f16": rng.standard_normal((7,)).astype(np.float16),
        "i64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "u8": np.arange(10, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5, dtype=np.float64),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "i16": np.array([-1, 2], dtype=np.int16),
    }
    path = str(tmp_path / "py.safetensors")
    save_file(tensors, path, metadata={"format": "pt", "note": "日本"})
    return path, tensors


def test_we_list_python_files_exactly(tmp_path):
    path, tensors = python_written(tmp_path)
    listing = ours_listing(path)
    assert set(listing) == set(tensors)
    names = {"float32": "F32", "float16": "F16", "int64": "I64", "uint8": "U8", "bool": "BOOL",
             "float64": "F64", "int16": "I16"}
    for name, a in tensors.items():
        assert listing[name]["dtype"] == names[str(a.dtype)]
        assert listing[name]["shape"] == list(a.shape)
        assert listing[name]["bytes"] == a.nbytes


def test_rewritten_file_reads_back_identically(tmp_path):
    src, tensors = python_written(tmp_path)
    out = str(tmp_path / "ours.safetensors")
    run([TESTTOOL, "st-rewrite", src, out])
    back = load_file(out)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert back[k].tobytes() == v.tobytes()


def test_mlx_written_file_rewritten_matches_mx_load(tmp_path):
    arrays = {
        "w": mx.random.normal((16, 64)).astype(mx.bfloat16),
        "q": mx.array(np.arange(32, dtype=np.uint32).reshape(4, 8)),
        "s": mx.random.normal((16, 1)).astype(mx.float16),
    }
    src = str(tmp_path / "mlx.safetensors")
    mx.save_safetensors(src, arrays, metadata={"format": "mlx"})
    out = str(tmp_path / "ours.safetensors")
    run([TESTTOOL, "st-rewrite", src, out])
    back = mx.load(out)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype
        assert mx.array_equal(back[k], v).item()
    # the header MLX writes, but for the data order (MLX's follows a hash map's iteration)
    def header(p):
        with open(p, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            h = json.loads(f.read(n))
        return {k: {kk: vv for kk, vv in v.items() if kk != "data_offsets"} if k != "__metadata__" else v
                for k, v in h.items()}
    assert header(out) == header(src)
    with open(out, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n).decode()
    assert raw == json.dumps(json.loads(raw), separators=(",", ":"), sort_keys=True)
    assert list(json.loads(raw)["s"]) == ["data_offsets", "dtype", "shape"]


def test_generated_shards_read_by_safetensors_and_mlx(tiny):
    index = json.load(open(os.path.join(tiny, "model.safetensors.index.json")))
    shards = sorted(glob.glob(os.path.join(tiny, "model-*.safetensors")))
    assert len(shards) == 2
    seen = {}
    for s in shards:
        with open(s, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            assert json.loads(f.read(n))["__metadata__"] == {"format": "pt"}
        for k, v in mx.load(s).items():
            seen[k] = (os.path.basename(s), v)
    assert {k: v[0] for k, v in seen.items()} == index["weight_map"]
    total = sum(v[1].nbytes for v in seen.values())
    assert index["metadata"]["total_size"] == total
    listing = ours_listing(tiny)
    for k, (_, v) in seen.items():
        assert listing[k]["shape"] == list(v.shape)
        assert listing[k]["bytes"] == v.nbytes


def test_conversions_match_mlx_astype():
    """bf16 and f16 narrowing: our bytes equal MLX's for many f32 values."""
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2**32, size=200000, dtype=np.uint64).astype(np.uint32)
    f = bits.view(np.float32)
    f = f[~np.isnan(f)]
    ours_bf16 = (f.view(np.uint32).astype(np.uint64) + 0x7FFF + ((f.view(np.uint32) >> 16) & 1)) >> 16
    mlx_bf16 = np.array(mx.array(f).astype(mx.bfloat16).view(mx.uint16))
    # the reference formula used by lib/dtype.h (checked in C by the unit tests)
    assert np.array_equal(ours_bf16.astype(np.uint16), mlx_bf16)
