#!/bin/bash
# run.sh - fuzz every target for real: clang's libFuzzer with ASan and
# UBSan, SECONDS each (default 3600), one after the other.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Builds in build-fuzz/ (./configure CC=clang --enable-fuzzing
# --enable-sanitizers; CC may be overridden in the environment, e.g.
# CC=clang-14).  The targets are the directories of tests/fuzz/corpus/;
# each runs over its seed corpus plus build-fuzz/fuzz-corpus/TARGET/,
# where the inputs it finds are kept for the next run.  A crash, a
# sanitizer report, a leak, a timeout (10 s for one input) or running out
# of memory fails the target and leaves the input in
# build-fuzz/fuzz-crashes/TARGET-*: replay it with
# build-fuzz/tests/fuzz/fuzz_TARGET FILE, fix, and add it to
# tests/fuzz/corpus/TARGET/ so make check keeps testing it.
#
# FUZZ_FLAGS adds libFuzzer options (e.g. FUZZ_FLAGS=-max_len=64).
#
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
src=$PWD
secs=${1:-3600}
shift 2>/dev/null || true
build=build-fuzz
cc=${CC:-clang}
jobs=$(nproc 2>/dev/null || echo 2)

die() { echo "fuzz: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

case "$secs" in
''|*[!0-9]*) die "usage: tests/fuzz/run.sh [SECONDS] [TARGET...]" ;;
esac
if [ $# -gt 0 ]; then
	targets="$*"
else
	targets=$(cd tests/fuzz/corpus && for d in */; do echo "${d%/}"; done)
fi
command -v "$cc" >/dev/null || die "$cc not found (contrib/install-deps.sh installs clang)"

[ -x configure ] || ./autogen.sh >/dev/null || die "autogen.sh failed"
mkdir -p "$build"
if [ ! -f "$build/Makefile" ] || [ configure -nt "$build/Makefile" ]; then
	(cd "$build" && "$src/configure" CC="$cc" --enable-fuzzing \
	    --enable-sanitizers >configure.out 2>&1) ||
		{ tail -20 "$build/configure.out"; die "configure failed"; }
fi
bins=
for t in $targets; do bins="$bins tests/fuzz/fuzz_$t"; done
# shellcheck disable=SC2086
make -C "$build" -j"$jobs" $bins >"$build/fuzz-make.out" 2>&1 ||
	{ tail -40 "$build/fuzz-make.out"; die "build failed"; }

pass=0 fail=0
for t in $targets; do
	bin=$build/tests/fuzz/fuzz_$t
	work=$build/fuzz-corpus/$t
	log=$build/fuzz-$t.log
	mkdir -p "$work" "$build/fuzz-crashes"
	echo "fuzz_$t: ${secs}s"
	# The seeds second: libFuzzer adds what it finds to the first.
	if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
	    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	    "$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$build/fuzz-crashes/$t-" ${FUZZ_FLAGS:-} \
	    "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
		echo "ok - fuzz_$t: $(grep -aE '^stat::number_of_executed_units' "$log" |
		    awk '{print $2}') runs, no crash"
		pass=$((pass + 1))
	else
		echo "not ok - fuzz_$t failed; from $log:"
		# the report without libFuzzer's progress lines and stacks
		grep -avE '^#[0-9]+[[:space:]]|^    #[0-9]+ 0x|^INFO:' "$log" | tail -40
		ls "$build/fuzz-crashes/$t-"* 2>/dev/null
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
