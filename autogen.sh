#!/bin/sh
# autogen.sh - generate configure from a git checkout (the same as
# `autoreconf -fi`, which works on its own too).
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf -fi
