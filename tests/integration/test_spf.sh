#!/bin/bash
# test_spf.sh - relay/spf against a real DNS server (dnsmasq on 127.0.0.1,
# see lib.sh start_dns), driven through tests/integration/spf_probe:
# every verdict, libspf2's "invalid" quirk on a sender domain that never
# answers, an include: that times out (temperror within the resolver's
# timeout), the HELO identity for <>, a loopback client, cancellation,
# 50 concurrent checks on a pool of 4 workers, and valgrind.  Then the
# RFC 7208 rules relay/spf adds to libspf2 (relay/spf_record.c): redirect=
# beside all (6.1), two redirect=/exp= (6), more than two void look-ups
# and more than ten DNS terms over includes (4.6.4), and ptr / %{p}
# through real PTR answers (5.5, 7.3).
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dnsmasq
P=$top_builddir/tests/integration/spf_probe
[ -x "$P" ] || { echo "Bail out! $P not built"; exit 1; }
# probe ARG... - spf_probe, killed if it hangs (a lost callback would)
probe() {
	timeout -k 5 60 "$P" "$@"
}

plan 31

RECORDS=$T/records
cat >"$RECORDS" <<'EOF'
TXT pass.test "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"
TXT soft.test "v=spf1 ip4:192.0.2.0/24 ~all"
TXT neutral.test "v=spf1 ?all"
TXT txtonly.test "site-verification=abc"
TXT two.test "v=spf1 -all"
TXT two.test "v=spf1 +all"
TXT syntax.test "v=spf1 ip4:192.0.2.0/24 bogus:x.test -all"
TXT inc.test "v=spf1 include:_spf.inc.test -all"
TXT _spf.inc.test "v=spf1 ip4:203.0.113.0/24 -all"
TXT incslow.test "v=spf1 include:slow.test -all"
TXT mx.test "v=spf1 mx -all"
MX mx.test 10 mail.mx.test
A mail.mx.test 198.51.100.25
TXT a.test "v=spf1 a:host.a.test -all"
A host.a.test 198.51.100.30
AAAA host.a.test 2001:db8:a::30
TXT mta.helo.test "v=spf1 ip4:192.0.2.0/24 -all"
TIMEOUT slow.test
TXT redirall.test "v=spf1 ip4:192.0.2.1 redirect=open.test -all"
TXT open.test "v=spf1 +all"
TXT tworedir.test "v=spf1 redirect=open.test redirect=pass.test"
TXT twoexp.test "v=spf1 ip4:192.0.2.0/24 exp=e1.test exp=e2.test -all"
TXT void2.test "v=spf1 a:nx1.test mx:host.a.test +all"
TXT void3.test "v=spf1 a:nx1.test mx:host.a.test exists:nx2.test +all"
TXT terms.test "v=spf1 include:t1.test include:t2.test include:t3.test -all"
TXT t1.test "v=spf1 a:host.a.test a:host.a.test a:host.a.test ?all"
TXT t2.test "v=spf1 a:host.a.test a:host.a.test a:host.a.test ?all"
TXT t3.test "v=spf1 a:host.a.test a:host.a.test a:host.a.test ?all"
TXT ptr.test "v=spf1 ptr:good.test -all"
TXT ptrself.test "v=spf1 ptr -all"
TXT pmacro.test "v=spf1 exists:%{p}.p.test -all"
PTR 5.2.0.192.in-addr.arpa mta.good.test
PTR 6.2.0.192.in-addr.arpa mta.good.test
PTR 7.2.0.192.in-addr.arpa mta.ptrself.test
A mta.good.test 192.0.2.5
A mta.ptrself.test 192.0.2.7
A mta.good.test.p.test 127.0.0.2
EOF
check "dnsmasq starts" start_dns <"$RECORDS"
S=127.0.0.1:$DNS_PORT

# verdict CLIENT HELO FROM - the probe's first word for one check
verdict() {
	local out
	out=$(probe -t 1500 "$S" "$1,$2,$3") || return 1
	printf '%s\n' "${out%% *}"
}

check_output "pass" \
	"pass spf=pass (domain of user@pass.test designates 192.0.2.10 as permitted sender) smtp.mailfrom=pass.test" \
	probe -t 1500 "$S" "192.0.2.10,mta.pass.test,user@pass.test"
check_output "fail" \
	"fail spf=fail (domain of user@pass.test does not designate 198.51.100.1 as permitted sender) smtp.mailfrom=pass.test" \
	probe -t 1500 "$S" "198.51.100.1,mta.pass.test,user@pass.test"
check_output "softfail" softfail verdict 198.51.100.1 h.test a@soft.test
check_output "neutral" neutral verdict 198.51.100.1 h.test a@neutral.test
check_output "none: the domain does not exist" \
	"none spf=none (domain of a@nosuch.test does not publish an SPF record) smtp.mailfrom=nosuch.test" \
	probe -t 1500 "$S" "192.0.2.10,h.test,a@nosuch.test"
check_output "none: TXT records but no SPF" none \
	verdict 192.0.2.10 h.test a@txtonly.test
check_output "permerror: two SPF records" permerror \
	verdict 192.0.2.10 h.test a@two.test
check_output "permerror: unknown mechanism" permerror \
	verdict 192.0.2.10 h.test a@syntax.test
check_output "include: pass through the included record" pass \
	verdict 203.0.113.7 h.test a@inc.test
check_output "mx mechanism" pass verdict 198.51.100.25 h.test a@mx.test
check_output "a mechanism, IPv6 client (AAAA)" pass \
	verdict 2001:db8:a::30 h.test a@a.test
check_output "<>: the HELO identity" \
	"pass spf=pass (domain of mta.helo.test designates 192.0.2.10 as permitted sender) smtp.helo=mta.helo.test" \
	probe -t 1500 "$S" "192.0.2.10,mta.helo.test,"
check_output "a loopback client gets no free pass" fail \
	verdict 127.0.0.1 h.test a@pass.test

# --- RFC 7208 rules on top of libspf2 -------------------------------------

check_output "6.1: redirect= beside -all is ignored: fail" fail \
	verdict 198.51.100.1 h.test a@redirall.test
check_output "6.1: ... while the record's own ip4 still passes" pass \
	verdict 192.0.2.1 h.test a@redirall.test
check_output "6: two redirect= modifiers: permerror" \
	"permerror spf=permerror (permanent error in the SPF record of a@tworedir.test: more than one redirect= modifier) smtp.mailfrom=tworedir.test" \
	probe -t 1500 "$S" "192.0.2.10,h.test,a@tworedir.test"
check_output "6: two exp= modifiers: permerror, though ip4 matches" \
	permerror verdict 192.0.2.10 h.test a@twoexp.test
check_output "4.6.4: two void look-ups (NXDOMAIN, NODATA) are allowed" \
	pass verdict 198.51.100.1 h.test a@void2.test
check_output "4.6.4: a third void look-up: permerror" \
	"permerror spf=permerror (permanent error in the SPF record of a@void3.test: more than 2 void look-ups) smtp.mailfrom=void3.test" \
	probe -t 1500 "$S" "198.51.100.1,h.test,a@void3.test"
check_output "4.6.4: 12 DNS terms over three includes: permerror" \
	permerror verdict 198.51.100.1 h.test a@terms.test
check_output "5.5: ptr:domain matches a forward-confirmed PTR name" pass \
	verdict 192.0.2.5 h.test a@ptr.test
check_output "5.5: ptr:domain: a PTR name that does not confirm: fail" \
	fail verdict 192.0.2.6 h.test a@ptr.test
check_output "5.5: bare ptr matches a name under the sender domain" pass \
	verdict 192.0.2.7 h.test a@ptrself.test
check_output "7.3: %{p} is the validated PTR name" pass \
	verdict 192.0.2.5 h.test a@pmacro.test
check_output "7.3: %{p} is \"unknown\" without a validated name" fail \
	verdict 192.0.2.6 h.test a@pmacro.test

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

include_timeout_case() {
	local log=$T/inctimeout.log
	timed probe -t 1500 "$S" "192.0.2.10,h.test,a@incslow.test" \
		>"$log" 2>&1
	cat "$log"
	grep -qx 'temperror spf=temperror (temporary error checking a@incslow.test: TXT slow.test: timeout after 1500 ms) smtp.mailfrom=incslow.test' "$log" &&
		within "$log" 1400 3500
}
check "include: of a name that never answers: temperror within the timeout" \
	include_timeout_case

# libspf2 answers "invalid" (no header) when the sender domain's own
# look-up fails: that must be temperror, never none or neutral.
sender_timeout_case() {
	local log=$T/sendertimeout.log
	timed probe -t 1500 "$S" "192.0.2.10,h.test,a@slow.test" >"$log" 2>&1
	cat "$log"
	grep -q '^temperror spf=temperror (temporary error checking a@slow.test: TXT slow.test: timeout after 1500 ms)' "$log" &&
		within "$log" 1400 3500
}
check "the sender domain never answers: temperror, not libspf2's invalid" \
	sender_timeout_case

# 50 checks in one loop on 4 workers: even ones pass, odd ones fail,
# every tenth includes the silent name.  The four timeouts overlap (one
# 1.5 s timeout in all, six if they ran one after the other) and the
# fast checks are not stuck behind them for long.
concurrent_case() {
	local log=$T/concurrent.log want=$T/concurrent.want i args=()
	: >"$want"
	for ((i = 1; i <= 50; i++)); do
		if ((i % 10 == 5)) && ((i < 45)); then
			args+=("192.0.2.$i,h.test,u$i@incslow.test")
			echo "$i temperror" >>"$want"
		elif ((i % 2 == 0)); then
			args+=("192.0.2.$i,h.test,u$i@pass.test")
			echo "$i pass" >>"$want"
		else
			args+=("198.51.100.$i,h.test,u$i@pass.test")
			echo "$i fail" >>"$want"
		fi
	done
	timed probe -t 1500 -w 4 "$S" "${args[@]}" >"$log" 2>&1
	cat "$log"
	[ "$(grep -c '^[0-9]' "$log")" = 50 ] &&
		diff <(grep '^[0-9]' "$log" | cut -d' ' -f1,2 | sort -n) \
			<(sort -n "$want") &&
		within "$log" 1400 3500
}
check "50 concurrent checks on 4 workers: all right, timeouts overlap" \
	concurrent_case

cancel_case() {
	local out
	out=$(probe -C -t 1000 "$S" "192.0.2.10,h.test,a@incslow.test" \
		"192.0.2.10,h.test,a@pass.test" "192.0.2.10,h.test,b@pass.test" 2>&1)
	printf '%s\n' "$out"
	[ "$out" = "cancelled 2
3 pass spf=pass (domain of b@pass.test designates 192.0.2.10 as permitted sender) smtp.mailfrom=pass.test" ]
}
check "cancelled checks never call back" cancel_case

vg_case() {
	local vg="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99"
	[ -f "$top_srcdir/tests/valgrind.supp" ] &&
		vg="$vg --suppressions=$top_srcdir/tests/valgrind.supp"
	timeout -k 5 120 $vg "$P" -t 1000 -w 2 "$S" \
		"192.0.2.10,h.test,a@pass.test" "198.51.100.1,h.test,a@pass.test" \
		"192.0.2.10,h.test,a@incslow.test" "192.0.2.10,h.test,a@two.test" \
		"192.0.2.10,h.test,a@syntax.test" "198.51.100.25,h.test,a@mx.test" \
		"192.0.2.10,mta.helo.test," "192.0.2.10,h.test,a@slow.test" || return 1
	timeout -k 5 120 $vg "$P" -C -t 1000 "$S" \
		"192.0.2.10,h.test,a@incslow.test" "192.0.2.10,h.test,a@pass.test"
}
if ! command -v valgrind >/dev/null 2>&1; then
	skip "no leaks under valgrind" "valgrind not installed"
elif ldd "$P" 2>/dev/null | grep -q libasan; then
	skip "no leaks under valgrind" "sanitizer build"
else
	check "no leaks or invalid accesses under valgrind" vg_case
fi

done_testing
