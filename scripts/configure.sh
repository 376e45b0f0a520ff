#!/bin/sh
# Print the make variables for this machine: compiler flags from pkg-config
# and the OpenMP flags of the platform's compiler. Called by the Makefile,
# which writes the result to build/config.mk.
set -eu
os=$(uname -s)
if [ "$os" = Darwin ] && command -v brew >/dev/null 2>&1; then
    PKG_CONFIG_PATH="$(brew --prefix libarchive)/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export PKG_CONFIG_PATH
    omp=$(brew --prefix libomp)
    echo "OPENMP_CFLAGS := -Xpreprocessor -fopenmp -I$omp/include"
    echo "OPENMP_LIBS := -L$omp/lib -lomp"
    echo "PLATFORM_CFLAGS := -D_DARWIN_C_SOURCE"
else
    echo "OPENMP_CFLAGS := -fopenmp"
    echo "OPENMP_LIBS := -fopenmp"
    echo "PLATFORM_CFLAGS := -D_DEFAULT_SOURCE"
fi
echo "PKG_CFLAGS := $(pkg-config --cflags libcjson libarchive libpcre2-8 zlib)"
echo "PKG_LIBS := $(pkg-config --libs libcjson libarchive libpcre2-8 zlib)"
