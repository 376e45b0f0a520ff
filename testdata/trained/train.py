"""train.py - trains the embedded Nemotron-H model on the chat corpus.

  python testdata/trained/train.py OUT_DIR [--steps N] [--quick]

The architecture is exactly mlx-lm's: the model is built by mlx_lm.load from
a kintsugi-testdata checkpoint (tiny shape, pattern M-M*M-: Mamba-2,
attention and MLP layers; its tokenizer's BPE trained on this corpus), trained
in float32 on MLX's CPU backend, and written back in bfloat16 in the layout
the checkpoint came in (config.json, tokenizer files, two shards and their
index), so it is a Hugging Face original like any other.

What is learned: for a chat item, the assistant's last turn after the
template's generation prompt, up to and including the end-of-turn token
<SPECIAL_12>; for prose (with <s> in front, as kintsugi-run --perplexity
scores it) and the multiple-choice drills (without, as lm-evaluation-harness
scores them), every token. Deterministic for a given machine: fixed seed,
fixed order, fixed number of steps (float sums in BLAS may differ between
machines, so the bytes may too).

MLX's CPU wheel links the reference BLAS; scripts/train-model.sh preloads
OpenBLAS, which is about 10x faster here and changes nothing else.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402

VOCAB = 4096
PATTERN = "M-M*M-"  # the tiny shape of kintsugi-testdata: Mamba-2, MLP and attention layers
BPE_MAX_CHARS = 2   # Japanese tokens of one or two characters, as in real vocabularies
SEED = 7
BATCH = 16
EOT = "<SPECIAL_12>"


def tokenizer_text(train):
    """What the BPE merges are learned from: every text the model will see,
    the chat template's own words included (the merges follow the
    frequencies; BPE_MAX_CHARS keeps Japanese tokens short)."""
    parts = ["System\nUser\nAssistant\n<think>\n</think>\n<think></think>"] * len(train)
    for item in train:
        parts.extend([item["text"]] if "text" in item else [m["content"] for m in item["messages"]])
    return "\n".join(parts) + "\n"


def encode_items(items, hf, tok, bos):
    """(ids, mask) per item: mask 1 where the next token is learned."""
    out = []
    for item in items:
        if "text" in item:
            ids = tok.encode(item["text"], add_special_tokens=False).ids
            prose = not item["text"].startswith(corpus.JCQA_DESCRIPTION)
            if prose:
                ids = [bos] + ids
            out.append((ids, [1] * (len(ids) - 1)))
            continue
        prompt = hf.apply_chat_template(item["messages"][:-1], add_generation_prompt=True, tokenize=False)
        full = prompt + item["messages"][-1]["content"] + "\n" + EOT
        p = tok.encode(prompt, add_special_tokens=False).ids
        ids = tok.encode(full, add_special_tokens=False).ids
        if ids[:len(p)] != p:
            sys.exit(f"train.py: the prompt's tokens are not a prefix of the item's: {prompt!r}")
        out.append((ids, [0] * (len(p) - 1) + [1] * (len(ids) - len(p))))
    return out


def batches(encoded, rng):
    """Batches of similar length (less padding), in a shuffled order."""
    order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i][0]), rng.random()))
    groups = [order[i:i + BATCH] for i in range(0, len(order), BATCH)]
    rng.shuffle(groups)
    for g in groups:
        T = max(len(encoded[i][0]) for i in g) - 1
        x = np.zeros((len(g), T), np.int32)
        y = np.zeros((len(g), T), np.int32)
        w = np.zeros((len(g), T), np.float32)
        for r, i in enumerate(g):
            ids, m = encoded[i]
            x[r, :len(ids) - 1] = ids[:-1]
            y[r, :len(ids) - 1] = ids[1:]
            w[r, :len(m)] = m
        yield mx.array(x), mx.array(y), mx.array(w)


def loss_fn(model, x, y, w):
    ce = nn.losses.cross_entropy(model(x), y)
    return (ce * w).sum() / w.sum()


def mean_loss(model, encoded):
    tot, n = 0.0, 0.0
    for x, y, w in batches(encoded, random.Random(0)):
        ce = nn.losses.cross_entropy(model(x), y)
        tot += (ce * w).sum().item()
        n += w.sum().item()
    return tot / n


def save_bf16(model, base, out):
    """The trained parameters in the checkpoint's own names, shapes, dtypes
    and shards."""
    params = dict(nn.utils.tree_flatten(model.parameters()))
    index = json.load(open(os.path.join(base, "model.safetensors.index.json")))
    for shard in sorted(set(index["weight_map"].values())):
        ref = mx.load(os.path.join(base, shard))
        tensors = {}
        for name, r in ref.items():
            v = params[name]
            if "conv1d.weight" in name:
                v = v.moveaxis(2, 1)  # mlx-lm's [C, K, 1] back to Hugging Face's [C, 1, K]
            if v.shape != r.shape:
                sys.exit(f"train.py: {name}: shape {v.shape}, checkpoint {r.shape}")
            tensors[name] = v.astype(r.dtype)
        mx.save_safetensors(os.path.join(out, shard), tensors, metadata={"format": "pt"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=2900)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--testdata", default="bin/kintsugi-testdata")
    args = ap.parse_args()
    mx.random.seed(SEED)
    rng = random.Random(SEED)
    train, heldout, _, _ = corpus.build()
    scratch = args.out + ".tmp-train"
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    text_path = os.path.join(scratch, "bpe-corpus.txt")
    open(text_path, "w", encoding="utf-8").write(tokenizer_text(train))
    base = os.path.join(scratch, "base")
    subprocess.run([args.testdata, "--vocab", str(VOCAB), "--pattern", PATTERN, "--corpus", text_path,
                    "--bpe-max-chars", str(BPE_MAX_CHARS), "--seed", str(SEED), base],
                   check=True)

    from mlx_lm import load
    model, _ = load(base)
    model.set_dtype(mx.float32)
    hf = PreTrainedTokenizerFast.from_pretrained(base)
    tok = Tokenizer.from_file(os.path.join(base, "tokenizer.json"))
    enc_train = encode_items(train, hf, tok, bos=1)
    held_items = [{"messages": h["messages"] + [{"role": "assistant", "content": corpus.assistant_text(h, h["think"])}]}
                  for h in heldout]
    enc_held = encode_items(held_items, hf, tok, bos=1)
    n_tok = sum(len(i[0]) for i in enc_train)
    print(f"train.py: {len(enc_train)} items, {n_tok} tokens, longest {max(len(i[0]) for i in enc_train)}; "
          f"{args.steps} steps of {BATCH}", flush=True)

    warm = 100
    sched = optim.join_schedules([optim.linear_schedule(args.lr / warm, args.lr, warm),
                                  optim.cosine_decay(args.lr, args.steps - warm, args.lr / 10)], [warm])
    opt = optim.AdamW(learning_rate=sched, weight_decay=0.01)
    step_fn = nn.value_and_grad(model, loss_fn)
    log = []
    step, t0 = 0, time.time()
    while step < args.steps:
        running, k = 0.0, 0
        for x, y, w in batches(enc_train, rng):
            loss, grads = step_fn(model, x, y, w)
            grads, _ = optim.clip_grad_norm(grads, 1.0)
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state, loss)
            running += loss.item()
            k += 1
            step += 1
            if step >= args.steps:
                break
        held = mean_loss(model, enc_held)
        log.append({"step": step, "train_loss": running / k, "heldout_loss": held, "seconds": round(time.time() - t0)})
        print(f"train.py: step {step}: train loss {running / k:.4f}, held-out loss {held:.4f}, "
              f"{time.time() - t0:.0f} s", flush=True)

    os.makedirs(args.out + ".tmp-out", exist_ok=True)
    tmp = args.out + ".tmp-out"
    for f in os.listdir(base):
        if not f.endswith(".safetensors"):
            shutil.copy(os.path.join(base, f), os.path.join(tmp, f))
    save_bf16(model, base, tmp)
    json.dump({"steps": args.steps, "batch": BATCH, "lr": args.lr, "seed": SEED, "vocab": VOCAB,
               "train_tokens_per_epoch": n_tok, "log": log}, open(os.path.join(tmp, "training_log.json"), "w"), indent=1)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.rename(tmp, args.out)
    shutil.rmtree(scratch)
    print(f"train.py: wrote {args.out} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
