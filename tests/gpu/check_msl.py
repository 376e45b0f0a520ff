"""Every GPU kernel translates to Metal Shading Language (spirv-cross, as the
Metal host will do at build time), and the translation keeps the interface
runtime/gpu/gpu_abi.h fixes: the entry point kt_NAME, the arguments at
buffer KT_GPU_ARGS_INDEX, and each storage buffer at its binding number.

usage: python3 tests/gpu/check_msl.py SPV_DIR   (the .spv files the Makefile builds, build/release/gpu)
Prints one line per kernel and "N passed, N failed"."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
abi = open(os.path.join(ROOT, "runtime", "gpu", "gpu_abi.h")).read()
defines = dict(re.findall(r"#define (KT_\w+) (\d+)", abi))
spv_dir = sys.argv[1]
kernels = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "runtime", "gpu", "kernels")) if f.endswith(".comp"))
passed = failed = 0
for k in kernels:
    entry = f"kt_{k}"
    msl = os.path.join(spv_dir, f"{k}.metal")
    r = subprocess.run(["spirv-cross", "--msl", "--msl-version", "30100", "--msl-decoration-binding",
                        "--rename-entry-point", "main", entry, "comp", os.path.join(spv_dir, f"{k}.spv"),
                        "--output", msl], capture_output=True, text=True)
    problems = []
    if r.returncode != 0:
        problems.append(f"spirv-cross failed: {r.stderr.strip()}")
    else:
        text = open(msl).read()
        m = re.search(r"kernel void (\w+)\((.*?)\)\s*\{", text, re.S)
        if not m or m.group(1) != entry:
            problems.append(f"entry point {m.group(1) if m else None}, expected {entry}")
        else:
            params = m.group(2)
            got = {int(i) for i in re.findall(r"\[\[buffer\((\d+)\)\]\]", params)}
            want = {int(v) for name, v in defines.items() if name.startswith(f"KT_{k.upper()}_BIND_")}
            args = re.search(r"constant Args& \w+ \[\[buffer\((\d+)\)\]\]", params)
            if not want:
                problems.append(f"gpu_abi.h defines no KT_{k.upper()}_BIND_*")
            if got != want | {int(defines["KT_GPU_ARGS_INDEX"])}:
                problems.append(f"buffer indices {sorted(got)}, gpu_abi.h says {sorted(want)} and the arguments")
            if not args or int(args.group(1)) != int(defines["KT_GPU_ARGS_INDEX"]):
                problems.append("the arguments are not at KT_GPU_ARGS_INDEX")
    print(("ok   " if not problems else "FAIL ") + f"msl {k}" + ("" if not problems else ": " + "; ".join(problems)))
    passed += not problems
    failed += bool(problems)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
