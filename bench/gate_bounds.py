"""The measurements behind kintsugi-verify's behavioural bounds (docs/VERIFY.md).

Conversions of the trained model (testdata/trained/model): correct ones (RTN in
both roundings, --fit mse, other bit widths and group sizes, a mixed recipe)
and damaged ones (4-bit RTN whose scales, or scales and biases, carry uniform
noise of +-1%, +-2%, +-5%), each judged by `kintsugi-verify --kld` on five
texts: the held-out prose, its two halves, and two texts the model never saw
(English and Japanese). Prints one line per text and conversion: the verdict,
the ratios to the RTN reference with their z, and the floor's relative KL.

    .venv/bin/python bench/gate_bounds.py [WORKDIR]

Needs bin/ built and the test venv (MLX writes the noisy conversions).
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "oracle"))
from damage import noisy_copy  # noqa: E402  (the tests' damaged conversions)
MODEL = os.path.join(ROOT, "testdata/trained/model")
DATA = os.path.join(ROOT, "testdata/trained/data")
CONVERT, VERIFY = os.path.join(ROOT, "bin/kintsugi-convert"), os.path.join(ROOT, "bin/kintsugi-verify")

CORRECT = {"rtn4-metal": [], "rtn4-cpu": ["--mode", "cpu"], "fit4": ["--fit", "mse"], "rtn3": ["--bits", "3"],
           "fit3": ["--bits", "3", "--fit", "mse"], "rtn4-g32": ["--group-size", "32"], "rtn8": ["--bits", "8"],
           "mixed_3_6": ["--recipe", "mixed_3_6"], "rtn2": ["--bits", "2"]}
# name: (amplitude, noise on the biases too, seed)
NOISY = {"scales+-1%": (0.01, False, 1), "scales+-2%": (0.02, False, 1), "scales+-2%b": (0.02, False, 2),
         "scales+biases+-2%": (0.02, True, 1), "scales+biases+-2%b": (0.02, True, 2), "scales+-5%": (0.05, False, 1)}


def texts(work):
    """The held-out prose, its two halves, and the two unseen texts."""
    prose = open(os.path.join(DATA, "prose-heldout.txt"), encoding="utf-8").read()
    paragraphs = prose.split("\n\n")
    half = len(paragraphs) // 2
    out = {"heldout": os.path.join(DATA, "prose-heldout.txt")}
    for name, part in (("heldout-1st-half", paragraphs[:half]), ("heldout-2nd-half", paragraphs[half:])):
        out[name] = os.path.join(work, name + ".txt")
        with open(out[name], "w", encoding="utf-8") as f:
            f.write("\n\n".join(part))
    out["unseen-en"] = os.path.join(DATA, "prose-unseen-en.txt")
    out["unseen-ja"] = os.path.join(DATA, "prose-unseen-ja.txt")
    return out


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else "/tmp/kintsugi-gate-bounds"
    os.makedirs(work, exist_ok=True)
    dirs = {}
    for name, args in CORRECT.items():
        dirs[name] = os.path.join(work, name)
        subprocess.run([CONVERT, MODEL, dirs[name], "-q", "--force", *args], check=True)
    for name, (amp, biases, seed) in NOISY.items():
        dirs[name] = os.path.join(work, name)
        noisy_copy(dirs["rtn4-metal"], dirs[name], amp, biases, seed)
    for tname, tpath in texts(work).items():
        for name, d in dirs.items():
            r = subprocess.run([VERIFY, d, "--original", MODEL, "--kld", tpath, "--allow-differs", "--json"],
                               capture_output=True, text=True)
            k = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "kld")
            f = k["figures"]
            print(f"{tname:17s} {name:19s} {k['status']:4s} tokens {f['tokens']:5d} KL {f['kld_mean']:.4f} "
                  f"(reference {f['reference_rtn_kld_mean']:.4f}) ratios: KL {f['kld_ratio']:.3f} "
                  f"(z {f['kld_ratio_z']:.1f}), disagreement {f['disagreement_ratio']:.3f} "
                  f"(z {f['disagreement_ratio_z']:.1f}), perplexity {f['perplexity_vs_reference']:.3f} "
                  f"(z {f['perplexity_vs_reference_z']:.1f}); relative KL {f['relative_kld']:.3f}", flush=True)


if __name__ == "__main__":
    main()
