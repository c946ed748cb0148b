#!/bin/bash
# test_dns.sh - common/dns against a real DNS server (dnsmasq on
# 127.0.0.1, see lib.sh start_dns), driven through tests/integration/
# dns_probe: record parsing, statuses, timeouts, concurrency, the blocking
# variant, cancellation, teardown from a callback and TTL caching.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dnsmasq
P=$top_builddir/tests/integration/dns_probe
[ -x "$P" ] || { echo "Bail out! $P not built"; exit 1; }
# probe ARG... - dns_probe, killed if it hangs (a lost callback would)
probe() {
	timeout -k 5 30 "$P" "$@"
}
# sorted ARG... - the probe's answer lines for $S, sorted
sorted() {
	local out
	out=$(probe "$S" "$@") || return 1
	printf '%s\n' "$out" | sort
}

# A DKIM-like key longer than one 255-byte character-string: dnsmasq
# sends it as several strings, the resolver must glue them back.
DKIM="v=DKIM1; k=rsa; p=$(head -c 300 /dev/zero | tr '\0' 'Q')MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr0xYz/+="

plan 24

RECORDS=$T/records
cat >"$RECORDS" <<EOF
MX example.test 20 mx2.example.test
MX example.test 10 mx1.example.test
MX example.test 30 mx3.example.test
TXT example.test "v=spf1 ip4:192.0.2.0/24 -all"
TXT sel._domainkey.example.test "$DKIM"
TXT multi.example.test "part one, " "part two"
TXT esc.example.test 'back\\slash "quoted"	tab'
A host.example.test 192.0.2.1
A host.example.test 192.0.2.2
AAAA host.example.test 2001:db8::1
A v4only.example.test 192.0.2.7
CNAME alias.example.test host.example.test
TIMEOUT slow.example.test
EOF
check "dnsmasq starts" start_dns <"$RECORDS"
S=127.0.0.1:$DNS_PORT

check_output "MX: every record, sorted by preference" \
	"MX 10 mx1.example.test
MX 20 mx2.example.test
MX 30 mx3.example.test" probe "$S" MX example.test

check_output "TXT: an SPF record" \
	"TXT v=spf1 ip4:192.0.2.0/24 -all" probe "$S" TXT example.test

check_output "TXT: a ${#DKIM}-byte key split over strings comes back byte-exact" \
	"TXT $DKIM" probe "$S" TXT sel._domainkey.example.test

check_output "TXT: character-strings are concatenated" \
	"TXT part one, part two" probe "$S" TXT multi.example.test

check_output "TXT: backslash, quotes and control bytes kept (escaped by the probe)" \
	'TXT back\\slash "quoted"\009tab' probe "$S" TXT esc.example.test

check_output "A: both addresses" \
	"A 192.0.2.1
A 192.0.2.2" sorted A host.example.test

check_output "AAAA" "AAAA 2001:db8::1" probe "$S" AAAA host.example.test

families_then_sorted() {
	local out
	out=$(probe "$S" "$@") || return 1
	printf '%s\n' "$out" | cut -d' ' -f1 | xargs
	printf '%s\n' "$out" | sort
}
check_output "ADDR: A and AAAA in one look-up, IPv4 first" \
	"A A AAAA
A 192.0.2.1
A 192.0.2.2
AAAA 2001:db8::1" families_then_sorted ADDR host.example.test

check_output "ADDR: one family is enough" "A 192.0.2.7" \
	probe "$S" ADDR v4only.example.test

check_output "a CNAME is followed" "A 192.0.2.1
A 192.0.2.2" sorted A alias.example.test

# Failures: the exit status must say so too.
expect_fail() {
	local want=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	[ $rc -eq 1 ] && [ "$out" = "$want" ]
}
check "NXDOMAIN for an unknown name" \
	expect_fail NXDOMAIN probe "$S" MX nosuch.example.test
check "NODATA for a name without that type" \
	expect_fail NODATA probe "$S" AAAA v4only.example.test

# timed CMD... - run CMD, print its output, then "elapsed_ms N"
timed() {
	local t0 t1 rc
	t0=$(date +%s%N)
	"$@"
	rc=$?
	t1=$(date +%s%N)
	echo "elapsed_ms $(((t1 - t0) / 1000000))"
	return $rc
}
# within LOG MIN MAX - the elapsed time in LOG is in [MIN, MAX] ms
within() {
	local ms
	ms=$(sed -n 's/^elapsed_ms //p' "$1")
	[ -n "$ms" ] && [ "$ms" -ge "$2" ] && [ "$ms" -le "$3" ] || {
		echo "elapsed ${ms:-?} ms, want $2..$3"
		return 1
	}
}

timeout_case() {
	local log=$T/timeout.log
	timed probe -t 1500 "$S" A slow.example.test >"$log" 2>&1
	cat "$log"
	grep -qx "TEMPFAIL timeout after 1500 ms" "$log" &&
		! grep -q '^A ' "$log" && within "$log" 1400 3000
}
check "a server that never answers: TEMPFAIL within the 1.5 s timeout" \
	timeout_case

# Five look-ups in one loop, three of them timing out: concurrent, they
# take one timeout; one after the other they would take three.
concurrent_case() {
	local log=$T/concurrent.$1.log
	shift
	timed probe "$@" -t 1500 "$S" A:slow.example.test MX:example.test \
		TXT:x.slow.example.test ADDR:host.example.test \
		MX:slow.example.test >"$log" 2>&1
	cat "$log"
	[ "$(grep -c 'slow.example.test TEMPFAIL timeout after 1500 ms' "$log")" = 3 ] &&
		grep -qx "MX:example.test MX 10 mx1.example.test" "$log" &&
		grep -qx "ADDR:host.example.test AAAA 2001:db8::1" "$log" &&
		within "$log" 1400 2900
}
check "several look-ups run concurrently in one loop" concurrent_case async
check "dns_lookup_sync from worker threads: same answers, timeout honoured" \
	concurrent_case sync -S

check_output "dns_lookup_sync: MX sorted" "MX 10 mx1.example.test
MX 20 mx2.example.test
MX 30 mx3.example.test" probe -S "$S" MX example.test

cancel_case() {
	local out
	out=$(probe -C -t 1000 "$S" MX:example.test ADDR:host.example.test \
		A:slow.example.test 2>&1)
	printf '%s\n' "$out"
	[ "$out" = "cancelled 2 pending 1
A:slow.example.test TEMPFAIL timeout after 1000 ms" ]
}
check "cancelled look-ups never call back" cancel_case

free_case() {
	local out
	out=$(probe -F -t 1000 "$S" MX:example.test A:slow.example.test \
		ADDR:slow.example.test 2>&1)
	printf '%s\n' "$out"
	[ "$out" = "MX:example.test MX 10 mx1.example.test
MX:example.test MX 20 mx2.example.test
MX:example.test MX 30 mx3.example.test
freed" ]
}
check "freeing the resolver from a callback drops the rest silently" free_case

# exits CODE ARG... - run the probe, print stdout and stderr, true when
# it exited with CODE
exits() {
	local want=$1
	shift
	probe "$@" 2>&1
	[ $? -eq "$want" ]
}
check_output "an invalid name is refused before any query" \
	"A:bad..example.test error: invalid domain name" \
	exits 1 "$S" A:bad..example.test

check_output "a forwarder must be an IP address" \
	'dns_probe: forwarder "dns.example.test:53" must be an IP address, not a name' \
	exits 2 dns.example.test:53 A host.example.test

# Caching: answers now carry TTL 2.  Within the TTL the server is asked
# once; after it, again.
queries_for() {
	grep -c "query\[$1\] $2 from" "$DNS_LOG"
}
cache_case() {
	local before after out
	before=$(queries_for A host.example.test)
	out=$(probe -v -r 3 -w 300 "$S" A host.example.test) || return 1
	printf '%s\n' "$out"
	after=$(queries_for A host.example.test)
	echo "server saw $((after - before)) queries for 3 look-ups"
	[ $((after - before)) -eq 1 ] || return 1
	# the remaining TTL is reported, never more than the record's
	! printf '%s\n' "$out" | awk '/^TTL/ && $2 > 2 { bad = 1 } END { exit !bad }'
}
expiry_case() {
	local before after
	before=$(queries_for MX example.test)
	probe -r 2 -w 3200 "$S" MX example.test || return 1
	after=$(queries_for MX example.test)
	echo "server saw $((after - before)) queries for 2 look-ups 3.2 s apart"
	[ $((after - before)) -eq 2 ]
}
DNS_TTL=2 update_dns <"$RECORDS" || echo "Bail out! update_dns failed"
check "answers are cached within their TTL" cache_case
check "and asked again once the TTL ran out" expiry_case

# Valgrind: the whole async and sync machinery, with timeouts, cancel
# and teardown from a callback, without leaks or invalid accesses.
# (Not for sanitizer builds: ASan and valgrind do not mix.)
vg_case() {
	# Each step prints its exit status, so a failure says which one.
	# Valgrind runs the probe some 30 times slower: under a loaded
	# machine an answer that comes at once natively can take longer
	# than the 1 s the steps above allow, so these wait 4 s.
	local vg="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
	local rc
	timeout -k 5 120 $vg "$P" -t 4000 "$S" A:slow.example.test MX:example.test \
		ADDR:host.example.test TXT:sel._domainkey.example.test \
		A:nosuch.example.test
	rc=$?; echo "async step: exit $rc (want 1)"; [ $rc -eq 1 ] || return 1
	timeout -k 5 120 $vg "$P" -S -t 4000 "$S" ADDR:slow.example.test MX:example.test
	rc=$?; echo "sync step: exit $rc (want 1)"; [ $rc -eq 1 ] || return 1
	timeout -k 5 120 $vg "$P" -C -t 4000 "$S" MX:example.test A:slow.example.test
	rc=$?; echo "cancel step: exit $rc (want 1)"; [ $rc -eq 1 ] || return 1
	timeout -k 5 120 $vg "$P" -F -t 4000 "$S" MX:example.test A:slow.example.test
	rc=$?; echo "free step: exit $rc (want 0)"; [ $rc -eq 0 ]
}
if ! command -v valgrind >/dev/null 2>&1; then
	skip "no leaks under valgrind" "valgrind not installed"
elif ldd "$P" 2>/dev/null | grep -q libasan; then
	skip "no leaks under valgrind" "sanitizer build"
else
	check "no leaks or invalid accesses under valgrind" vg_case
fi

done_testing
