#!/bin/bash
# valgrind.sh BUILDDIR - run every unit test, and every fuzz target over
# its seed corpus, under valgrind; a leak or an invalid access is a
# failure.  Ends with "N passed, N failed".
set -u
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
supp=()
[ -f "$here/valgrind.supp" ] && supp=(--suppressions="$here/valgrind.supp")
pass=0 fail=0
export top_srcdir=$(cd "$here/.." && pwd)
for t in "$build"/tests/unit/test_*; do
	case "$t" in *.o|*.log|*.trs) continue ;; esac
	[ -x "$t" ] || continue
	if valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=99 "${supp[@]}" "$t" >"$t.valgrind.log" 2>&1; then
		echo "PASS: valgrind $(basename "$t")"; pass=$((pass + 1))
	else
		echo "FAIL: valgrind $(basename "$t")"; cat "$t.valgrind.log"
		fail=$((fail + 1))
	fi
done
# The fuzz targets (plain drivers in this build) over their seed corpora.
for t in "$build"/tests/fuzz/fuzz_*; do
	case "$t" in *.o|*.log|*.trs) continue ;; esac
	[ -x "$t" ] || continue
	name=$(basename "$t")
	if valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	    --error-exitcode=99 "${supp[@]}" "$t" \
	    "$top_srcdir/tests/fuzz/corpus/${name#fuzz_}"/* >"$t.valgrind.log" 2>&1; then
		echo "PASS: valgrind $name"; pass=$((pass + 1))
	else
		echo "FAIL: valgrind $name"; cat "$t.valgrind.log"
		fail=$((fail + 1))
	fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
