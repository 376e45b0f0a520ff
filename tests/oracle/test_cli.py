"""Every tool against docs/CLI.md: the option table read from the page, the
grammar (--opt=value, flags, --version, --help, unknown options), the exit
codes, one-line messages in one wording, NO_COLOR."""
import os
import pty
import re
import select
import subprocess

import pytest

from conftest import ROOT, generate, one_line_error, run, tool

DOC = os.path.join(ROOT, "docs", "CLI.md")


def cli_table():
    text = open(DOC).read()
    block = text.split("<!-- cli-table -->")[1].split("<!-- /cli-table -->")[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.strip().splitlines()]
    header, body = rows[0], rows[2:]
    return {r[0]: dict(zip(header[1:], r[1:])) for r in body}


TABLE = cli_table()
TOOLS = sorted(TABLE)
VERSION = re.search(r'#define KINTSUGI_VERSION "([^"]+)"', open(os.path.join(ROOT, "lib", "cli.h")).read()).group(1)

# a value of the right kind for each shared option that takes one
VALUES = {"--revision": "main", "--threads": "1"}


def call(name, *args, **kw):
    kw.setdefault("input", "")
    return subprocess.run([tool(name), *args], capture_output=True, text=True, timeout=120, **kw)


def test_every_tool_is_in_the_table():
    assert set(TOOLS) == {"kintsugi-convert", "kintsugi-fixup", "kintsugi-quantize", "kintsugi-run",
                          "kintsugi-verify", "kintsugi-testdata"}
    for name in TOOLS:
        assert os.access(tool(name), os.X_OK), name


@pytest.mark.parametrize("name", TOOLS)
def test_version_and_help(name):
    r = call(name, "--version")
    assert r.returncode == 0 and r.stdout == f"{name} {VERSION}\n" and r.stderr == ""
    for flag in ("--help", "-h"):
        r = call(name, flag)
        assert r.returncode == 0 and r.stdout.startswith("usage: ") and r.stderr == ""
        assert "--version" in r.stdout and "exit status" in r.stdout.lower() or name == "kintsugi-testdata"


@pytest.mark.parametrize("name", TOOLS)
def test_shared_options_as_documented(name):
    """yes: listed in --help and accepted; no: a usage error."""
    help_text = call(name, "--help").stdout
    listed = set(re.findall(r"^\s+(?:-\w, )?(--[a-z-]+)", help_text, re.M))
    for opt, has in TABLE[name].items():
        if has == "yes":
            assert opt in listed, f"{name} --help does not list {opt}"
        else:
            assert opt not in listed, f"{name} --help lists {opt}, which docs/CLI.md says it lacks"
            args = [opt, VALUES[opt]] if opt in VALUES else [opt]
            line = one_line_error(call(name, *args), name)
            assert f"unknown option {opt}" in line and line.endswith("(see --help)")


@pytest.mark.parametrize("name", TOOLS)
def test_grammar(name):
    line = one_line_error(call(name, "--no-such-option"), name)
    assert "unknown option --no-such-option" in line and line.endswith("(see --help)")
    line = one_line_error(call(name, "--no-such-option=3"), name)
    assert "unknown option --no-such-option" in line
    if TABLE[name]["--quiet"] == "yes":
        assert "takes no value" in one_line_error(call(name, "--quiet=1"), name)
    if TABLE[name]["--quiet"] == "yes" and TABLE[name]["--verbose"] == "yes":
        assert "do not go together" in one_line_error(call(name, "x", "--quiet", "--verbose"), name)
    if TABLE[name]["--threads"] == "yes":
        a = one_line_error(call(name, "x", "--threads", "lots"), name)
        b = one_line_error(call(name, "x", "--threads=lots"), name)
        assert a == b and "--threads: 'lots' is not" in a
    if TABLE[name]["--revision"] == "yes":
        assert "--revision needs a value" in one_line_error(call(name, "x", "--revision"), name)


@pytest.mark.parametrize("name,args", [
    ("kintsugi-convert", ["/nonexistent/src", "/tmp/kt-cli-never"]),
    ("kintsugi-fixup", ["/nonexistent/dir"]),
    ("kintsugi-quantize", ["/nonexistent/in.safetensors", "/tmp/kt-cli-never.safetensors"]),
    ("kintsugi-run", ["/nonexistent/dir", "--prompt", "x"]),
    ("kintsugi-verify", ["/nonexistent/dir"]),
])
def test_missing_input_has_one_wording(name, args):
    line = one_line_error(call(name, *args), name)
    assert "/nonexistent/" in line and "no such file or directory" in line


def test_not_a_directory_and_not_a_model(tmp_path):
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    for name, args in [("kintsugi-verify", [str(loop)]), ("kintsugi-run", [str(loop), "--prompt", "x"]),
                       ("kintsugi-fixup", [str(loop)]), ("kintsugi-convert", [str(loop), str(tmp_path / "o")])]:
        assert "a symlink loop" in one_line_error(call(name, *args), name), name
    f = tmp_path / "file"
    f.write_text("x")
    for name, args in [("kintsugi-fixup", [str(f)]), ("kintsugi-run", [str(f), "--prompt", "x"])]:
        assert "not a directory" in one_line_error(call(name, *args), name)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = call("kintsugi-verify", str(empty), "--quiet")
    assert r.returncode == 1 and "config.json: no such file; not a model directory" in r.stderr
    # a directory that is not a model is a failed check (1) in every tool, in one wording
    for name, args in [("kintsugi-run", [str(empty), "--prompt", "x"]), ("kintsugi-convert", [str(empty), str(tmp_path / "o")]),
                       ("kintsugi-run", [str(empty), "--tokenize"])]:
        line = one_line_error(call(name, *args), name, 1)
        assert "config.json: no such file; not a model directory" in line, line
    assert "not a model directory" in one_line_error(call("kintsugi-fixup", str(empty)), "kintsugi-fixup", 1)


def test_a_truncated_archive_is_malformed_input(tmp_path):
    import tarfile
    src = generate(tmp_path / "hf")
    whole = tmp_path / "m.tar.gz"
    with tarfile.open(whole, "w:gz") as t:
        t.add(src, arcname="m")
    data = whole.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    line = one_line_error(call("kintsugi-convert", str(cut), str(tmp_path / "out")), "kintsugi-convert", 1)
    assert "cut.tar.gz" in line and not (tmp_path / "out").exists()
    assert "no such file" in one_line_error(call("kintsugi-convert", str(tmp_path / "none.tar.gz"), str(tmp_path / "o2")),
                                            "kintsugi-convert", 2)


def test_opt_equals_value_is_the_same_as_two_words(tmp_path):
    src = generate(tmp_path / "hf")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    run([tool("kintsugi-convert"), src, a, "--bits", "8", "--group-size=32", "--quiet"])
    run([tool("kintsugi-convert"), src, b, "--bits=8", "--group-size", "32", "-q"])
    for f in os.listdir(a):
        if f.endswith(".safetensors"):
            assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read()
    # a path that starts with '-' after --
    dash = tmp_path / "-dashed"
    run([tool("kintsugi-convert"), "--quiet", "--", src, str(dash)])
    assert os.path.isdir(dash)


def test_json_means_stdout_everywhere(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    import json
    for args in ([tool("kintsugi-convert"), src, mlx, "--json"], [tool("kintsugi-verify"), mlx, "--json"],
                 [tool("kintsugi-fixup"), mlx, "--check", "--json"],
                 [tool("kintsugi-run"), mlx, "--prompt", "x", "--max-tokens", "2", "--json"]):
        r = run(args, check=False)
        assert r.returncode in (0, 1), r.stderr
        json.loads(r.stdout)  # nothing but the JSON on stdout
    r = run([tool("kintsugi-verify"), mlx, "--json-out", "-", "--junit", str(tmp_path / "j.xml")])
    assert json.loads(r.stdout)["ok"] and (tmp_path / "j.xml").read_text().startswith("<?xml")
    # a report file may not land in the model directory
    line = one_line_error(run([tool("kintsugi-verify"), mlx, "--json-out", os.path.join(mlx, "config.json")],
                              check=False), "kintsugi-verify")
    assert "inside the input" in line and os.path.getsize(os.path.join(mlx, "config.json")) > 100


def tty_output(args, env):
    """stdout of ARGS run on a pseudo-terminal."""
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=60)
    os.close(master)
    return out.decode(errors="replace")


def test_no_color(tmp_path):
    src = generate(tmp_path / "hf")
    mlx = str(tmp_path / "mlx")
    run([tool("kintsugi-convert"), src, mlx, "--quiet"])
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    for args in ([tool("kintsugi-verify"), mlx], [tool("kintsugi-run"), mlx, "--prompt", "x", "--max-tokens", "3"]):
        assert "\x1b[" in tty_output(args, env), args  # coloured or dimmed on a terminal
        assert "\x1b[" not in tty_output(args, {**env, "NO_COLOR": "1"}), args
        assert "\x1b[" not in tty_output(args, {**env, "TERM": "dumb"}), args
