"""Every GPU kernel translates to Metal Shading Language (spirv-cross, as the
Metal host will do at build time), and the translation keeps the interface
runtime/gpu/gpu_abi.h fixes: the entry point kt_NAME, the arguments at
buffer KT_GPU_ARGS_INDEX, each storage buffer at its binding number (1 up to
the number of buffers gpu_kernels.c gives the kernel, as both hosts bind
them), and the workgroup size the hosts dispatch (gpu_kernels.c); and both hosts list the
kernels in the order of gpu_host.h's kt_gpu_kernel.

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
# the hosts' kernel table (gpu_kernels.c): NAME -> threads per workgroup,
# which a Metal dispatch names and the MSL leaves to it
table = open(os.path.join(ROOT, "runtime", "gpu", "gpu_kernels.c")).read()
threads = {name: int(defines.get(t, t)) for name, t in re.findall(r'\{"(\w+)", \d+, (\w+)\}', table)}
n_buffers = {name: int(n) for name, n in re.findall(r'\{"(\w+)", (\d+), \w+\}', table)}
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
            # both hosts bind a call's buffers in order from 1 up (vulkan.c,
            # metal.m): the kernel's bindings must be exactly those
            if want != set(range(1, n_buffers.get(k, 0) + 1)):
                problems.append(f"bindings {sorted(want)}, gpu_kernels.c binds 1..{n_buffers.get(k)}")
            if got != want | {int(defines["KT_GPU_ARGS_INDEX"])}:
                problems.append(f"buffer indices {sorted(got)}, gpu_abi.h says {sorted(want)} and the arguments")
            if not args or int(args.group(1)) != int(defines["KT_GPU_ARGS_INDEX"]):
                problems.append("the arguments are not at KT_GPU_ARGS_INDEX")
            size = re.search(r"gl_WorkGroupSize \[\[maybe_unused\]\] = uint3\((\d+)u(?:, (\d+)u, (\d+)u)?\)", text)
            local = (int(size.group(1)), int(size.group(2) or size.group(1)), int(size.group(3) or size.group(1))) if size else None
            if local != (threads.get(k), 1, 1):
                problems.append(f"workgroup size {local}, gpu_kernels.c dispatches ({threads.get(k)}, 1, 1)")
    print(("ok   " if not problems else "FAIL ") + f"msl {k}" + ("" if not problems else ": " + "; ".join(problems)))
    passed += not problems
    failed += bool(problems)
# Each host lists its kernels' code in kt_gpu_kernel's order (gpu_host.h):
# a list out of order would run one kernel under another's name.
enum = re.search(r"typedef enum \{(.*?)\} kt_gpu_kernel;", open(os.path.join(ROOT, "runtime", "gpu", "gpu_host.h")).read(), re.S)
order = [n.split("=")[0].strip()[len("KT_GPU_"):].lower() for n in enum.group(1).split(",") if n.strip()][:-1]
table_order = re.findall(r'\[KT_GPU_(\w+)\] = \{"(\w+)"', table)
for host, pattern in (("vulkan.c", r"\{kt_spv_(\w+), &kt_spv_\w+_size\}"),
                      ("metal.m", r"static const unsigned char \*const MSL\[KT_GPU_KERNELS\] = \{(.*?)\};")):
    text = open(os.path.join(ROOT, "runtime", "gpu", host)).read()
    listed = re.findall(pattern, text, re.S)
    if host == "metal.m":
        listed = re.findall(r"kt_msl_(\w+)", listed[0]) if listed else []
    ok = listed == order and all(e.lower() == n for e, n in table_order) and sorted(order) == kernels
    print(("ok   " if ok else "FAIL ") + f"{host} lists the kernels in kt_gpu_kernel's order" +
          ("" if ok else f": {listed} against {order}"))
    passed += ok
    failed += not ok
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
