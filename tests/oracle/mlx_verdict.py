"""mlx-lm's verdict on model directories, one per line of stdin.

For each path: mlx_lm.load (strict, tokenizer included) and one forward pass
over a few tokens whose logits must all be finite. Prints one line per path:
"ok", or "reject: <the exception, one line>". Memory is capped so that a
config asking for a huge array fails here as it would on a user's machine
(with an exception or a dead process, which the caller counts as a
rejection) instead of taking the test machine down.
"""
import resource
import sys

LIMIT = 6 << 30


def verdict(path):
    import mlx.core as mx
    from mlx_lm import load
    model, tokenizer = load(path)
    ids = tokenizer.encode("Hello 日本", add_special_tokens=False)[:8] or [1]
    logits = model(mx.array([ids]))
    mx.eval(logits)
    if not bool(mx.all(mx.isfinite(logits.astype(mx.float32))).item()):
        raise ValueError("logits are not finite")
    return "ok"


def main():
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))
    import mlx.core as mx
    mx.set_default_device(mx.cpu)
    import mlx_lm  # noqa: F401  (imported once, before the first path)
    print("ready", flush=True)
    for line in sys.stdin:
        path = line.rstrip("\n")
        try:
            out = verdict(path)
        except BaseException as e:  # noqa: BLE001 - every failure is a verdict
            text = f"{type(e).__name__}: {e}".replace("\n", " ")[:300]
            out = "reject: " + text
        print(out, flush=True)


if __name__ == "__main__":
    main()
