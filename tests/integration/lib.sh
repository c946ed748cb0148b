# tests/integration/lib.sh - shared harness for the integration tests.
#
# Sourced (never run) by every tests/integration/test_*.sh.  automake's TAP
# driver runs those scripts from the build directory with $top_srcdir and
# $top_builddir exported as absolute paths; the scripts must work as root
# (CI) and as an ordinary user, and in VPATH builds with a read-only source
# tree, so nothing here writes anywhere but the private directory $T.
#
# Every server started here listens on 127.0.0.1 only, on a random free
# port, and is stopped by the EXIT trap.  No traffic leaves the machine.
#
# A test (executable, #!/bin/bash) looks like:
#   . "$top_srcdir/tests/integration/lib.sh"
#   require_cmd dovecot
#   start_dns <<EOF
#   MX example.test 10 mx.example.test
#   A  mx.example.test 127.0.0.1
#   EOF
#   check "relay starts" "$FERRY_RELAY" -c "$T/relay.conf"
#   check_output "one message" 1 sink_count
#   done_testing
# CMD in check/check_fail/check_output may be a shell function: it runs in
# the test's own shell (output redirected), so variables it sets persist,
# e.g. DOVECOT_NAME=dst check "dst starts" start_dovecot.
#
# ---------------------------------------------------------------------------
# On source
#   T               a fresh private directory (mktemp -d).  Removed on exit
#                   unless KEEP_TMP=1 (its path is then printed as "# ").
#   trap            on EXIT, INT and TERM: stop every process started with
#                   the functions below (its whole process group: TERM, then
#                   KILL after 5 s), wait for them, remove $T.
#   FERRY_RELAY, FERRY_SYNCD, FERRYCTL
#                   the built programs under $top_builddir (not checked).
#   TEST_DATA       $top_srcdir/tests/integration/data (read-only fixtures).
#   LIB_PYTHON      the python3 the helpers use (/usr/bin/python3 preferred).
#
# TAP
#   plan N                  print "1..N" now.
#   ok DESC                 print "ok N - DESC".
#   not_ok DESC [LINE...]   print "not ok N - DESC" and each LINE as "# LINE".
#   diag LINE...            print each LINE as "# LINE" (to stdout).
#   check DESC CMD [ARG...] run CMD with stdout+stderr saved to
#                   $T/log/check.N.log; ok when it exits 0, else not ok with
#                   the exit code and the last 15 lines of its output.
#                   $CHECK_LOG names that log afterwards (for both results).
#   check_fail DESC CMD...  the same, ok when CMD exits non-zero.
#   check_output DESC EXPECTED CMD...
#                           ok when CMD exits 0 and its stdout, trailing
#                           newlines removed, equals EXPECTED.
#   skip DESC REASON        print "ok N - DESC # SKIP REASON".
#   skip_all REASON         print "1..0 # SKIP REASON" and exit 0.  Only for
#                   a tool that is genuinely missing.
#   require_cmd CMD...      skip_all unless every CMD is on PATH (or is an
#                   existing executable path).
#   done_testing            print "1..N" if plan was not called, complain if
#                   the plan and the count differ; exit 1 if any test
#                   failed, else 0.  Call it last.
#
# Processes and ports
#   free_port               print a port free on 127.0.0.1 for TCP and UDP
#                   (random in 20000-59999 below the kernel's ephemeral
#                   range, i.e. 20000-32767 on Linux's default, so no
#                   client socket takes it before the server binds it;
#                   bind-checked; never the same twice in one script).
#   wait_port PORT [SECS]   wait (default 10 s) until 127.0.0.1:PORT accepts
#                   TCP connections; returns 1 on timeout.
#   port_open PORT          true if 127.0.0.1:PORT accepts a TCP connection
#                   now (no waiting).
#   spawn NAME CMD [ARG...] start CMD in the background in its own session
#                   (setsid), stdout+stderr to $T/log/NAME.log, remember it
#                   for the EXIT trap; sets $SPAWN_PID.  Call it (and every
#                   start_* below) directly, not inside $( ): the process
#                   must be a child of the test shell.
#   stop_pid PID            stop one spawned process group now (TERM, wait,
#                   KILL after 5 s) and forget it.
#   started_pids            print the pids of the live spawned processes.
#   at_exit CMD             eval CMD in the EXIT trap, before the servers
#                   stop (do not replace the trap itself).  When the
#                   script exits non-zero or a test failed, the trap also
#                   prints the end of every server log to stderr.
#
# TLS
#   make_cert NAME [DIR]    create once per $T a test CA ($T/pki/ca.pem,
#                   $T/pki/ca.key; EC P-256) and export TEST_CA=$T/pki/ca.pem;
#                   then a server certificate for NAME signed by it, with
#                   subjectAltName DNS:NAME,IP:127.0.0.1 (override with
#                   CERT_SAN="DNS:a,DNS:b"), valid 30 days (CERT_DAYS):
#                   DIR/NAME.pem and DIR/NAME.key, DIR defaulting to $T/pki.
#
# DNS (dnsmasq)
#   start_dns <<EOF ... EOF  read records on stdin, one per line; blank
#                   lines and lines starting with # are ignored; fields are
#                   split like a shell would (double quotes, backslash):
#                     MX      name pref host
#                     TXT     name "string" ["string"...]   (each string may
#                             be longer than 255 bytes: it is sent as
#                             several 255-byte character-strings)
#                     A       name 1.2.3.4
#                     AAAA    name ::1
#                     CNAME   name target   (target must be a name given
#                             here too: dnsmasq only aliases local data)
#                     PTR     name target   (e.g. 1.0.0.127.in-addr.arpa)
#                     TIMEOUT name          (queries for name and every name
#                             below it are never answered)
#                     SERVFAIL name         (queries for name and every
#                             name below it get SERVFAIL at once)
#                   Every other name gets NXDOMAIN; nothing is forwarded
#                   anywhere.  Answers carry TTL $DNS_TTL (default 0, so a
#                   resolver never caches).  dnsmasq listens on
#                   127.0.0.1:$DNS_PORT (UDP and TCP); exports DNS_PORT and
#                   DNS_LOG (its query log).
#   update_dns <<EOF ... EOF  replace all records: restart dnsmasq with the
#                   new ones on the same DNS_PORT (e.g. the MX switched).
#   stop_dns                stop it.
#   start_dns_named NAME <<EOF ... EOF
#                   one more dnsmasq beside it (several resolvers that
#                   disagree, e.g. during an MX switch): the same record
#                   syntax and behaviour, instance NAME ([A-Za-z0-9_]+) in
#                   $T/dns-NAME on its own port; exports DNS_PORT_NAME and
#                   DNS_LOG_NAME.  start_dns is instance "main" (DNS_PORT
#                   = DNS_PORT_main).
#   update_dns_named NAME <<EOF ... EOF  replace NAME's records, same port.
#   stop_dns_named NAME     stop that instance.
#   dns_query NAME TYPE     print the answer data (dig +short) from our
#                   dnsmasq on $DNS_PORT (another instance:
#                   DNS_PORT=$DNS_PORT_b dns_query ...); exit non-zero
#                   when dig fails (timeout).
#   dns_status NAME TYPE [SECS]  print the response code (NOERROR,
#                   NXDOMAIN, SERVFAIL...) or TIMEOUT after SECS (default
#                   2), from $DNS_PORT too.
#
# IMAP (Dovecot)
#   start_dovecot [USER:PASS...]
#                   a private Dovecot (the installed binary, configuration,
#                   sockets, state and logs all under $T/dovecot/NAME) on
#                   127.0.0.1: IMAP and IMAPS (certificate from
#                   make_cert localhost, so TEST_CA verifies it, for the
#                   names localhost and 127.0.0.1).  Users default to
#                   alice:pass bob:pass.  Maildir storage in
#                   $T/dovecot/NAME/mail/USER.  PLAIN and LOGIN allowed
#                   without TLS.  Settings taken from the environment:
#                     DOVECOT_NAME   instance name, [A-Za-z0-9_]+, default
#                                    "main"; start several with different
#                                    names for source and destination.
#                     DOVECOT_SEP    hierarchy separator, "." (default) or "/"
#                     DOVECOT_SPECIAL_USE  "Folder=\Flag;Folder 2=\Flag..."
#                                    e.g. 'Sent=\Sent;Trash=\Trash': those
#                                    folders are created on first login and
#                                    LIST shows the special-use flag.
#                     DOVECOT_EXTRA  extra lines appended to dovecot.conf
#                     DOVECOT_QUOTA  e.g. 1M: the quota plugin (count
#                                    backend) with that storage limit per
#                                    user, GETQUOTAROOT via imap_quota
#                     DOVECOT_APPENDLIMIT  e.g. 200k: quota_max_mail_size
#                                    (needs DOVECOT_QUOTA), announced as
#                                    APPENDLIMIT=<bytes> (Dovecot 2.3 does
#                                    not announce it by itself)
#                   LMTP (when Dovecot's lmtp is installed: Debian's
#                   dovecot-lmtpd) on 127.0.0.1:$LMTP_PORT: RCPT TO:<ADDR>
#                   delivers into the INBOX of the user named ADDR (lower
#                   case), so name the users by address to deliver to them,
#                   e.g. start_dovecot alice@example.test:pass, then
#                   start_postfix NAME lmtp:inet:127.0.0.1:$LMTP_PORT_NAME.
#                   Exports IMAP_PORT, IMAPS_PORT, LMTP_PORT (empty without
#                   lmtp), DOVECOT_CONF, DOVECOT_LOG and the same with the
#                   name appended: IMAP_PORT_src, IMAPS_PORT_src,
#                   LMTP_PORT_src, DOVECOT_CONF_src, DOVECOT_LOG_src.
#   stop_dovecot [NAME]     stop that instance (default $DOVECOT_NAME or main).
#   doveadm_cmd NAME ARG... run doveadm against instance NAME's config,
#                   e.g. doveadm_cmd src mailbox list -u alice.
#   imap_cmd PORT USER PASS COMMAND...
#                   log in (LOGIN) on 127.0.0.1:PORT, send each raw IMAP
#                   COMMAND (without tag), print every response line
#                   (untagged and tagged, tags replaced by "."), LOGOUT.
#                   Exit 1 if a command got NO/BAD, 2 on connect/login
#                   failure.  IMAP_TLS=1 uses implicit TLS, verified against
#                   $TEST_CA for the name localhost.
#   imap_append PORT USER PASS FOLDER FILE [FLAGS]  APPEND FILE (LF or CRLF,
#                   sent as CRLF) with FLAGS e.g. '\Seen \Flagged'.
#   imap_create PORT USER PASS FOLDER    CREATE FOLDER.
#   imap_list   PORT USER PASS           print "FLAGS<TAB>SEP<TAB>NAME" per
#                   folder (NAME as the server spells it, mUTF-7).
#   imap_count  PORT USER PASS FOLDER    print the number of messages.
#   imap_flags  PORT USER PASS FOLDER    print "UID FLAGS..." per message.
#   imap_fetch  PORT USER PASS FOLDER UID  print the message (BODY.PEEK[])
#                   exactly as the server stores it (CRLF).
#   imap_login_ok PORT USER PASS         exit 0 if LOGIN succeeds.
#
# SMTP sink (Postfix's smtp-sink)
#   start_smtp_sink [OPTION...]  smtp-sink on 127.0.0.1:$SINK_PORT writing
#                   every received message to its own file in $SINK_DIR
#                   ($T/sink, names msg.XXXXXXXX).  OPTIONs are passed to
#                   smtp-sink before the address: -r CMD,... (answer 4xx),
#                   -f CMD,... (answer 5xx), -q/-Q (disconnect), -w SECS ...
#                   If SINK_PORT is already set (a previous start), the same
#                   port is used again.  Exports SINK_PORT, SINK_DIR,
#                   SINK_PID.
#   stop_smtp_sink          stop it (the port and the files stay).
#   sink_count              print how many messages $SINK_DIR holds.
#   sink_wait N [SECS]      wait (default 10 s) until sink_count >= N.
#   sink_files              print the message files, oldest first.
#   sink_message FILE       print the message of one dump file as received
#                   (without smtp-sink's X-* and Received: lines and its
#                   final empty line; line ends are LF, as smtp-sink writes).
#   sink_envelope FILE      print its X-Mail-Args and X-Rcpt-Args lines.
#
# MTA (a private Postfix instance)
#   start_postfix NAME TRANSPORT
#                   a Postfix (the installed binaries; config_directory,
#                   queue_directory, data_directory and its log all under
#                   $T/postfix/NAME) accepting SMTP on 127.0.0.1:PORT for
#                   the domains $POSTFIX_DOMAINS (default "example.test";
#                   every local part is accepted) and handing every message
#                   to TRANSPORT, a Postfix transport such as
#                   lmtp:inet:127.0.0.1:$LMTP_PORT_dst (virtual_transport).
#                   No local delivery, no relaying for other domains, no
#                   DNS (disable_dns_lookups, smtp_dns_support_level), no
#                   TLS; master runs in the foreground under spawn
#                   ("master -d"), so it is stopped by pid like the other
#                   servers.  Calling it again for a stopped NAME starts
#                   the same instance (same port, same queue) again, e.g.
#                   "the new MX is back".  Extra main.cf lines from
#                   $POSTFIX_EXTRA.  Exports POSTFIX_PORT, POSTFIX_DIR,
#                   POSTFIX_LOG and POSTFIX_PORT_NAME, POSTFIX_DIR_NAME,
#                   POSTFIX_LOG_NAME, POSTFIX_PID_NAME.
#   stop_postfix NAME       stop that instance (its port, queue and log
#                   stay, for a restart).
#   postfix_queue_count NAME  print how many messages its queue holds.
# ---------------------------------------------------------------------------

# --- setup ------------------------------------------------------------------

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$PWD}"
export top_srcdir top_builddir

FERRY_RELAY=$top_builddir/relay/ferry-relay
FERRY_SYNCD=$top_builddir/syncd/ferry-syncd
FERRYCTL=$top_builddir/ctl/ferryctl
TEST_DATA=$top_srcdir/tests/integration/data
export FERRY_RELAY FERRY_SYNCD FERRYCTL TEST_DATA

# The daemons and helper tools live in sbin directories a normal user's
# PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac
case ":$PATH:" in *:/sbin:*) ;; *) PATH=$PATH:/sbin ;; esac
export PATH

if [ -x /usr/bin/python3 ]; then
	LIB_PYTHON=/usr/bin/python3
else
	LIB_PYTHON=$(command -v python3 || echo python3)
fi
export LIB_PYTHON

T=$(mktemp -d "${TMPDIR:-/tmp}/mailferry-test.XXXXXX") || {
	echo "1..0 # SKIP cannot create a temporary directory"
	exit 0
}
export T
mkdir -p "$T/log"

_tap_n=0
_tap_failed=0
_tap_planned=
_lib_pids=()
_lib_at_exit=()
_lib_dns_n=0

# --- cleanup ----------------------------------------------------------------

# _lib_alive PID - true while PID exists and is not a zombie.
_lib_alive() {
	local st
	[ -r "/proc/$1/stat" ] || return 1
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# _lib_group_alive PGID - true while a live process remains in the group.
_lib_group_alive() {
	local p
	for p in $(pgrep -g "$1" 2>/dev/null); do
		_lib_alive "$p" && return 0
	done
	return 1
}

# stop_pid - stop one spawned process group: TERM, up to 5 s, then KILL.
stop_pid() {
	local pid=$1 i p keep=()
	[ -n "$pid" ] || return 0
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		_lib_alive "$pid" || _lib_group_alive "$pid" || break
		sleep 0.05
	done
	kill -KILL -- "-$pid" 2>/dev/null
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	for ((i = 0; i < 40; i++)); do
		_lib_group_alive "$pid" || break
		sleep 0.05
	done
	for p in "${_lib_pids[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	_lib_pids=("${keep[@]}")
	return 0
}

started_pids() {
	local p
	for p in "${_lib_pids[@]}"; do
		_lib_alive "$p" && echo "$p"
	done
	return 0
}

at_exit() {
	_lib_at_exit+=("$1")
}

# _lib_dump_logs - after a failure, the servers' logs help more than
# anything: put their ends on stderr (the TAP driver keeps it in the
# test's .log file, which CI prints for a failed test).
_lib_dump_logs() {
	local f
	for f in "$T"/log/*.log "$T"/dns/dnsmasq.log "$T"/dns-*/dnsmasq.log \
		"$T"/dovecot/*/dovecot.log; do
		[ -f "$f" ] || continue
		case $f in */check.*.log) continue ;; esac
		echo "===== ${f#"$T"/} (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
}

_lib_cleanup() {
	local rc=$? p c
	trap - EXIT INT TERM
	for c in "${_lib_at_exit[@]}"; do
		eval "$c"
	done
	if [ "$rc" -ne 0 ] || [ "$_tap_failed" -gt 0 ]; then
		_lib_dump_logs
	fi
	for p in "${_lib_pids[@]}"; do
		kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null
	done
	for p in "${_lib_pids[@]}"; do
		stop_pid "$p"
	done
	# A daemon built with --enable-sanitizers reports a leak or a bad
	# access in its own log, often only as it exits: that fails the test.
	for c in "$T"/log/*.log; do
		[ -f "$c" ] || continue
		case $c in */check.*.log) continue ;; esac
		if grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' "$c"; then
			echo "Bail out! sanitizer report in ${c#"$T"/}"
			grep -A 30 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:' "$c" | head -60 >&2
			rc=1
		fi
	done
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "# KEEP_TMP=1: kept $T"
	else
		rm -rf "$T"
	fi
	return $rc
}

trap '_lib_cleanup; exit $?' EXIT
trap '_lib_cleanup; exit 130' INT
trap '_lib_cleanup; exit 143' TERM

# spawn - start a background process in its own session and remember it.
spawn() {
	local name=$1
	shift
	# Not a process group leader (no job control in scripts), so setsid
	# does not fork: $! is the process itself and also its group id.
	setsid "$@" >>"$T/log/$name.log" 2>&1 </dev/null &
	SPAWN_PID=$!
	_lib_pids+=("$SPAWN_PID")
	echo "$SPAWN_PID $name" >>"$T/log/pids"
	return 0
}

# --- TAP --------------------------------------------------------------------

plan() {
	_tap_planned=$1
	echo "1..$1"
}

diag() {
	local l
	[ $# -gt 0 ] || return 0
	# Multi-line arguments: every line gets its "# ".
	printf '%s\n' "$@" | while IFS= read -r l; do
		printf '# %s\n' "$l"
	done
}

ok() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1"
}

not_ok() {
	_tap_n=$((_tap_n + 1))
	_tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	shift
	diag "$@"
}

skip() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP ${2:-}"
}

skip_all() {
	echo "1..0 # SKIP $1"
	exit 0
}

require_cmd() {
	local c
	for c in "$@"; do
		if [ -x "$c" ] || command -v "$c" >/dev/null 2>&1; then
			continue
		fi
		skip_all "$c not found (see contrib/packages.txt)"
	done
}

# _lib_tail LOG - the last lines of a log, as diagnostic lines.
_lib_tail() {
	local l
	while IFS= read -r l; do
		printf '# %s\n' "$l"
	done < <(tail -n 15 "$1")
}

check() {
	local desc=$1 rc
	shift
	CHECK_LOG=$T/log/check.$((_tap_n + 1)).log
	"$@" >"$CHECK_LOG" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "$desc"
	else
		not_ok "$desc" "command: $*" "exit code $rc, last output:"
		_lib_tail "$CHECK_LOG"
	fi
	return $rc
}

check_fail() {
	local desc=$1 rc
	shift
	CHECK_LOG=$T/log/check.$((_tap_n + 1)).log
	"$@" >"$CHECK_LOG" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		ok "$desc"
		return 0
	fi
	not_ok "$desc" "command: $*" "succeeded but should have failed, last output:"
	_lib_tail "$CHECK_LOG"
	return 1
}

check_output() {
	local desc=$1 want=$2 got rc
	shift 2
	CHECK_LOG=$T/log/check.$((_tap_n + 1)).log
	got=$("$@" 2>"$CHECK_LOG")
	rc=$?
	printf '%s\n' "$got" >>"$CHECK_LOG"
	if [ $rc -eq 0 ] && [ "$got" = "$want" ]; then
		ok "$desc"
		return 0
	fi
	not_ok "$desc" "command: $*" "exit code $rc" "expected: $want" "got: $got"
	return 1
}

done_testing() {
	if [ -z "$_tap_planned" ]; then
		echo "1..$_tap_n"
	elif [ "$_tap_planned" -ne "$_tap_n" ]; then
		diag "planned $_tap_planned tests but ran $_tap_n"
		exit 1
	fi
	[ "$_tap_failed" -eq 0 ] || {
		diag "$_tap_failed of $_tap_n tests failed"
		exit 1
	}
	exit 0
}

# --- ports ------------------------------------------------------------------

# _lib_port_free PORT - true if 127.0.0.1:PORT can be bound for TCP and UDP.
_lib_port_free() {
	"$LIB_PYTHON" - "$1" <<'EOF' 2>/dev/null
import socket, sys
port = int(sys.argv[1])
held = []
try:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        held.append(s)
        s.bind(("127.0.0.1", port))
except OSError:
    sys.exit(1)
EOF
}

# free_port runs in $( ), a subshell, so its record of handed-out ports
# would be lost: remember them through a file as well.
_lib_port_file=$T/log/ports
# A port chosen now is often bound seconds later (a configuration file is
# written first, a server restarted on it after a kill): if it lay in the
# ephemeral range, any outgoing connection in the meantime could take it
# as its local port and the server's bind would fail.  Stay below.
_lib_port_top=60000
read -r _lib_eph_low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null
if [ -n "${_lib_eph_low:-}" ] && [ "$_lib_eph_low" -gt 25000 ] &&
	[ "$_lib_eph_low" -lt "$_lib_port_top" ]; then
	_lib_port_top=$_lib_eph_low
fi
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % (_lib_port_top - 20000)))
		if grep -qx "$p" "$_lib_port_file" 2>/dev/null; then
			continue
		fi
		if _lib_port_free "$p"; then
			echo "$p" >>"$_lib_port_file"
			echo "$p"
			return 0
		fi
	done
	echo "free_port: no free port found" >&2
	return 1
}

port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {
	local port=$1 secs=${2:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "wait_port: nothing listens on 127.0.0.1:$port after ${secs}s" >&2
	return 1
}

# --- TLS --------------------------------------------------------------------

make_cert() {
	local name=$1 dir=${2:-$T/pki} pki=$T/pki
	mkdir -p "$pki" "$dir" || return 1
	if [ ! -f "$pki/ca.pem" ]; then
		openssl req -x509 -new -newkey ec \
			-pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$pki/ca.key" -out "$pki/ca.pem" -days 30 \
			-subj "/CN=mailferry test CA" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" \
			>"$T/log/openssl.log" 2>&1 || {
			cat "$T/log/openssl.log" >&2
			return 1
		}
	fi
	TEST_CA=$pki/ca.pem
	export TEST_CA
	printf '%s\n' \
		"subjectAltName=${CERT_SAN:-DNS:$name,IP:127.0.0.1}" \
		"basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature,keyEncipherment" \
		"extendedKeyUsage=serverAuth,clientAuth" >"$pki/$name.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/$name.key" -out "$pki/$name.csr" \
		-subj "/CN=$name" >>"$T/log/openssl.log" 2>&1 &&
		openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.pem" \
			-CAkey "$pki/ca.key" -set_serial "0x$(od -An -tx8 -N8 /dev/urandom | tr -d ' ')" \
			-days "${CERT_DAYS:-30}" -extfile "$pki/$name.ext" \
			-out "$dir/$name.pem" >>"$T/log/openssl.log" 2>&1 || {
		cat "$T/log/openssl.log" >&2
		return 1
	}
}

# --- DNS --------------------------------------------------------------------

# _lib_dns_conf BLACKHOLE_PORT SERVFAIL_PORT - records on stdin to
# dnsmasq.conf lines on stdout.  dnsmasq splits TXT strings longer than
# 255 bytes by itself.
_lib_dns_conf() {
	"$LIB_PYTHON" -c '
import shlex, sys
hole, fail = sys.argv[1], sys.argv[2]
def q(s):
    return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""
for n, line in enumerate(sys.stdin, 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    f = shlex.split(line)
    t = f[0].upper()
    def need(k):
        if len(f) != k:
            sys.exit("start_dns: line %d: %s wants %d fields: %s" % (n, t, k, line))
    if t == "MX":
        need(4); print("mx-host=%s,%s,%s" % (f[1], f[3], f[2]))
    elif t == "TXT":
        if len(f) < 3:
            sys.exit("start_dns: line %d: TXT wants a name and strings" % n)
        print("txt-record=%s,%s" % (f[1], ",".join(q(s) for s in f[2:])))
    elif t in ("A", "AAAA"):
        need(3); print("host-record=%s,%s" % (f[1], f[2]))
    elif t == "CNAME":
        need(3); print("cname=%s,%s" % (f[1], f[2]))
    elif t == "PTR":
        need(3); print("ptr-record=%s,%s" % (f[1], f[2]))
    elif t == "TIMEOUT":
        need(2); print("server=/%s/127.0.0.1#%s" % (f[1], hole))
    elif t == "SERVFAIL":
        need(2); print("server=/%s/127.0.0.1#%s" % (f[1], fail))
    else:
        sys.exit("start_dns: line %d: unknown record type %s" % (n, f[0]))
' "$1" "$2"
}

# _lib_blackhole PORT - bind UDP and TCP 127.0.0.1:PORT and never answer.
_lib_blackhole() {
	spawn dns-blackhole "$LIB_PYTHON" -c '
import select, socket, sys
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.1", port)); t.listen(16)
held = []
while True:
    r, _, _ = select.select([u, t] + held, [], [])
    for s in r:
        if s is u:
            u.recv(65535)
        elif s is t:
            held.append(t.accept()[0])
        elif not s.recv(65535):
            held.remove(s); s.close()
' "$1"
}

# _lib_servfail PORT - answer every UDP query on 127.0.0.1:PORT with
# SERVFAIL (same id and question, RA set); dnsmasq passes it on.
_lib_servfail() {
	spawn dns-servfail "$LIB_PYTHON" -c '
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, a = u.recvfrom(65535)
    if len(q) < 12:
        continue
    # QR, the query opcode and RD; RA; RCODE 2; no records.
    u.sendto(q[:2] + bytes([0x80 | (q[2] & 0x79), 0x82]) + q[4:6] +
             bytes(6) + q[12:], a)
' "$1"
}

# _lib_dns_name_ok NAME - an instance name is [A-Za-z0-9_]+.
_lib_dns_name_ok() {
	case $1 in
	*[!A-Za-z0-9_]* | "")
		echo "dns: bad instance name '$1'" >&2
		return 1
		;;
	esac
}

# _lib_dns_run NAME PORT - start dnsmasq instance NAME for the records on
# stdin on 127.0.0.1:PORT.  Instance "main" (start_dns) lives in $T/dns and
# is spawned as "dnsmasq"; any other in $T/dns-NAME as "dnsmasq-NAME".
# Sets _lib_dns_pid_NAME and exports DNS_PORT_NAME and DNS_LOG_NAME.
_lib_dns_run() {
	local name=$1 port=$2 d=$T/dns hole=none fail=none i log pid tag=dnsmasq
	if [ "$name" != main ]; then
		d=$T/dns-$name
		tag=dnsmasq-$name
	fi
	mkdir -p "$d"
	_lib_dns_n=$((_lib_dns_n + 1))
	cat >"$d/records.$_lib_dns_n"
	if grep -qi '^[[:space:]]*TIMEOUT[[:space:]]' "$d/records.$_lib_dns_n"; then
		if [ -z "${_lib_dns_hole:-}" ]; then
			_lib_dns_hole=$(free_port) || return 1
			_lib_blackhole "$_lib_dns_hole"
			_lib_dns_hole_pid=$SPAWN_PID
		fi
		hole=$_lib_dns_hole
	fi
	if grep -qi '^[[:space:]]*SERVFAIL[[:space:]]' "$d/records.$_lib_dns_n"; then
		if [ -z "${_lib_dns_fail:-}" ]; then
			_lib_dns_fail=$(free_port) || return 1
			_lib_servfail "$_lib_dns_fail"
		fi
		fail=$_lib_dns_fail
	fi
	{
		# Everything not configured here is answered locally (NXDOMAIN),
		# never forwarded: there is no upstream at all.
		echo "local=/#/"
		_lib_dns_conf "$hole" "$fail" <"$d/records.$_lib_dns_n" || return 1
	} >"$d/dnsmasq.conf.$_lib_dns_n" || return 1
	cp "$d/dnsmasq.conf.$_lib_dns_n" "$d/dnsmasq.conf"
	log=$d/dnsmasq.log
	# --user: as root dnsmasq would drop to nobody, who cannot write the
	# log in $T; as a normal user it changes nothing.
	spawn "$tag" dnsmasq --keep-in-foreground \
		--conf-file="$d/dnsmasq.conf" --no-resolv --no-hosts --no-poll \
		--listen-address=127.0.0.1 --bind-interfaces --port="$port" \
		--pid-file="$d/dnsmasq.pid" --user="$(id -un)" \
		--log-facility="$log" --log-queries --cache-size=0 \
		--local-ttl="${DNS_TTL:-0}" --no-negcache
	pid=$SPAWN_PID
	eval "_lib_dns_pid_$name=\$pid DNS_PORT_$name=\$port DNS_LOG_$name=\$log"
	export "DNS_PORT_$name" "DNS_LOG_$name"
	# dnsmasq binds UDP and TCP together, so a TCP connect means ready.
	for ((i = 0; i < 200; i++)); do
		if ! _lib_alive "$pid"; then
			echo "start_dns: dnsmasq $name exited:" >&2
			cat "$T/log/$tag.log" >&2
			return 1
		fi
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "start_dns: dnsmasq $name did not start" >&2
	return 1
}

start_dns_named() {
	local name=$1 v port
	_lib_dns_name_ok "$name" || return 1
	v=_lib_dns_pid_$name
	if [ -n "${!v:-}" ]; then
		echo "start_dns_named: instance $name already runs (update_dns_named)" >&2
		return 1
	fi
	port=$(free_port) || return 1
	_lib_dns_run "$name" "$port"
}

update_dns_named() {
	local name=$1 v
	_lib_dns_name_ok "$name" || return 1
	v=DNS_PORT_$name
	[ -n "${!v:-}" ] || {
		echo "update_dns_named: start_dns_named $name first" >&2
		return 1
	}
	stop_dns_named "$name"
	_lib_dns_run "$name" "${!v}"
}

stop_dns_named() {
	local v
	_lib_dns_name_ok "$1" || return 1
	v=_lib_dns_pid_$1
	[ -n "${!v:-}" ] && stop_pid "${!v}"
	eval "$v="
	return 0
}

# The single instance of the older tests is instance "main", with the
# unsuffixed names as well.
start_dns() {
	start_dns_named main || return 1
	DNS_PORT=$DNS_PORT_main
	DNS_LOG=$DNS_LOG_main
	export DNS_PORT DNS_LOG
}

update_dns() {
	[ -n "${DNS_PORT:-}" ] || {
		echo "update_dns: start_dns first" >&2
		return 1
	}
	update_dns_named main
}

stop_dns() {
	stop_dns_named main
}

dns_query() {
	dig +short +time=2 +tries=1 -p "$DNS_PORT" @127.0.0.1 "$1" "$2"
}

dns_status() {
	local out
	out=$(dig +time="${3:-2}" +tries=1 -p "$DNS_PORT" @127.0.0.1 "$1" "$2" 2>&1)
	case $out in
	*"status: "*)
		out=${out#*status: }
		echo "${out%%,*}"
		;;
	*) echo TIMEOUT ;;
	esac
}

# --- IMAP (Dovecot) -----------------------------------------------------------

# _lib_dovecot_ids - "uid gid user" for the mail processes.  As root Dovecot
# refuses to run mail processes as root, so use the system user "mail"
# (present on every Debian); as a normal user, ourselves.
_lib_dovecot_ids() {
	if [ "$(id -u)" -eq 0 ]; then
		echo "$(id -u mail) $(id -g mail) mail"
	else
		echo "$(id -u) $(id -g) $(id -un)"
	fi
}

# _lib_bytes SIZE - 200k, 1M, 123 -> bytes (Dovecot's 1024-based units)
_lib_bytes() {
	local n=${1%[kKmMgG]}
	case $1 in
	*[kK]) echo $((n * 1024)) ;;
	*[mM]) echo $((n * 1024 * 1024)) ;;
	*[gG]) echo $((n * 1024 * 1024 * 1024)) ;;
	*) echo "$1" ;;
	esac
}

start_dovecot() {
	local name=${DOVECOT_NAME:-main} sep=${DOVECOT_SEP:-.} d uid gid muser
	local port sport lport u spec folder flag i
	case $name in
	*[!A-Za-z0-9_]* | "")
		echo "start_dovecot: bad DOVECOT_NAME '$name'" >&2
		return 1
		;;
	esac
	d=$T/dovecot/$name
	if [ -e "$d" ]; then
		echo "start_dovecot: instance $name already exists" >&2
		return 1
	fi
	read -r uid gid muser < <(_lib_dovecot_ids)
	mkdir -p "$d/run" "$d/state" "$d/mail" || return 1
	# The unprivileged Dovecot processes must reach files under $T.
	if [ "$(id -u)" -eq 0 ]; then
		chmod 711 "$T" "$T/dovecot" "$d"
		chown "$uid:$gid" "$d/mail"
	fi
	[ -f "$T/pki/localhost.pem" ] || make_cert localhost || return 1
	port=$(free_port) && sport=$(free_port) || return 1
	lport=
	if [ -x /usr/lib/dovecot/lmtp ]; then
		lport=$(free_port) || return 1
	fi

	if [ $# -eq 0 ]; then
		set -- alice:pass bob:pass
	fi
	: >"$d/passwd"
	for u in "$@"; do
		printf '%s:{PLAIN}%s:%s:%s::%s\n' "${u%%:*}" "${u#*:}" \
			"$uid" "$gid" "$d/mail/${u%%:*}" >>"$d/passwd"
	done
	chmod 644 "$d/passwd"

	{
		cat <<EOF
# Private test instance "$name", written by tests/integration/lib.sh.
base_dir = $d/run
state_dir = $d/state
instance_name = mailferry-$name
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <$T/pki/localhost.pem
ssl_key = <$T/pki/localhost.key
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
# Tests try wrong passwords: no 2 s delay after each, and no growing
# per-IP penalty from anvil (its socket is made unusable).
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_plugins =
first_valid_uid = 1
first_valid_gid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $d/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $d/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $sport
    ssl = yes
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
EOF
		if [ -n "$lport" ]; then
			cat <<EOF
protocols = imap lmtp
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lport
  }
}
EOF
		fi
		cat <<EOF
namespace inbox {
  inbox = yes
  prefix =
  separator = $sep
EOF
		spec=${DOVECOT_SPECIAL_USE:-}
		while [ -n "$spec" ]; do
			i=${spec%%;*}
			if [ "$i" = "$spec" ]; then spec=; else spec=${spec#*;}; fi
			[ -n "$i" ] || continue
			folder=${i%%=*}
			flag=${i#*=}
			printf '  mailbox "%s" {\n    special_use = %s\n    auto = create\n  }\n' \
				"$folder" "$flag"
		done
		echo "}"
		if [ "$(id -u)" -ne 0 ]; then
			# Unprivileged: no user switching, no chroot.
			cat <<EOF
default_internal_user = $muser
default_internal_group = $(id -gn)
default_login_user = $muser
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
EOF
		fi
		if [ -n "${DOVECOT_QUOTA:-}" ]; then
			cat <<EOF
mail_plugins = quota
protocol imap {
  mail_plugins = quota imap_quota
}
plugin {
  quota = count:User quota
  quota_rule = *:storage=$DOVECOT_QUOTA
  quota_vsizes = yes
EOF
			[ -z "${DOVECOT_APPENDLIMIT:-}" ] ||
				echo "  quota_max_mail_size = $DOVECOT_APPENDLIMIT"
			echo "}"
			[ -z "${DOVECOT_APPENDLIMIT:-}" ] ||
				echo "imap_capability = +APPENDLIMIT=$(_lib_bytes "$DOVECOT_APPENDLIMIT")"
		fi
		[ -z "${DOVECOT_EXTRA:-}" ] || printf '%s\n' "$DOVECOT_EXTRA"
	} >"$d/dovecot.conf"

	spawn "dovecot-$name" dovecot -F -c "$d/dovecot.conf"
	eval "_lib_dovecot_pid_$name=\$SPAWN_PID"
	for ((i = 0; i < 200; i++)); do
		if ! _lib_alive "$SPAWN_PID"; then
			echo "start_dovecot: dovecot $name exited:" >&2
			tail -n 20 "$T/log/dovecot-$name.log" "$d/dovecot.log" >&2 2>/dev/null
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null &&
			(exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null &&
			{ [ -z "$lport" ] ||
				(exec 3<>"/dev/tcp/127.0.0.1/$lport") 2>/dev/null; }; then
			break
		fi
		sleep 0.05
	done
	[ $i -lt 200 ] || {
		echo "start_dovecot: dovecot $name does not listen" >&2
		return 1
	}
	IMAP_PORT=$port
	IMAPS_PORT=$sport
	LMTP_PORT=$lport
	DOVECOT_CONF=$d/dovecot.conf
	DOVECOT_LOG=$d/dovecot.log
	eval "IMAP_PORT_$name=\$port IMAPS_PORT_$name=\$sport LMTP_PORT_$name=\$lport"
	eval "DOVECOT_CONF_$name=\$DOVECOT_CONF DOVECOT_LOG_$name=\$DOVECOT_LOG"
	export IMAP_PORT IMAPS_PORT LMTP_PORT DOVECOT_CONF DOVECOT_LOG \
		"IMAP_PORT_$name" "IMAPS_PORT_$name" "LMTP_PORT_$name" \
		"DOVECOT_CONF_$name" "DOVECOT_LOG_$name"
}

stop_dovecot() {
	local name=${1:-${DOVECOT_NAME:-main}} v
	v=_lib_dovecot_pid_$name
	[ -n "${!v:-}" ] && stop_pid "${!v}"
	eval "$v="
}

doveadm_cmd() {
	local name=$1 v
	shift
	v=DOVECOT_CONF_$name
	[ -n "${!v:-}" ] || {
		echo "doveadm_cmd: no Dovecot instance $name" >&2
		return 1
	}
	doveadm -c "${!v}" "$@"
}

_lib_imap_tool() {
	"$LIB_PYTHON" "$TEST_DATA/imap_tool.py" "$@"
}

imap_cmd() {
	local port=$1 user=$2 pass=$3
	shift 3
	_lib_imap_tool "$port" "$user" "$pass" cmd "$@"
}
imap_append() { _lib_imap_tool "$1" "$2" "$3" append "${@:4}"; }
imap_create() { _lib_imap_tool "$1" "$2" "$3" create "${@:4}"; }
imap_list() { _lib_imap_tool "$1" "$2" "$3" list; }
imap_count() { _lib_imap_tool "$1" "$2" "$3" count "${@:4}"; }
imap_flags() { _lib_imap_tool "$1" "$2" "$3" flags "${@:4}"; }
imap_fetch() { _lib_imap_tool "$1" "$2" "$3" fetch "${@:4}"; }
imap_login_ok() { _lib_imap_tool "$1" "$2" "$3" login; }

# write_syncd_conf FILE SRC_PORT DST_PORT [LINE...] - ferry-syncd's configuration
# for one Dovecot pair on loopback (plain IMAP, state in $T/state, the
# accounts file $T/accounts, log to stderr at info); each LINE is one more
# line of [syncd], e.g. "parallel = 1".
write_syncd_conf() {
	local f=$1 src=$2 dst=$3 line
	shift 3
	{
		printf '[global]\nstate_dir = %s\nlog = stderr\nlog_level = info\n\n' \
			"$T/state"
		printf '[syncd]\nsource = imap://127.0.0.1:%s?tls=none\n' "$src"
		printf 'destination = imap://127.0.0.1:%s?tls=none\n' "$dst"
		printf 'accounts = %s\ntls_verify = no\n' "$T/accounts"
		for line in "$@"; do
			printf '%s\n' "$line"
		done
	} >"$f"
}

# start_hold_proxy SERVER_PORT RULE... - tests/integration/data/
# hold_proxy.py in front of 127.0.0.1:SERVER_PORT with RULEs, logging to
# $T/proxy.log; one TAP check that it listens; its port in PROXY.
start_hold_proxy() {
	local upstream=$1 i
	shift
	spawn holdproxy "$LIB_PYTHON" "$TEST_DATA/hold_proxy.py" "$T/proxy.port" \
		"$upstream" "$T/proxy.log" "$@"
	for i in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
	check "the holding proxy listens" test -s "$T/proxy.port"
	PROXY=$(cat "$T/proxy.port" 2>/dev/null)
}

# syncd_dst_files MAILDIR - messages a Dovecot destination has written so
# far (files in cur/ and new/ of every folder; Dovecot renames them in
# after the APPEND's data is on disk)
syncd_dst_files() {
	find "$1" -type f \( -path '*/cur/*' -o -path '*/new/*' \) 2>/dev/null |
		wc -l
}

# syncd_kill_at MAILDIR N RUN [DELAY] - start ferry-syncd -c $T/syncd.conf
# --once, SIGKILL its process group DELAY seconds (default 0) after
# MAILDIR holds N messages (Dovecot commits a MULTIAPPEND's messages
# together, so a delay lands the kill inside the next batch rather than
# just after one); KILLED_AT is the count seen then, "" if the pass ended
# (or 30 s passed) before.  KILL_AT_HOOK, when set, is called with the
# pid just before the kill.  Returns 0 when it killed.
syncd_kill_at() {
	local dm=$1 n=$2 run=$3 delay=${4:-0} i pid
	spawn "syncd-$run" "$FERRY_SYNCD" -c "$T/syncd.conf" --once
	pid=$SPAWN_PID
	KILLED_AT=
	for ((i = 0; i < 3000; i++)); do
		if [ "$(syncd_dst_files "$dm")" -ge "$n" ]; then
			[ "$delay" = 0 ] || sleep "$delay"
			[ -z "${KILL_AT_HOOK:-}" ] || "$KILL_AT_HOOK" "$pid"
			_lib_alive "$pid" || break
			kill -KILL -- "-$pid" 2>/dev/null
			KILLED_AT=$(syncd_dst_files "$dm")
			break
		fi
		_lib_alive "$pid" || break
		sleep 0.01
	done
	wait "$pid" 2>/dev/null
	stop_pid "$pid"
	[ -n "$KILLED_AT" ]
}

# --- SMTP sink (smtp-sink) ---------------------------------------------------

start_smtp_sink() {
	local name=${SINK_NAME:-main} v port dir i user=()
	case $name in
	*[!A-Za-z0-9_]* | "")
		echo "start_smtp_sink: bad SINK_NAME '$name'" >&2
		return 1
		;;
	esac
	v=_lib_sink_port_$name
	port=${!v:-}
	if [ -z "$port" ]; then
		port=$(free_port) || return 1
		eval "$v=\$port"
	fi
	dir=$T/sink
	[ "$name" = main ] || dir=$T/sink-$name
	mkdir -p "$dir" || return 1
	# smtp-sink insists on dropping root privileges to a named user; stay
	# root so it can write into $T.
	[ "$(id -u)" -ne 0 ] || user=(-u root)
	spawn "smtp-sink-$name" smtp-sink "${user[@]}" -d "$dir/msg." "$@" \
		"127.0.0.1:$port" 100
	eval "_lib_sink_pid_$name=\$SPAWN_PID"
	for ((i = 0; i < 200; i++)); do
		if ! _lib_alive "$SPAWN_PID"; then
			echo "start_smtp_sink: smtp-sink exited:" >&2
			tail -n 20 "$T/log/smtp-sink-$name.log" >&2
			return 1
		fi
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.05
	done
	[ $i -lt 200 ] || {
		echo "start_smtp_sink: smtp-sink does not listen" >&2
		return 1
	}
	SINK_PORT=$port
	SINK_DIR=$dir
	SINK_PID=$SPAWN_PID
	eval "SINK_PORT_$name=\$port SINK_DIR_$name=\$dir"
	export SINK_PORT SINK_DIR SINK_PID "SINK_PORT_$name" "SINK_DIR_$name"
}

stop_smtp_sink() {
	local name=${1:-${SINK_NAME:-main}} v
	v=_lib_sink_pid_$name
	[ -n "${!v:-}" ] && stop_pid "${!v}"
	eval "$v="
	return 0
}

sink_files() {
	# msg.XXXXXXXX names are random: order by modification time.
	ls -1tr "$SINK_DIR" 2>/dev/null | sed -n "s|^msg\\.|$SINK_DIR/msg.|p"
}

sink_count() {
	# smtp-sink creates a message's file at DATA and writes it at the
	# final dot: an empty file is a transaction still under way.
	local f n=0
	for f in $(sink_files); do
		[ -s "$f" ] && n=$((n + 1))
	done
	echo "$n"
}

sink_wait() {
	local want=$1 secs=${2:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		[ "$(sink_count)" -ge "$want" ] && return 0
		sleep 0.05
	done
	echo "sink_wait: $(sink_count) messages in $SINK_DIR after ${secs}s, wanted $want" >&2
	return 1
}

sink_message() {
	# Skip smtp-sink's X-* records and its three-line Received: header,
	# then print everything but the final empty line.
	awk 'st == 2 { if (have) print prev; prev = $0; have = 1; next }
	     st == 0 && /^Received: / { st = 1; skip = 2; next }
	     st == 1 && skip > 0 { skip--; if (skip == 0) st = 2; next }' "$1"
}

sink_envelope() {
	awk '/^Received: / { exit } /^X-(Mail|Rcpt)-Args: / { print }' "$1"
}

# --- Postfix ------------------------------------------------------------------

start_postfix() {
	local name=$1 transport=$2 d port i pid
	case $name in
	*[!A-Za-z0-9_]* | "")
		echo "start_postfix: bad NAME '$name'" >&2
		return 1
		;;
	esac
	d=$T/postfix/$name
	pid=_lib_postfix_pid_$name
	if [ -n "${!pid:-}" ] && _lib_alive "${!pid}"; then
		echo "start_postfix: instance $name is running" >&2
		return 1
	fi
	if [ ! -f "$d/conf/main.cf" ]; then
		[ -n "$transport" ] || {
			echo "start_postfix: NAME TRANSPORT" >&2
			return 1
		}
		port=$(free_port) || return 1
		mkdir -p "$d/conf" "$d/queue" "$d/data" || return 1
		# Postfix's own processes (user postfix) must reach the
		# queue under $T; its files stay 0700 inside.
		chmod 755 "$T" "$T/postfix" "$d" 2>/dev/null
		cat >"$d/conf/main.cf" <<EOF
# Private test instance "$name", written by tests/integration/lib.sh.
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
command_directory = $(postconf -dh command_directory)
daemon_directory = $(postconf -dh daemon_directory)
meta_directory = $(postconf -dh meta_directory)
shlib_directory = $(postconf -dh shlib_directory)
mail_owner = $(postconf -dh mail_owner)
setgid_group = $(postconf -dh setgid_group)
myhostname = $name.mta.test
mydomain = mta.test
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
relayhost =
local_transport = error:5.1.1 no local delivery
alias_maps =
alias_database =
virtual_mailbox_domains = ${POSTFIX_DOMAINS:-example.test}
virtual_mailbox_maps = static:mailbox
virtual_alias_maps =
virtual_transport = $transport
disable_dns_lookups = yes
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtputf8_enable = no
biff = no
# Retry soon: a test waits for the queue to drain.
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
maillog_file = $d/maillog
maillog_file_prefixes = $T
EOF
		[ -z "${POSTFIX_EXTRA:-}" ] ||
			printf '%s\n' "$POSTFIX_EXTRA" >>"$d/conf/main.cf"
		cat >"$d/conf/master.cf" <<EOF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
		echo "$port" >"$d/port"
		# Creates the queue's subdirectories with their owners.
		postfix -c "$d/conf" set-permissions >>"$T/log/postfix-$name.log" 2>&1
		postfix -c "$d/conf" check >>"$T/log/postfix-$name.log" 2>&1 || {
			echo "start_postfix: postfix check failed:" >&2
			tail -n 20 "$T/log/postfix-$name.log" >&2
			return 1
		}
	fi
	port=$(cat "$d/port")
	# lift what stop_postfix_idle set: deferred mail goes out again
	if grep -q '^defer_transports' "$d/conf/main.cf"; then
		postconf -c "$d/conf" -X defer_transports || return 1
	fi
	rm -f "$d/queue/pid/master.pid"
	spawn "postfix-$name" env MAIL_CONFIG="$d/conf" \
		"$(postconf -dh daemon_directory)/master" -c "$d/conf" -d
	eval "$pid=\$SPAWN_PID"
	for ((i = 0; i < 200; i++)); do
		if ! _lib_alive "$SPAWN_PID"; then
			echo "start_postfix: postfix $name exited:" >&2
			tail -n 20 "$T/log/postfix-$name.log" "$d/maillog" >&2 2>/dev/null
			return 1
		fi
		port_open "$port" && break
		sleep 0.05
	done
	[ $i -lt 200 ] || {
		echo "start_postfix: postfix $name does not listen" >&2
		return 1
	}
	POSTFIX_PORT=$port
	POSTFIX_DIR=$d
	POSTFIX_LOG=$d/maillog
	eval "POSTFIX_PORT_$name=\$port POSTFIX_DIR_$name=\$d"
	eval "POSTFIX_LOG_$name=\$POSTFIX_LOG POSTFIX_PID_$name=\$SPAWN_PID"
	export POSTFIX_PORT POSTFIX_DIR POSTFIX_LOG "POSTFIX_PORT_$name" \
		"POSTFIX_DIR_$name" "POSTFIX_LOG_$name" "POSTFIX_PID_$name"
}

stop_postfix() {
	local v=_lib_postfix_pid_$1 i
	[ -n "${!v:-}" ] && stop_pid "${!v}"
	eval "$v="
	# Nothing may linger on the port: a restart binds it again.
	for ((i = 0; i < 100; i++)); do
		port_open "$(cat "$T/postfix/$1/port" 2>/dev/null)" || return 0
		sleep 0.05
	done
	return 0
}

# exits_cleanly PID - SIGTERM to PID (spawned by this shell), which must
# exit within 15 s with status 0; prints the status
exits_cleanly() {
	local i rc
	kill -TERM "$1" || return 1
	for ((i = 0; i < 150; i++)); do
		_lib_alive "$1" || break
		sleep 0.1
	done
	_lib_alive "$1" && return 1
	wait "$1"
	rc=$?
	echo "exit status $rc"
	[ "$rc" -eq 0 ]
}

# stop_postfix_idle NAME - stop instance NAME between two deliveries.
# A master stopped while its LMTP client waits for the final answer
# leaves a message the mailbox already holds in its queue, and delivers
# it again after the restart (Postfix delivers at least once).  So the
# instance's mailbox transport is deferred first (a reload lets a
# delivery in progress finish, the queue manager starts no new one) and
# the active queue is let empty; start_postfix lifts the deferral.
stop_postfix_idle() {
	local d=$T/postfix/$1 v=_lib_postfix_pid_$1 tr i
	tr=$(postconf -c "$d/conf" -h virtual_transport) || return 1
	postconf -c "$d/conf" -e "defer_transports = ${tr%%:*}" || return 1
	[ -n "${!v:-}" ] && kill -HUP "${!v}" 2>/dev/null
	sleep 0.5
	for ((i = 0; i < 200; i++)); do
		[ -z "$(find "$d/queue/active" -type f 2>/dev/null)" ] && break
		sleep 0.05
	done
	stop_postfix "$1"
}

postfix_queue_count() {
	find "$T/postfix/$1/queue/incoming" "$T/postfix/$1/queue/active" \
		"$T/postfix/$1/queue/deferred" "$T/postfix/$1/queue/maildrop" \
		-type f 2>/dev/null | wc -l
}

# Cyrus and Courier as private servers (start_cyrus, start_courier).
. "$top_srcdir/tests/integration/lib_servers.sh"
