#!/bin/bash
# test_harness.sh - proves tests/integration/lib.sh against the real servers.
#
# Every other integration test trusts these helpers: that dnsmasq answers
# exactly the records it was given (and never forwards), that a TIMEOUT
# name really stays silent, that the private Dovecot instances accept and
# refuse logins and keep their settings apart, that smtp-sink keeps what it
# received, and that nothing is left running or on disk afterwards.
# It uses none of mailferry's programs.

. "$top_srcdir/tests/integration/lib.sh"

require_cmd dnsmasq dig dovecot doveadm smtp-sink swaks openssl \
	"$LIB_PYTHON" setsid pgrep

# --- TAP helpers themselves ---------------------------------------------------

# A child test whose second check fails must say "not ok", show the
# command's output as diagnostics, and exit non-zero from done_testing.
cat >"$T/child_tap.sh" <<'EOF'
. "$top_srcdir/tests/integration/lib.sh"
check "passes" true
check "fails" sh -c 'echo first-line; echo boom-diagnostic; exit 3'
check_fail "fails as expected" false
done_testing
EOF
bash "$T/child_tap.sh" >"$T/child_tap.out" 2>&1
rc=$?
if [ $rc -ne 0 ] &&
	grep -qx 'ok 1 - passes' "$T/child_tap.out" &&
	grep -qx 'not ok 2 - fails' "$T/child_tap.out" &&
	grep -qx '# boom-diagnostic' "$T/child_tap.out" &&
	grep -qx 'ok 3 - fails as expected' "$T/child_tap.out" &&
	grep -qx '1\.\.3' "$T/child_tap.out"; then
	ok "TAP helpers report a failed check with diagnostics and exit $rc"
else
	not_ok "TAP helpers report a failed check" "exit $rc, output:" \
		"$(cat "$T/child_tap.out")"
fi

# --- ports and certificates -----------------------------------------------------

p1=$(free_port) && p2=$(free_port)
if [ -n "$p1" ] && [ -n "$p2" ] && [ "$p1" != "$p2" ] &&
	[ "$p1" -ge 20000 ] && [ "$p1" -lt 60000 ]; then
	ok "free_port hands out distinct ports ($p1, $p2)"
else
	not_ok "free_port hands out distinct ports" "got '$p1' and '$p2'"
fi
check_fail "port_open: nothing listens on a free port" port_open "$p1"
check_fail "wait_port times out when nothing listens" wait_port "$p2" 1

check "make_cert creates a CA and a server certificate" make_cert localhost
check "the certificate verifies against TEST_CA" \
	openssl verify -CAfile "$TEST_CA" "$T/pki/localhost.pem"
check "the certificate carries DNS:localhost and IP:127.0.0.1" \
	sh -c "openssl x509 -noout -ext subjectAltName -in '$T/pki/localhost.pem' |
		grep -q 'DNS:localhost, IP Address:127.0.0.1'"

# --- DNS ------------------------------------------------------------------------

# 400 bytes: more than one 255-byte character-string, like a 2048-bit DKIM key.
long=$(printf 'v=DKIM1; k=rsa; p=%s' "$(head -c 400 /dev/zero | tr '\0' 'B')")
long=${long:0:400}
check "start_dns starts dnsmasq" start_dns <<EOF
# comment lines and blank lines are ignored

MX    example.test 10 mx1.example.test
MX    example.test 20 mx2.example.test
A     mx1.example.test 127.0.0.1
AAAA  mx1.example.test ::1
A     mx2.example.test 127.0.0.2
CNAME alias.example.test mx1.example.test
TXT   example.test "v=spf1 ip4:127.0.0.1 include:slow.test -all"
TXT   sel._domainkey.example.test "$long"
TXT   two.example.test "first string" "second, with \"quotes\""
TIMEOUT slow.test
EOF
sorted_mx() { dns_query "$1" MX | sort -n; }
check_output "MX answers" \
	"$(printf '10 mx1.example.test.\n20 mx2.example.test.')" sorted_mx example.test
check_output "A record" 127.0.0.1 dns_query mx1.example.test A
check_output "AAAA record" ::1 dns_query mx1.example.test AAAA
check_output "CNAME record" "$(printf 'mx1.example.test.\n127.0.0.1')" \
	dns_query alias.example.test A

# dig prints the 255-byte chunks as "…" "…"; joining them gives the value.
got=$(dns_query sel._domainkey.example.test TXT)
joined=$(printf '%s' "$got" | sed -e 's/^"//' -e 's/"$//' -e 's/" "//g')
if [ "$joined" = "$long" ] && [ "$(printf '%s' "$got" | grep -o '" "' | wc -l)" -eq 1 ]; then
	ok "TXT of ${#long} bytes comes back whole, as two strings"
else
	not_ok "long TXT record" "want: $long" "got: $got"
fi
check_output "TXT with two strings, quotes and a comma" \
	'"first string" "second, with \"quotes\""' dns_query two.example.test TXT
check_output "unknown name gets NXDOMAIN" NXDOMAIN dns_status nowhere.test A
check_output "known name, absent type gets NOERROR (no data)" NOERROR \
	dns_status mx2.example.test TXT
check_output "a public name is not forwarded anywhere" NXDOMAIN \
	dns_status debian.org A
start=$SECONDS
check_output "a TIMEOUT name does not answer within 2 s" TIMEOUT \
	dns_status x.slow.test TXT 2
diag "(waited $((SECONDS - start)) s)"
old_port=$DNS_PORT
check "update_dns replaces the records" update_dns <<EOF
MX example.test 5 new-mx.example.test
EOF
port_and_mx() { echo "$DNS_PORT $(dns_query "$1" MX)"; }
check_output "update_dns keeps the port and serves the new MX" \
	"$old_port 5 new-mx.example.test." port_and_mx example.test

# Several resolvers at once (an MX switch seen by some and not others):
# two more instances, each its own port and answer for the same name.
check "start_dns_named a: a second dnsmasq" start_dns_named a <<EOF
MX example.test 10 old-mx.example.test
EOF
check "start_dns_named b: a third one" start_dns_named b <<EOF
MX example.test 10 new-mx.example.test
TIMEOUT slow.test
SERVFAIL broken.test
EOF
mx_at() { DNS_PORT=$1 dns_query example.test MX; }
if [ -n "${DNS_PORT_a:-}" ] && [ -n "${DNS_PORT_b:-}" ] &&
	[ "$DNS_PORT_a" != "$DNS_PORT_b" ] && [ "$DNS_PORT_a" != "$DNS_PORT" ]; then
	ok "named instances export their own ports (a=$DNS_PORT_a b=$DNS_PORT_b main=$DNS_PORT)"
else
	not_ok "named instances export their own ports" \
		"a=${DNS_PORT_a:-} b=${DNS_PORT_b:-} main=${DNS_PORT:-}"
fi
check_output "instance a answers its MX" "10 old-mx.example.test." mx_at "$DNS_PORT_a"
check_output "instance b answers another MX for the same name" \
	"10 new-mx.example.test." mx_at "$DNS_PORT_b"
check_output "the main instance still answers its own" "5 new-mx.example.test." \
	mx_at "$DNS_PORT"
status_at() { DNS_PORT=$1 dns_status "$2" MX 1; }
check_output "a TIMEOUT name of b stays silent" TIMEOUT \
	status_at "$DNS_PORT_b" x.slow.test
check_output "a SERVFAIL name of b answers SERVFAIL" SERVFAIL \
	status_at "$DNS_PORT_b" x.broken.test
check_output "its neighbours are not affected" NXDOMAIN \
	status_at "$DNS_PORT_b" notbroken.test
check "update_dns_named a: a flips its MX" update_dns_named a <<EOF
MX example.test 10 new-mx.example.test
EOF
check_output "a serves the new MX on the same port" "10 new-mx.example.test." \
	mx_at "$DNS_PORT_a"
check "the query logs are apart" \
	sh -c "grep -q 'query\\[MX\\] x.slow.test' '$DNS_LOG_b' &&
		! grep -q 'x.slow.test' '$DNS_LOG_a'"
check "stop_dns_named b stops only b" stop_dns_named b
check_fail "b no longer answers" port_open "$DNS_PORT_b"
check_output "a still answers" "10 new-mx.example.test." mx_at "$DNS_PORT_a"
check_fail "start_dns_named refuses a bad name" start_dns_named "x-y" </dev/null

# --- IMAP -------------------------------------------------------------------------

check "start_dovecot starts a private Dovecot" start_dovecot
check "alice logs in over IMAP" imap_login_ok "$IMAP_PORT" alice pass
check "bob logs in over IMAP" imap_login_ok "$IMAP_PORT" bob pass
check_fail "a wrong password is refused" imap_login_ok "$IMAP_PORT" alice wrong
check_fail "an unknown user is refused" imap_login_ok "$IMAP_PORT" mallory pass

imaps_login() {
	printf 'a LOGIN %s %s\r\na LOGOUT\r\n' "$2" "$3" |
		timeout 10 openssl s_client -connect "127.0.0.1:$IMAPS_PORT" \
			-CAfile "$TEST_CA" -verify_return_error -verify_hostname "$1" \
			-ign_eof -quiet 2>&1 | tee /dev/stderr | grep -q '^a OK .*Logged in'
}
check "alice logs in over IMAPS, certificate verified for localhost" \
	imaps_login localhost alice pass
check "bob logs in over IMAPS, certificate verified for localhost" \
	imaps_login localhost bob pass
check_fail "IMAPS certificate does not verify for another name" \
	imaps_login other.test alice pass
check "imap_tool verifies IMAPS against TEST_CA" \
	env IMAP_TLS=1 "$LIB_PYTHON" "$TEST_DATA/imap_tool.py" "$IMAPS_PORT" bob pass login

printf 'From: a@example.test\nTo: alice@example.test\nSubject: t1\nMessage-ID: <t1@example.test>\n\nbody one\n' \
	>"$T/msg1.eml"
check "imap_append stores a message with flags" \
	imap_append "$IMAP_PORT" alice pass INBOX "$T/msg1.eml" '\Seen \Flagged'
check_output "imap_count counts it" 1 imap_count "$IMAP_PORT" alice pass INBOX
check_output "imap_flags shows its flags" '1 \Flagged \Seen' \
	imap_flags "$IMAP_PORT" alice pass INBOX
imap_fetch "$IMAP_PORT" alice pass INBOX 1 >"$T/fetched.eml"
if cmp -s "$T/fetched.eml" <(sed 's/$/\r/' "$T/msg1.eml"); then
	ok "imap_fetch returns the stored bytes (CRLF)"
else
	not_ok "imap_fetch returns the stored bytes" "$(od -c "$T/fetched.eml" | head -5)"
fi
check_output "bob's mailbox is separate" 0 imap_count "$IMAP_PORT" bob pass INBOX
check "imap_create creates a nested folder" \
	imap_create "$IMAP_PORT" alice pass Archive.2024
check "imap_create creates a non-ASCII folder" \
	imap_create "$IMAP_PORT" alice pass "Entwürfe"
check_output "imap_list lists them with separator '.'" \
	"$(printf '.\tArchive\n.\tArchive.2024\n.\tEntw&APw-rfe\n.\tINBOX')" \
	sh -c "'$LIB_PYTHON' '$TEST_DATA/imap_tool.py' '$IMAP_PORT' alice pass list |
		cut -f2,3 | sort"
check "imap_cmd runs raw commands" \
	sh -c "'$LIB_PYTHON' '$TEST_DATA/imap_tool.py' '$IMAP_PORT' alice pass cmd \
		'EXAMINE INBOX' 'UID SEARCH ALL' | grep -qx '\\* SEARCH 1.*'"
check_fail "imap_cmd fails on a BAD command" \
	imap_cmd "$IMAP_PORT" alice pass 'FETCH nonsense'
check_output "doveadm_cmd reaches the private instance" "INBOX messages=1" \
	doveadm_cmd main mailbox status -u alice messages INBOX

# A second instance, '/' separator, Sent marked \Sent, next to the first.
DOVECOT_NAME=dst DOVECOT_SEP=/ DOVECOT_SPECIAL_USE='Sent=\Sent;Deleted Items=\Trash' \
	check "a second Dovecot starts beside the first" \
	start_dovecot alice:other carol:secret
if [ -n "${IMAP_PORT_dst:-}" ] && [ -n "${IMAP_PORT_main:-}" ] &&
	[ "$IMAP_PORT_dst" != "$IMAP_PORT_main" ] && [ "$IMAP_PORT" = "$IMAP_PORT_dst" ]; then
	ok "instances export IMAP_PORT_main=$IMAP_PORT_main and IMAP_PORT_dst=$IMAP_PORT_dst"
else
	not_ok "instance ports exported" "main=${IMAP_PORT_main:-} dst=${IMAP_PORT_dst:-}"
fi
check "carol logs in to dst" imap_login_ok "$IMAP_PORT_dst" carol secret
check_fail "dst has its own users (alice:pass refused)" \
	imap_login_ok "$IMAP_PORT_dst" alice pass
check "dst: create a nested folder" imap_create "$IMAP_PORT_dst" alice other Archive/2024
check_output "dst lists separator '/' and the special-use folders" \
	"$(printf '\\Noselect \\HasChildren\t/\tArchive\n\\HasNoChildren\t/\tArchive/2024\n\\HasNoChildren \\Trash\t/\tDeleted Items\n\\HasNoChildren\t/\tINBOX\n\\HasNoChildren \\Sent\t/\tSent')" \
	sh -c "'$LIB_PYTHON' '$TEST_DATA/imap_tool.py' '$IMAP_PORT_dst' alice other list | sort -t'	' -k3"
check_output "main instance still answers with its own data" 1 \
	imap_count "$IMAP_PORT_main" alice pass INBOX
check_output "dst alice's INBOX is empty" 0 imap_count "$IMAP_PORT_dst" alice other INBOX
check "stop_dovecot dst stops only dst" stop_dovecot dst
check_fail "dst no longer listens" port_open "$IMAP_PORT_dst"
check "main still listens" port_open "$IMAP_PORT_main"

# --- SMTP sink ------------------------------------------------------------------

check "start_smtp_sink starts smtp-sink" start_smtp_sink
printf 'From: s@example.org\nTo: alice@example.test\nSubject: sink test\n\nsink body line\n\nlast line\n' \
	>"$T/sink.eml"
check "swaks delivers to smtp-sink" swaks -S -S --server "127.0.0.1:$SINK_PORT" \
	--from s@example.org --to alice@example.test --data "@$T/sink.eml"
check "sink_wait sees the message" sink_wait 1 5
f=$(sink_files | head -n 1)
check_output "one message file in SINK_DIR" 1 sink_count
check "the file holds the body" grep -qx 'sink body line' "$f"
check_output "sink_envelope shows MAIL FROM and RCPT TO" \
	"$(printf 'X-Mail-Args: <s@example.org>\nX-Rcpt-Args: <alice@example.test>')" \
	sink_envelope "$f"
# swaks ends DATA with an extra empty line of its own.
if cmp -s <(sink_message "$f") <(cat "$T/sink.eml"; echo); then
	ok "sink_message gives back the message as sent"
else
	not_ok "sink_message gives back the message" "$(sink_message "$f" | head -20)"
fi
sport=$SINK_PORT
check "stop_smtp_sink stops it" stop_smtp_sink
check_fail "the port is closed" port_open "$sport"
check "start_smtp_sink -r RCPT restarts on the same port" start_smtp_sink -r RCPT
check_output "same port" "$sport" echo "$SINK_PORT"
check "smtp-sink answers RCPT with 4xx" sh -c "swaks -S -S --server '127.0.0.1:$SINK_PORT' \
	--from s@example.org --to alice@example.test --data '@$T/sink.eml' 2>&1 |
	grep -q '^<\\*\\* *450 '"
check_output "the refused message was not stored" 1 sink_count

# --- cleanup ----------------------------------------------------------------------

# A child test that starts every kind of server and then fails half-way
# (exit 3) must leave no process and no directory behind.
cat >"$T/child_clean.sh" <<'EOF'
. "$top_srcdir/tests/integration/lib.sh"
echo "T=$T"
start_dns <<R || exit 9
A a.test 127.0.0.1
TIMEOUT t.test
R
start_dovecot || exit 9
DOVECOT_NAME=two start_dovecot || exit 9
start_smtp_sink || exit 9
for p in $(started_pids); do
	echo "PID=$p"
	# Dovecot's helpers (anvil, log, config, auth...) share its session.
	for m in $(pgrep -s "$p"); do echo "MEMBER=$m"; done
done
exit 3
EOF
bash "$T/child_clean.sh" >"$T/child_clean.out" 2>&1
rc=$?
ctmp=$(sed -n 's/^T=//p' "$T/child_clean.out")
cpids=$(sed -n 's/^PID=//p' "$T/child_clean.out")
members=$(sed -n 's/^MEMBER=//p' "$T/child_clean.out")
if [ $rc -eq 3 ]; then
	ok "a failing child keeps its exit code (3)"
else
	not_ok "child exit code" "got $rc" "$(cat "$T/child_clean.out")"
fi
# dnsmasq, blackhole, two Dovecot masters, smtp-sink.
if [ "$(echo "$cpids" | wc -w)" -eq 5 ]; then
	ok "the child started 5 server processes"
else
	not_ok "the child started 5 server processes" "pids: $cpids"
fi
left=
for p in $cpids $members; do
	[ -d "/proc/$p" ] && left="$left $p($(cat "/proc/$p/comm" 2>/dev/null))"
done
if [ -z "$left" ] && [ -n "$cpids" ]; then
	ok "none of the child's $(echo $cpids $members | wc -w) processes is left"
else
	not_ok "no process of the child is left" "still running:$left"
fi
if [ -n "$ctmp" ] && [ ! -e "$ctmp" ]; then
	ok "the child's \$T is removed"
else
	not_ok "the child's \$T is removed" "T=$ctmp"
fi
# Killed with TERM while waiting: the trap still cleans up.
cat >"$T/child_term.sh" <<'EOF'
. "$top_srcdir/tests/integration/lib.sh"
echo "T=$T"
start_smtp_sink || exit 9
echo "PID=$SINK_PID"
echo ready
spawn sleeper sleep 60
wait "$SPAWN_PID"
EOF
bash "$T/child_term.sh" >"$T/child_term.out" 2>&1 &
child=$!
for ((i = 0; i < 100; i++)); do
	grep -qx ready "$T/child_term.out" && break
	sleep 0.05
done
kill -TERM "$child"
wait "$child"
rc=$?
ctmp=$(sed -n 's/^T=//p' "$T/child_term.out")
cpid=$(sed -n 's/^PID=//p' "$T/child_term.out")
if [ $rc -eq 143 ] && [ -n "$cpid" ] && [ ! -d "/proc/$cpid" ] &&
	[ -n "$ctmp" ] && [ ! -e "$ctmp" ]; then
	ok "TERM: exit 143, smtp-sink stopped, \$T removed"
else
	not_ok "TERM cleanup" "exit $rc, pid $cpid, T=$ctmp" "$(cat "$T/child_term.out")"
fi

# KEEP_TMP=1 keeps the directory for debugging.
KEEP_TMP=1 bash -c '. "$top_srcdir/tests/integration/lib.sh"; echo "T=$T"' \
	>"$T/child_keep.out" 2>&1
ctmp=$(sed -n 's/^T=//p' "$T/child_keep.out")
if [ -n "$ctmp" ] && [ -d "$ctmp" ] && grep -q "^# KEEP_TMP=1: kept $ctmp" "$T/child_keep.out"; then
	ok "KEEP_TMP=1 keeps \$T"
else
	not_ok "KEEP_TMP=1 keeps \$T" "$(cat "$T/child_keep.out")"
fi
[ -n "$ctmp" ] && rm -rf "$ctmp"

done_testing
