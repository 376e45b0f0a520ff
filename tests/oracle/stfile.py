"""Read and write .safetensors files with the standard library only (the
tests corrupt files byte by byte; tests/fuzz/make_corpus.py writes seeds)."""
import json
import struct


def write(path, tensors, meta=None):
    """TENSORS: {name: (dtype, shape, bytes)}, in file order."""
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    blob = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    if path is None:
        return blob
    with open(path, "wb") as f:
        f.write(blob)
    return None


def read(path):
    """The tensors as {name: [dtype, shape, bytes]} and the metadata."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    return {k: [v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]] for k, v in header.items()}, meta
