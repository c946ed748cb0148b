#!/bin/bash
# test_imap_client.sh - the IMAP protocol layer of ferry-syncd
# (syncd/imap_client.c, imap_parse.c, mutf7.c) through
# tests/integration/imap_probe against a real Dovecot: plain, STARTTLS
# and IMAPS logins, certificate checks, special-use LIST, a non-ASCII
# folder, a 20 MB message streamed both ways with the probe's peak RSS
# measured, MULTIAPPEND, pipelining, COMPRESS=DEFLATE, a FETCH streamed
# into an APPEND on a second connection with flow control.  Then a
# scripted fake server for what Dovecot will not do on demand: a
# disconnect in the middle of a FETCH literal, BYE, throttling answers,
# garbage, a STARTTLS injection, silence, XOAUTH2.
. "$top_srcdir/tests/integration/lib.sh"

require_cmd dovecot "$LIB_PYTHON" sha256sum base64 timeout

PROBE=$top_builddir/tests/integration/imap_probe
[ -x "$PROBE" ] || {
	echo "Bail out! $PROBE not built"
	exit 1
}
# Under ASan, freed memory sits in a quarantine and would count as peak
# RSS; the RSS checks are about what the code keeps, so turn it off.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0"

SECRET='s3cr3t-Pw!x'
DOVECOT_SPECIAL_USE='Sent=\Sent;Trash=\Trash' DOVECOT_EXTRA='protocol imap {
  mail_plugins = $mail_plugins imap_zlib
}' check "dovecot starts (alice, bob, carol; special-use Sent, Trash; imap_zlib)" \
	start_dovecot alice:pass bob:pass "carol:$SECRET" || {
	echo "Bail out! dovecot does not start"
	exit 1
}

# probe ARGS... - run the probe (20 s at most), output in $T/probe.out
probe() {
	timeout 20 "$PROBE" "$@" >"$T/probe.out" 2>"$T/probe.err"
	PROBE_RC=$?
	cat "$T/probe.out" >>"$T/log/probes.log"
	cat "$T/probe.err" >>"$T/log/probes.log"
	return $PROBE_RC
}

# expect DESC PATTERN... - the last probe's stdout has every pattern
expect() {
	local desc=$1 p
	shift
	for p in "$@"; do
		if ! grep -qE -- "$p" "$T/probe.out"; then
			not_ok "$desc" "exit $PROBE_RC; missing: $p" \
				"$(tail -n 12 "$T/probe.out")" "$(tail -n 5 "$T/probe.err")"
			return 1
		fi
	done
	ok "$desc"
}

# field NAME LINE-PATTERN - value of NAME=... on the first matching line
field() {
	grep -E -- "$2" "$T/probe.out" | head -n 1 | tr ' ' '\n' |
		sed -n "s/^$1=//p" | head -n 1
}

# last_hwm - the probe's VmHWM in kB at exit
last_hwm() {
	sed -n 's/^hwm: kb=//p' "$T/probe.out" | tail -n 1
}

H=127.0.0.1
TLSOPT=(--ca "$TEST_CA" --tls-name localhost)

# --- logins ---------------------------------------------------------------------

probe $H "$IMAP_PORT" alice pass caps noop
expect "plain login, capabilities read" '^ready: tls=0' '^caps: IMAP4rev1.*LITERAL\+' \
	'^ok: noop' '^closed: status=OK'
probe --tls starttls "${TLSOPT[@]}" $H "$IMAP_PORT" alice pass caps
expect "STARTTLS login with the certificate verified" '^ready: tls=1' \
	'^caps: tls=1' '^closed: status=OK'
probe --tls implicit "${TLSOPT[@]}" $H "$IMAPS_PORT" alice pass noop
expect "IMAPS login with \$TEST_CA" '^ready: tls=1' '^ok: noop'
probe --tls implicit $H "$IMAPS_PORT" alice pass noop
expect "IMAPS without our CA: refused, permanent" \
	'^closed: status=ERROR class=permanent .*not verified' && [ $PROBE_RC -eq 2 ]
probe --tls starttls --ca "$TEST_CA" --tls-name wrong.example $H "$IMAP_PORT" alice pass noop
expect "STARTTLS with a wrong host name: refused, permanent" \
	'^closed: status=ERROR class=permanent .*hostname mismatch'
probe $H "$IMAP_PORT" alice wrong noop
if [ $PROBE_RC -eq 2 ]; then
	expect "wrong password: auth failure, exit 2" \
		'^closed: status=ERROR class=auth code=AUTHENTICATIONFAILED'
else
	not_ok "wrong password: auth failure, exit 2" "exit $PROBE_RC"
fi
probe --auth login $H "$IMAP_PORT" carol "$SECRET" noop
expect "LOGIN command with a password full of specials" '^ok: noop'

# The debug log shows every command, never the secret.
plain_b64=$(printf '\0carol\0%s' "$SECRET" | base64 -w 0)
for mech in login plain; do
	probe --debug --auth $mech $H "$IMAP_PORT" carol "$SECRET" noop
	if [ $PROBE_RC -eq 0 ] && grep -q '<hidden>' "$T/probe.err" &&
		grep -q 'carol' "$T/probe.err" &&
		! grep -qF -- "$SECRET" "$T/probe.out" "$T/probe.err" &&
		! grep -qF -- "$plain_b64" "$T/probe.out" "$T/probe.err"; then
		ok "no password in the $mech command log (user name only)"
	else
		not_ok "no password in the $mech command log (user name only)" \
			"exit $PROBE_RC" "$(grep -i 'login\|authenticate' "$T/probe.err")"
	fi
done

# --- folders ---------------------------------------------------------------------

probe $H "$IMAP_PORT" alice pass list
expect "LIST shows the special-use attributes" \
	'^list: name=Sent wire=Sent delim=\. attrs=.*\\Sent.*special=sent' \
	'^list: name=Trash .*special=trash' '^list: name=INBOX '
probe $H "$IMAP_PORT" alice pass "create 'Éléments envoyés'" \
	"create 'Entwürfe.送信済み😀'" "create 'R&D'" list
expect "non-ASCII folders created in modified UTF-7 and listed back in UTF-8" \
	'^list: name=Éléments envoyés wire=&AMk-l&AOk-ments envoy&AOk-s ' \
	'^list: name=Entwürfe\.送信済み😀 wire=Entw&APw-rfe\.&kAFP4W4IMH,YPd4A- ' \
	'^list: name=R&D wire=R&-D '
if imap_list "$IMAP_PORT" alice pass | cut -f3 | grep -qx 'Entw&APw-rfe.&kAFP4W4IMH,YPd4A-'; then
	ok "an independent client sees the same mUTF-7 name"
else
	not_ok "an independent client sees the same mUTF-7 name" "$(imap_list "$IMAP_PORT" alice pass)"
fi

# --- a 20 MB message both ways ----------------------------------------------------

big=$T/big.eml
{
	printf 'From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\n'
	printf 'Message-ID: <big@example.com>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n'
	head -c 15728640 /dev/urandom | base64 -w 76 | sed 's/$/\r/'
} >"$big"
bigsize=$(stat -c %s "$big")
bigsha=$(sha256sum "$big" | cut -d' ' -f1)
printf 'From: a@example.com\r\nSubject: small\r\n\r\nhello\r\n' >"$T/small.eml"
smallsha=$(sha256sum "$T/small.eml" | cut -d' ' -f1)

probe --tls implicit "${TLSOPT[@]}" $H "$IMAPS_PORT" alice pass hwm
base_hwm=$(last_hwm)
diag "probe baseline VmHWM ${base_hwm} kB; message ${bigsize} bytes"

probe --tls implicit "${TLSOPT[@]}" $H "$IMAPS_PORT" alice pass \
	"append INBOX $big '\\Seen \$Forwarded' '17-Jul-1996 02:44:25 -0700'"
expect "20 MB APPEND streamed from a file, APPENDUID returned" \
	'^append: uidvalidity=[1-9][0-9]* uid=1 set=1' '^ok: append'
hwm=$(last_hwm)
if [ -n "$hwm" ] && [ -n "$base_hwm" ] && [ $((hwm - base_hwm)) -lt 4096 ]; then
	ok "peak RSS while appending 20 MB: ${hwm} kB (+$((hwm - base_hwm)) kB)"
else
	not_ok "peak RSS while appending 20 MB stays within 4 MB of the baseline" \
		"baseline ${base_hwm} kB, after ${hwm} kB"
fi

probe --tls implicit "${TLSOPT[@]}" $H "$IMAPS_PORT" alice pass "fetch INBOX 1"
expect "FETCH BODY.PEEK[] streamed: SHA-256 equals the file's" \
	"^fetch: uid=1 bytes=$bigsize sha256=$bigsha"
hwm=$(last_hwm)
if [ -n "$hwm" ] && [ $((hwm - base_hwm)) -lt 4096 ]; then
	ok "peak RSS while fetching 20 MB: ${hwm} kB (+$((hwm - base_hwm)) kB)"
else
	not_ok "peak RSS while fetching 20 MB stays within 4 MB of the baseline" \
		"baseline ${base_hwm} kB, after ${hwm} kB"
fi

probe $H "$IMAP_PORT" alice pass "meta INBOX 1"
# Dovecot's maildir keeps the instant of INTERNALDATE, not its zone.
expect "FLAGS, INTERNALDATE and RFC822.SIZE read back" \
	'^meta: uid=1 flags=\(.*\\Seen.*\) ' '^meta: uid=1 .*\$Forwarded' \
	'^meta: uid=1 .*date="17-Jul-1996 09:44:25 \+0000"' "^meta: uid=1 .*size=$bigsize\$"

probe $H "$IMAP_PORT" alice pass "fetchslow INBOX 1"
pauses=$(sed -n 's/^fetchslow: pauses=//p' "$T/probe.out")
expect "a consumer pausing after every chunk gets the same bytes" \
	"^fetch: uid=1 bytes=$bigsize sha256=$bigsha" && diag "$pauses pauses"

probe $H "$IMAP_PORT" alice pass \
	"multiappend INBOX $T/small.eml $big $T/small.eml" "fetch INBOX 2:4"
expect "MULTIAPPEND of three messages in one command" \
	'^append: uidvalidity=[0-9]+ uid=2 set=2:4' \
	"^fetch: uid=2 bytes=[0-9]+ sha256=$smallsha" \
	"^fetch: uid=3 bytes=$bigsize sha256=$bigsha" \
	"^fetch: uid=4 bytes=[0-9]+ sha256=$smallsha"

probe --tls starttls "${TLSOPT[@]}" --compress $H "$IMAP_PORT" alice pass \
	caps "fetch INBOX 1" "append Trash $T/small.eml"
expect "COMPRESS=DEFLATE over STARTTLS: 20 MB fetched intact, APPEND works" \
	'^ready: tls=1 compressed=1' "^fetch: uid=1 bytes=$bigsize sha256=$bigsha" \
	'^ok: append' '^closed: status=OK'

probe $H "$IMAP_PORT" alice pass liststatus
expect "LIST-STATUS: every folder's counters in one command" \
	'^list-status: mailbox=INBOX messages=4 uidnext=5$' \
	'^list-status: mailbox=Trash messages=1 uidnext=2$'

# --- pipelining ----------------------------------------------------------------------

probe --window 10 --debug $H "$IMAP_PORT" alice pass "pipeline 100 INBOX"
expect "100 STATUS commands pipelined with a window of 10" \
	'^pipeline: n=100 ok=100 max_inflight=10$'
probe --window 1 $H "$IMAP_PORT" alice pass "pipeline 20 INBOX"
expect "a window of 1 keeps one command in flight" \
	'^pipeline: n=20 ok=20 max_inflight=1$'

probe $H "$IMAP_PORT" alice pass "search INBOX ALL" "store INBOX 1 +FLAGS \\Flagged" \
	"meta INBOX 1" "-store INBOX 1 +FLAGS \\Recent"
expect "UID SEARCH, UID STORE; \\Recent refused by the client" \
	'^search: uid=1$' '^search: uid=4$' '^meta: uid=1 flags=\(.*\\Flagged' \
	'^error: command "store INBOX 1 \+FLAGS \\Recent" refused'

# --- CONDSTORE / QRESYNC ------------------------------------------------------------

probe --enable qresync $H "$IMAP_PORT" bob pass caps "create Cond" \
	"multiappend Cond $T/small.eml $T/small.eml $T/small.eml" "select Cond"
expect "ENABLE QRESYNC, SELECT reports HIGHESTMODSEQ" \
	'^caps: tls=0 compressed=0 enabled=3$' \
	'^select: exists=3 uidvalidity=[0-9]+ uidnext=4 highestmodseq=[1-9]'
modseq=$(field highestmodseq '^select:')
probe --enable qresync $H "$IMAP_PORT" bob pass "store Cond 2 +FLAGS \\Flagged" \
	"changed Cond $modseq" "expunge Cond 3" "changed Cond $modseq"
expect "CHANGEDSINCE gives the flag change, VANISHED (EARLIER) the expunge" \
	'^changed: uid=2 flags=\(\\Flagged\) .* modseq=[0-9]+$' \
	'^vanished: 3:3 earlier=1$'
if [ "$(grep -c '^changed: uid=[13] ' "$T/probe.out")" -eq 0 ]; then
	ok "CHANGEDSINCE returns only what changed"
else
	not_ok "CHANGEDSINCE returns only what changed" "$(grep '^changed' "$T/probe.out")"
fi

# --- FETCH streamed into APPEND on a second connection --------------------------------

probe $H "$IMAP_PORT" bob pass "create Copied"
probe --tls implicit "${TLSOPT[@]}" $H "$IMAPS_PORT" alice pass \
	"copy INBOX 1:4 Copied bob pass" hwm
expect "FETCH streamed into APPEND with flow control" \
	'^copy: uid=1 -> uid=1 size=' '^copy: uid=3 -> uid=3 size=' '^copy: done n=4'
hwm=$(last_hwm)
diag "copy: $(grep '^copy: done' "$T/probe.out"), peak ${hwm} kB"
if [ -n "$hwm" ] && [ $((hwm - base_hwm)) -lt 6144 ]; then
	ok "peak RSS while copying 2 x 20 MB: ${hwm} kB (+$((hwm - base_hwm)) kB)"
else
	not_ok "peak RSS while copying stays within 6 MB of the baseline" \
		"baseline ${base_hwm} kB, after ${hwm} kB"
fi
probe $H "$IMAP_PORT" bob pass "fetch Copied 1:4" "meta Copied 1"
expect "the copies are byte-identical and keep flags and INTERNALDATE" \
	"^fetch: uid=1 bytes=$bigsize sha256=$bigsha" \
	"^fetch: uid=2 bytes=[0-9]+ sha256=$smallsha" \
	"^fetch: uid=3 bytes=$bigsize sha256=$bigsha" \
	'^meta: uid=1 flags=\(.*\\Seen.*\) date="17-Jul-1996 09:44:25 \+0000"'

# A big message goes with a synchronizing literal: a server that refuses
# the APPEND (here: no such folder) answers NO instead of "+", and the
# 20 MB are never sent.
probe $H "$IMAP_PORT" alice pass "copy INBOX 1 Missing bob pass"
sleep 0.3
bob_in=$(grep 'imap(bob).*Disconnected' "$DOVECOT_LOG" | tail -n 1 |
	sed -n 's/.* in=\([0-9]*\) .*/\1/p')
if grep -qE '^error: status=NO class=permanent code=TRYCREATE ' "$T/probe.out" &&
	[ -n "$bob_in" ] && [ "$bob_in" -lt 100000 ]; then
	ok "APPEND refused before the literal: NO [TRYCREATE], ${bob_in} bytes sent"
else
	not_ok "APPEND refused before the literal: NO [TRYCREATE], nothing big sent" \
		"bytes received by the server: '$bob_in'" "$(tail -n 3 "$T/probe.out")"
fi

# --- a scripted fake server ---------------------------------------------------------

cat >"$T/fake_imap.py" <<'EOF'
# A deliberately misbehaving IMAP server; the user name picks the act.
import base64, os, socket, sys, threading, time

portfile, mode = sys.argv[1], sys.argv[2]
caps = b"IMAP4rev1 STARTTLS AUTH=PLAIN AUTH=XOAUTH2 ID"
if mode != "nosaslir":
    caps += b" SASL-IR"

def session(conn):
    f = conn.makefile("rb")
    send = conn.sendall
    user = b""
    send(b"* OK [CAPABILITY " + caps + b"] fake server ready\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        parts = line.rstrip(b"\r\n").split(b" ")
        tag, cmd = parts[0], (parts[1].upper() if len(parts) > 1 else b"")
        if cmd == b"STARTTLS":
            # the injection: a response smuggled behind the OK
            send(tag + b" OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1] injected\r\n")
            continue
        if cmd == b"AUTHENTICATE":
            mech = parts[2].upper()
            if len(parts) > 3:
                ir = parts[3]
            else:
                send(b"+ \r\n")
                ir = f.readline().rstrip(b"\r\n")
            raw = base64.b64decode(ir)
            if mech == b"PLAIN":
                _, user, pw = raw.split(b"\0")
                ok = pw == b"pass"
            else:
                user = raw.split(b"\x01")[0][5:]
                ok = raw == b"user=" + user + b"\x01auth=Bearer tok123\x01\x01"
                if not ok:
                    send(b"+ " + base64.b64encode(b'{"status":"401","schemes":"Bearer"}') + b"\r\n")
                    if f.readline() != b"\r\n":
                        send(tag + b" BAD expected an empty response\r\n")
                        continue
            if ok:
                send(tag + b" OK [CAPABILITY IMAP4rev1 LITERAL+] logged in\r\n")
            else:
                send(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials\r\n")
            continue
        if cmd == b"ID":
            send(b"* ID NIL\r\n" + tag + b" OK ID done\r\n")
        elif cmd in (b"EXAMINE", b"SELECT"):
            send(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n" + tag + b" OK [READ-ONLY] done\r\n")
        elif cmd == b"UID" and user == b"midfetch":
            send(b"* 1 FETCH (UID 1 BODY[] {100000}\r\n" + b"x" * 5000)
            time.sleep(0.2)
            conn.shutdown(socket.SHUT_RDWR)
            return
        elif cmd == b"LOGOUT":
            send(b"* BYE bye\r\n" + tag + b" OK bye\r\n")
            return
        elif cmd == b"NOOP" and user == b"bye":
            send(b"* BYE [UNAVAILABLE] Server shutting down for maintenance\r\n")
            conn.shutdown(socket.SHUT_RDWR)
            return
        elif cmd == b"NOOP" and user == b"throttle":
            send(tag + b" NO Request is throttled. Suggested Backoff Time: 299609 milliseconds\r\n")
        elif cmd == b"NOOP" and user == b"unavailable":
            send(tag + b" NO [UNAVAILABLE] Server Unavailable. 15\r\n")
        elif cmd == b"NOOP" and user == b"garbage":
            send(b"* 1 FETCH (UID 1 BODY[] {12x}\r\n")
        elif cmd == b"NOOP" and user == b"badtag":
            send(b"Z99 OK not yours\r\n")
        elif cmd == b"NOOP" and user == b"hang":
            time.sleep(30)
            return
        else:
            send(tag + b" OK done\r\n")

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(16)

def serve(conn):
    try:
        session(conn)
    finally:
        conn.close()

with open(portfile + ".tmp", "w") as p:
    p.write(str(s.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

# fake MODE - start a fake server, its port in $FAKE_PORT
fake() {
	local i
	rm -f "$T/fake.port"
	spawn "fake-$1" "$LIB_PYTHON" "$T/fake_imap.py" "$T/fake.port" "$1"
	for ((i = 0; i < 100; i++)); do
		[ -s "$T/fake.port" ] && break
		sleep 0.05
	done
	FAKE_PORT=$(cat "$T/fake.port")
}

fake normal
SECONDS=0
probe $H "$FAKE_PORT" midfetch pass "fetch INBOX 1"
if [ $PROBE_RC -eq 2 ] && [ $SECONDS -lt 10 ]; then
	expect "server gone in the middle of a FETCH literal: an error, no hang" \
		'^error: status=ERROR class=temporary .*middle of a literal'
else
	not_ok "server gone in the middle of a FETCH literal: an error, no hang" \
		"exit $PROBE_RC after ${SECONDS}s" "$(tail -n 5 "$T/probe.out")"
fi
probe $H "$FAKE_PORT" bye pass noop
expect "BYE [UNAVAILABLE]: temporary failure with the code" \
	'^error: status=ERROR class=temporary code=UNAVAILABLE .*BYE'
probe $H "$FAKE_PORT" throttle pass noop
expect "Office 365 throttling text: temporary, backoff taken from the text" \
	'^error: status=NO class=temporary code=- args=- backoff=299609 '
probe $H "$FAKE_PORT" unavailable pass noop
expect "NO [UNAVAILABLE]: temporary" '^error: status=NO class=temporary code=UNAVAILABLE '
probe $H "$FAKE_PORT" garbage pass noop
expect "a malformed response: protocol error, connection dropped" \
	'^error: status=ERROR class=temporary .*(protocol error|malformed)'
probe $H "$FAKE_PORT" badtag pass noop
expect "a completion for a tag we never sent: connection dropped" \
	'^error: status=ERROR .*did not send'
probe --tls starttls --ca "$TEST_CA" $H "$FAKE_PORT" alice pass noop
expect "data injected behind the STARTTLS OK: refused, permanent" \
	'^closed: status=ERROR class=permanent .*injection'
SECONDS=0
probe --timeout 2 $H "$FAKE_PORT" hang pass noop
if [ $SECONDS -lt 10 ]; then
	expect "a silent server times out" '^error: status=ERROR class=temporary .*no progress for 2 seconds'
else
	not_ok "a silent server times out" "took ${SECONDS}s"
fi
probe --auth xoauth2 $H "$FAKE_PORT" alice tok123 noop
expect "XOAUTH2 with a token" '^ok: noop'
probe --auth xoauth2 $H "$FAKE_PORT" alice expired noop
expect "XOAUTH2 refused: auth failure with the server's JSON status" \
	'^closed: status=ERROR class=auth code=AUTHENTICATIONFAILED .*"status":"401"'
fake nosaslir
probe $H "$FAKE_PORT" alice pass noop
expect "AUTHENTICATE PLAIN without SASL-IR waits for the challenge" '^ok: noop'

done_testing
