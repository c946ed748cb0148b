#!/bin/bash
# suite.sh - build mailferry and run the whole test suite.
#
#   tests/suite.sh                  build in build/ and run make check
#   tests/suite.sh --sanitizers     the same in build-san/ with ASan+UBSan
#   tests/suite.sh --valgrind       unit tests under valgrind (build/)
#   tests/suite.sh --distcheck      make distcheck
#   tests/suite.sh --package        autoreconf, make install, the Debian package
#
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
src=$PWD
mode=${1:-normal}
build=build
flags=--enable-werror
case "$mode" in
normal|--valgrind|--distcheck) ;;
--package) exec tests/package.sh ;;
--sanitizers) build=build-san; flags="--enable-werror --enable-sanitizers" ;;
*) echo "usage: tests/suite.sh [--sanitizers|--valgrind|--distcheck|--package]" >&2; exit 2 ;;
esac
jobs=$(nproc 2>/dev/null || echo 2)

die() { echo "suite: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

[ -x configure ] || ./autogen.sh >/dev/null || die "autogen.sh failed"
mkdir -p "$build"
if [ ! -f "$build/Makefile" ] || [ configure -nt "$build/Makefile" ]; then
	(cd "$build" && "$src/configure" $flags >configure.out 2>&1) ||
		{ tail -20 "$build/configure.out"; die "configure failed"; }
fi
make -C "$build" -j"$jobs" >"$build/make.out" 2>&1 ||
	{ tail -40 "$build/make.out"; die "build failed"; }

case "$mode" in
--valgrind)
	exec tests/valgrind.sh "$build"
	;;
--distcheck)
	if make -C "$build" -j"$jobs" distcheck >"$build/distcheck.out" 2>&1; then
		echo "1 passed, 0 failed"; exit 0
	fi
	tail -40 "$build/distcheck.out"; echo "0 passed, 1 failed"; exit 1
	;;
esac

make -C "$build" -j"$jobs" check >"$build/check.out" 2>&1
rc=$?
# Show every test case result, then the failing logs in full.
grep -E '^(PASS|FAIL|ERROR|XFAIL|XPASS|SKIP):' "$build/check.out"
if [ $rc -ne 0 ]; then
	for log in $(cd "$build" && grep -lE '^(not ok|Bail out)' tests/*/*.log 2>/dev/null); do
		echo "===== $log"; cat "$build/$log"
	done
	grep -A5 -E '^(ERROR|FAIL):' "$build/check.out" | head -50
fi
count() { grep -cE "^$1:" "$build/check.out"; }
pass=$(count PASS); skip=$(count SKIP)
fail=$(( $(count FAIL) + $(count ERROR) + $(count XPASS) ))
[ $rc -ne 0 ] && [ "$fail" -eq 0 ] && fail=1	# make failed outside a test
echo "$pass passed, $fail failed, $skip skipped"
[ $rc -eq 0 ] && [ "$fail" -eq 0 ]
