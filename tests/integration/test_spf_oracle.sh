#!/bin/bash
# test_spf_oracle.sh - relay/spf (libspf2 plus our layer, driven through
# tests/integration/spf_probe) against pyspf (tests/integration/
# spf_oracle.py, Debian python3-spf) on the same dnsmasq zone: records x
# client addresses x sender domains covering ip4/ip6, a, mx, include and
# redirect chains, exists, macros, ptr and %{p}, the HELO identity, void
# look-ups, the 10-term and 10-MX limits, syntax errors, and the RFC 7208
# rules libspf2 misses (redirect= beside all, duplicate modifiers).
#
# Each case names the verdict RFC 7208 gives; it is "ok" when our verdict
# is that one and pyspf's is too.  Where pyspf differs from the RFC the
# case says so in DISAGREE with the section that makes us right; a
# disagreement not listed there fails the case.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dnsmasq
ORACLE=$top_srcdir/tests/integration/spf_oracle.py
P=$top_builddir/tests/integration/spf_probe
[ -x "$P" ] || { echo "Bail out! $P not built"; exit 1; }
/usr/bin/python3 -c 'import spf, dns.resolver' 2>/dev/null ||
	skip_all "pyspf (python3-spf) not installed for /usr/bin/python3"

RECORDS=$T/records
cat >"$RECORDS" <<'EOF2'
TXT ip4.test "v=spf1 ip4:192.0.2.0/24 -all"
TXT ip6.test "v=spf1 ip6:2001:db8:1::/48 ~all"
TXT a.test "v=spf1 a -all"
A a.test 192.0.2.20
AAAA a.test 2001:db8::20
TXT acidr.test "v=spf1 a:host.acidr.test/24 -all"
A host.acidr.test 198.51.100.7
TXT acname.test "v=spf1 a:alias.acname.test -all"
CNAME alias.acname.test real.acname.test
A real.acname.test 192.0.2.25
TXT mx.test "v=spf1 mx -all"
MX mx.test 10 mx1.mx.test
MX mx.test 20 mx2.mx.test
A mx1.mx.test 192.0.2.30
A mx2.mx.test 192.0.2.31
TXT inc.test "v=spf1 include:_spf.inc.test ?all"
TXT _spf.inc.test "v=spf1 ip4:203.0.113.0/24 -all"
TXT incnone.test "v=spf1 include:nothing.test -all"
TXT incsf.test "v=spf1 include:broken.test -all"
SERVFAIL broken.test
TXT redir.test "v=spf1 redirect=_r1.redir.test"
TXT _r1.redir.test "v=spf1 ip4:192.0.2.40 redirect=_r2.redir.test"
TXT _r2.redir.test "v=spf1 ip4:192.0.2.41 -all"
TXT redirnone.test "v=spf1 redirect=nothing.test"
TXT redirall.test "v=spf1 ip4:192.0.2.1 redirect=open.test -all"
TXT open.test "v=spf1 +all"
TXT redirfirst.test "v=spf1 redirect=ip4.test ip4:198.51.100.0/24"
TXT tworedir.test "v=spf1 redirect=ip4.test redirect=open.test"
TXT twoexp.test "v=spf1 ip4:192.0.2.0/24 exp=e1.test exp=e2.test -all"
TXT exp.test "v=spf1 ip4:192.0.2.0/24 -all exp=why.exp.test"
TXT why.exp.test "%{i} is not one of %{d}'s senders"
TXT void2.test "v=spf1 a:nx1.test mx:a.test +all"
TXT void3.test "v=spf1 a:nx1.test mx:a.test exists:nx2.test +all"
TXT void3nodata.test "v=spf1 mx:a.test mx:ip4.test a:ip4.test +all"
TXT exists.test "v=spf1 exists:%{i}.wl.test -all"
A 192.0.2.50.wl.test 127.0.0.2
TXT mlocal.test "v=spf1 exists:%{l}.u.mlocal.test -all"
A alice.u.mlocal.test 127.0.0.2
TXT mdelim.test "v=spf1 exists:%{l1r-}.lp.test -all"
A first.lp.test 127.0.0.2
TXT mrev.test "v=spf1 exists:%{ir}.%{v}.rev.test -all"
A 10.2.0.192.in-addr.rev.test 127.0.0.2
A 1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.rev.test 127.0.0.2
TXT mhelo.test "v=spf1 exists:%{h}.h.test -all"
A mta.example.h.test 127.0.0.2
TXT mdom.test "v=spf1 exists:%{d2}.%{o}.d.test -all"
A mdom.test.mdom.test.d.test 127.0.0.2
TXT ptr.test "v=spf1 ptr:good.test -all"
TXT ptrself.test "v=spf1 ptr -all"
TXT pmacro.test "v=spf1 exists:%{p}.p.test -all"
PTR 5.2.0.192.in-addr.arpa mta.good.test
PTR 6.2.0.192.in-addr.arpa mta.good.test
PTR 7.2.0.192.in-addr.arpa mta.ptrself.test
PTR 5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa mta6.good.test
A mta.good.test 192.0.2.5
AAAA mta6.good.test 2001:db8:1::5
A mta.ptrself.test 192.0.2.7
A mta.good.test.p.test 127.0.0.2
TXT terms.test "v=spf1 include:t1.test include:t2.test include:t3.test -all"
TXT terms10.test "v=spf1 include:t1.test include:t2.test a:a.test a:a.test -all"
TXT terms11.test "v=spf1 a:a.test a:a.test a:a.test a:a.test a:a.test a:a.test a:a.test a:a.test a:a.test a:a.test a:a.test"
TXT t1.test "v=spf1 a:a.test a:a.test a:a.test ?all"
TXT t2.test "v=spf1 a:a.test a:a.test a:a.test ?all"
TXT t3.test "v=spf1 a:a.test a:a.test a:a.test ?all"
TXT mx11.test "v=spf1 mx -all"
MX mx11.test 1 mx1.mx.test
MX mx11.test 2 m2.mx11.test
MX mx11.test 3 m3.mx11.test
MX mx11.test 4 m4.mx11.test
MX mx11.test 5 m5.mx11.test
MX mx11.test 6 m6.mx11.test
MX mx11.test 7 m7.mx11.test
MX mx11.test 8 m8.mx11.test
MX mx11.test 9 m9.mx11.test
MX mx11.test 10 m10.mx11.test
MX mx11.test 11 m11.mx11.test
TXT bogus.test "v=spf1 ip4:192.0.2.0/24 bogus:x.test -all"
TXT badip.test "v=spf1 ip4:300.1.1.1 -all"
TXT emptya.test "v=spf1 a: -all"
TXT allarg.test "v=spf1 -all:foo"
TXT badmacro.test "v=spf1 exists:%{z}.x.test -all"
TXT unknownmod.test "v=spf1 foo=bar ip4:192.0.2.0/24 -all"
TXT two.test "v=spf1 -all"
TXT two.test "v=spf1 +all"
TXT bare.test "v=spf1"
TXT spf10.test "v=spf10 -all"
TXT txtonly.test "site-verification=abc"
TXT upper.test "V=SPF1 IP4:192.0.2.0/24 -ALL"
TXT soft.test "v=spf1 ?ip4:192.0.2.0/24 ~all"
TXT mta.helo.test "v=spf1 ip4:192.0.2.60 -all"
TXT mi4.test "v=spf1 exists:%{i4}.i4.test -all"
A 192.0.2.1.i4.test 127.0.0.2
TXT mdr.test "v=spf1 exists:%{d2r}.dr.test -all"
A test.mdr.dr.test 127.0.0.2
TXT mlp.test "v=spf1 exists:%{l2-}.l2.test -all"
A x.y.l2.test 127.0.0.2
TXT mi6.test "v=spf1 exists:%{i}.i6.test -all"
A 2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.i6.test 127.0.0.2
TXT cidr6.test "v=spf1 a:host6.cidr6.test//64 -all"
AAAA host6.cidr6.test 2001:db8:6:6::1
TXT incvoid.test "v=spf1 a:nx1.test include:_i.incvoid.test +all"
TXT _i.incvoid.test "v=spf1 a:nx2.test a:nx3.test ?all"
TXT allfirst.test "v=spf1 -all redirect=open.test"
TXT emptyexp.test "v=spf1 ip4:192.0.2.0/24 -all exp="
TXT numtop.test "v=spf1 a:192.0.2.1 -all"
TXT onelabel.test "v=spf1 a:localhost -all"
TXT zero4.test "v=spf1 -ip4:10.0.0.0/0 +all"
TXT zero6.test "v=spf1 ip6:::/0 -all"
TXT d0.test "v=spf1 exists:%{d0}.x.test -all"
TXT long.test "v=spf1 ip4:192.0.2.1 ip4:192.0.2.2 ip4:192.0.2.3 ip4:192.0.2.4 ip4:192.0.2.5 ip4:192.0.2.6 ip4:192.0.2.7 ip4:192.0.2.8 ip4:192.0.2.9 ip4:192.0.2.10 ip4:192.0.2.11 ip4:192.0.2.12 ip4:192.0.2.13 ip4:192.0.2.14 ip4:192.0.2.15 ip4:192.0.2.16 ip4:192.0.2.17 ip4:192.0.2.18 ip4:192.0.2.19 ip4:192.0.2.70 -all"
EOF2

# CASE lines: WANT CLIENT HELO SENDER  ("-" for the null sender <>);
# WANT is the RFC 7208 verdict.
CASES=$T/cases
cat >"$CASES" <<'EOF2'
pass 192.0.2.10 h.test a@ip4.test
fail 198.51.100.1 h.test a@ip4.test
pass 2001:db8:1::5 h.test a@ip6.test
softfail 2001:db8:2::5 h.test a@ip6.test
softfail 192.0.2.10 h.test a@ip6.test
pass 192.0.2.20 h.test a@a.test
pass 2001:db8::20 h.test a@a.test
fail 192.0.2.21 h.test a@a.test
pass 198.51.100.99 h.test a@acidr.test
pass 192.0.2.25 h.test a@acname.test
pass 192.0.2.31 h.test a@mx.test
fail 192.0.2.32 h.test a@mx.test
pass 203.0.113.5 h.test a@inc.test
neutral 192.0.2.1 h.test a@inc.test
permerror 192.0.2.1 h.test a@incnone.test
temperror 192.0.2.1 h.test a@incsf.test
pass 192.0.2.40 h.test a@redir.test
pass 192.0.2.41 h.test a@redir.test
fail 192.0.2.42 h.test a@redir.test
permerror 192.0.2.1 h.test a@redirnone.test
fail 198.51.100.1 h.test a@redirall.test
pass 192.0.2.1 h.test a@redirall.test
pass 198.51.100.1 h.test a@redirfirst.test
fail 203.0.113.1 h.test a@redirfirst.test
permerror 192.0.2.1 h.test a@tworedir.test
permerror 192.0.2.1 h.test a@twoexp.test
fail 198.51.100.1 h.test a@exp.test
pass 198.51.100.1 h.test a@void2.test
permerror 198.51.100.1 h.test a@void3.test
permerror 198.51.100.1 h.test a@void3nodata.test
pass 192.0.2.50 h.test a@exists.test
fail 192.0.2.51 h.test a@exists.test
pass 192.0.2.1 h.test alice@mlocal.test
fail 192.0.2.1 h.test bob@mlocal.test
pass 192.0.2.1 h.test first-second@mdelim.test
pass 192.0.2.10 h.test a@mrev.test
pass 2001:db8::1 h.test a@mrev.test
fail 192.0.2.11 h.test a@mrev.test
pass 192.0.2.1 mta.example a@mhelo.test
fail 192.0.2.1 other.example a@mhelo.test
pass 192.0.2.1 h.test a@mdom.test
pass 192.0.2.5 h.test a@ptr.test
fail 192.0.2.6 h.test a@ptr.test
fail 192.0.2.9 h.test a@ptr.test
pass 2001:db8:1::5 h.test a@ptr.test
pass 192.0.2.7 h.test a@ptrself.test
pass 192.0.2.5 h.test a@pmacro.test
fail 192.0.2.6 h.test a@pmacro.test
permerror 198.51.100.1 h.test a@terms.test
fail 198.51.100.1 h.test a@terms10.test
permerror 198.51.100.1 h.test a@terms11.test
permerror 198.51.100.1 h.test a@mx11.test
permerror 192.0.2.1 h.test a@bogus.test
permerror 192.0.2.1 h.test a@badip.test
permerror 192.0.2.1 h.test a@emptya.test
permerror 192.0.2.1 h.test a@allarg.test
permerror 192.0.2.1 h.test a@badmacro.test
pass 192.0.2.1 h.test a@unknownmod.test
permerror 192.0.2.1 h.test a@two.test
neutral 192.0.2.1 h.test a@bare.test
none 192.0.2.1 h.test a@spf10.test
none 192.0.2.1 h.test a@txtonly.test
none 192.0.2.1 h.test a@nosuch.test
pass 192.0.2.1 h.test a@upper.test
neutral 192.0.2.1 h.test a@soft.test
softfail 198.51.100.1 h.test a@soft.test
pass 192.0.2.60 mta.helo.test -
fail 192.0.2.61 mta.helo.test -
pass 192.0.2.1 h.test a@mi4.test
pass 192.0.2.1 h.test a@mdr.test
pass 192.0.2.1 h.test x-y@mlp.test
pass 2001:db8::9 h.test a@mi6.test
pass 2001:db8:6:6::99 h.test a@cidr6.test
fail 2001:db8:6:7::1 h.test a@cidr6.test
permerror 198.51.100.1 h.test a@incvoid.test
fail 192.0.2.1 h.test a@allfirst.test
none 192.0.2.60 mta.helo.test a@nosuch.test
none 192.0.2.1 nosuch.test -
permerror 192.0.2.1 h.test a@emptyexp.test
permerror 192.0.2.1 h.test a@numtop.test
permerror 192.0.2.1 h.test a@onelabel.test
fail 192.0.2.1 h.test a@zero4.test
pass 2001:db8:7::1 h.test a@zero4.test
pass 2001:db8:7::1 h.test a@zero6.test
fail 192.0.2.1 h.test a@zero6.test
permerror 192.0.2.1 h.test a@d0.test
pass 192.0.2.70 h.test a@long.test
fail 192.0.2.71 h.test a@long.test
EOF2

# DISAGREE lines: CLIENT SENDER OURS PYSPF SECTION... - the case of that
# client and sender, where pyspf is the one that departs from RFC 7208.
DISAGREE=$T/disagree
cat >"$DISAGREE" <<'EOF2'
192.0.2.1 a@d0.test permerror fail 7.1: a DIGIT transformer MUST be nonzero (pyspf reads %{d0} as %{d})
EOF2

ncases=$(grep -c . "$CASES")
plan $((ncases + 3))

check "dnsmasq starts" start_dns <"$RECORDS"
S=127.0.0.1:$DNS_PORT

args=()
while read -r want ip helo from; do
	[ "$from" = - ] && from=
	args+=("$ip,$helo,$from")
done <"$CASES"

# ours: every case in one spf_probe run (4 workers); one line per case
check "spf_probe: every case answered" eval \
	'timeout -k 5 120 "$P" -t 3000 -w 4 "$S" "${args[@]}" >"$T/ours.out" &&
	[ "$(grep -c "^[0-9]" "$T/ours.out")" = "$ncases" ]'
check "pyspf: every case answered" eval \
	'timeout -k 5 300 /usr/bin/python3 "$ORACLE" "$DNS_PORT" "${args[@]}" \
		>"$T/theirs.out" &&
	[ "$(grep -c "^[0-9]" "$T/theirs.out")" = "$ncases" ]'

# verdict_of FILE N - the verdict printed for case N
verdict_of() {
	awk -v n="$2" '$1 == n { print $2; exit }' "$1"
}

n=0
agree=0
while read -r want ip helo from; do
	n=$((n + 1))
	ours=$(verdict_of "$T/ours.out" "$n")
	theirs=$(verdict_of "$T/theirs.out" "$n")
	desc="case $n: $want for $ip ($helo) $from: ours $ours, pyspf $theirs"
	listed=$(awk -v ip="$ip" -v f="$from" '$1 == ip && $2 == f' "$DISAGREE")
	if [ "$ours" != "$want" ]; then
		not_ok "$desc" "our verdict is not RFC 7208's" \
			"$(grep "^$n " "$T/ours.out")"
	elif [ "$theirs" = "$ours" ]; then
		agree=$((agree + 1))
		ok "$desc"
	elif [ -n "$listed" ] && [ "$(echo "$listed" | cut -d' ' -f3,4)" = "$ours $theirs" ]; then
		ok "$desc (pyspf departs from RFC 7208 $(echo "$listed" | cut -d' ' -f5-))"
	else
		not_ok "$desc" "a disagreement with pyspf not listed in DISAGREE"
	fi
done <"$CASES"
diag "$agree of $ncases cases agree with pyspf"

done_testing
