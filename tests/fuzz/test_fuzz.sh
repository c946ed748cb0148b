#!/bin/bash
# test_fuzz.sh - every fuzz target once over its seed corpus
# (tests/fuzz/corpus/TARGET/: the targets are its directories), so that
# make check notices a seed that breaks an invariant.  Built with
# libFuzzer or with the plain driver (fuzz_main.c), a target given files
# runs each once and exits.
. "$top_srcdir/tests/integration/lib.sh"

for d in "$top_srcdir"/tests/fuzz/corpus/*/; do
	t=$(basename "$d")
	check "fuzz_$t: its seed corpus keeps every invariant" \
		"$top_builddir/tests/fuzz/fuzz_$t" "$d"
done
done_testing
