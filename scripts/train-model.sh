#!/bin/sh
# make trained-model: regenerate the embedded trained model
# (testdata/trained/model) and its corpus (testdata/trained/data) from
# scratch. About 30 minutes on 2 cores; tests never run it.
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh --tests
# MLX's CPU wheel calls the reference BLAS; OpenBLAS (Debian's
# libopenblas0-pthread, Homebrew's openblas) gives the same results about ten
# times faster. Preloading it is the only change.
preload=""
case "$(uname -s)" in
Linux)
    lib=/usr/lib/$(uname -m)-linux-gnu/openblas-pthread/libopenblas.so.0
    if [ ! -e "$lib" ] && command -v apt-get >/dev/null 2>&1; then
        echo "train-model: installing libopenblas0-pthread (apt-get)"
        if [ "$(id -u)" = 0 ]; then apt-get install -y -q libopenblas0-pthread >/dev/null
        else sudo apt-get install -y -q libopenblas0-pthread >/dev/null; fi
    fi
    [ -e "$lib" ] && preload=$lib ;;
esac
[ -n "$preload" ] || echo "train-model: no OpenBLAS found; training with MLX's reference BLAS (much slower)"
.venv/bin/python testdata/trained/corpus.py testdata/trained/data
env ${preload:+LD_PRELOAD=$preload} .venv/bin/python testdata/trained/train.py testdata/trained/model \
    --testdata bin/kintsugi-testdata
