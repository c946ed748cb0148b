#!/bin/bash
# bench/relay.sh - ferry-relay beside Postfix as a relay, on loopback.
#
# usage: bench/relay.sh [FERRY_RELAY]
#        (default: relay/ferry-relay under the current directory)
#
# In one run, for each message size (4 KB, 100 KB) and each number of
# concurrent sessions (1, 50):
#     smtp-source -> X -> smtp-sink
# for X = ferry-relay, X = a private Postfix instance configured as a
# relay to the same sink, and X = nothing (smtp-source -> smtp-sink
# directly: the ceiling of this machine and of the tools).  Both relays
# keep their normal durability: each fsyncs a message before its 250.
# Then ferry-relay's memory with 1,000 idle SMTP connections open.
#
# The ferry-relay rows run with [checks] spf = off, dkim = off.  Beside
# each one, "ferry+checks" runs the same sizes and sessions with spf =
# tag, dkim = tag against a private dnsmasq on 127.0.0.1 that serves the
# SPF record and the DKIM key of the sending domain bench.example (TTL
# 3600 s, so the relay's resolver cache answers after the first look-up,
# as it would in production).  Its messages are signed once, before the
# run, by tests/integration/dkim_tool (rsa-sha256, 2048-bit key) and sent
# with smtp-source -F; -N gives each one its own recipient, so none is a
# duplicate of another and dedupe stays on.  A note follows the row when
# fewer than N were logged with spf=pass and dkim=pass (then the checks
# did not measure what they should).  A summary at the end lists both.
# As root, "postfix+checks" is its peer: a private Postfix with the
# OpenDKIM milter (Debian opendkim, verifying) and policyd-spf (Debian
# postfix-policyd-spf-python) asked at RCPT, against the same records
# (pf_checks_setup), sent the same signed messages (a tenth as many: it
# is that much slower); its ratio row is ferry+checks / postfix+checks.
#
# Printed per row: accepted msgs/s (N / smtp-source's wall time),
# delivered msgs/s (N / the time until the sink has all N), CPU seconds of
# X (utime + stime from /proc; Postfix: the master, its live children and
# the children it reaped), peak RSS of X (VmHWM; Postfix: the sum of its
# processes' peaks), and the ratio ferry-relay / Postfix.
#
# Environment:
#   BENCH_DIR    where the spools and queues live (default /var/tmp): put
#                it on the disk you care about, NOT on tmpfs (fsync would
#                cost nothing there)
#   BENCH_SCALE  multiply the message counts (default 1; 0.2 for a
#                quick look)
#   BENCH_POSTFIX=0  skip Postfix (it needs root and the Debian postfix
#                package's "postfix" user and "postdrop" group)
#   BENCH_TRACE=DIR  trace every ferry-relay, ferry+checks and Postfix run
#                with strace -f (all its processes and threads), keep the
#                traces in DIR and print a line per run below its row:
#                system calls, fsync/fdatasync, file and socket reads and
#                writes per message (bench/strace_summary.py).  strace
#                slows every traced row down: read the counts, not the
#                rates, of such a run
#   BENCH_PERF=DIR  profile every ferry-relay and ferry+checks run with
#                "perf record -g" (perf.data files in DIR) and print the
#                ten hottest functions below its row
#   BENCH_BASE=FERRY_RELAY  another ferry-relay binary (an older build,
#                say) run right after ferry-relay in every row as
#                "ferry-base", with a ratio row ferry-relay / ferry-base:
#                before and after under the same load
#   BENCH_KEEP=1 keep the spools, queues, logs and configurations (the
#                directory is named on stderr at the end)
#   BENCH_CHECKS=0  skip the ferry+checks and postfix+checks rows (they
#                need dnsmasq, openssl and dkim_tool: BENCH_DKIM_TOOL,
#                default tests/integration/dkim_tool beside the relay's
#                directory, built by "make")
#
# Everything listens on 127.0.0.1 only; every process started here is
# stopped and every file removed on exit.  Each run has a time cap, so the
# whole script ends in about five minutes at most.  Not part of make check.
set -u

RELAY=${1:-relay/ferry-relay}
SCALE=${BENCH_SCALE:-1}
RUN_CAP=60		# seconds: one smtp-source run, then the delivery wait
PY=$(command -v python3) || {
	echo "bench: python3 is required" >&2
	exit 1
}
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin ;; esac

die() {
	echo "bench: $*" >&2
	exit 1
}

[ -x "$RELAY" ] || die "$RELAY not found (build first, or give its path)"
RELAY=$(cd "$(dirname "$RELAY")" && pwd)/$(basename "$RELAY")
for c in smtp-source smtp-sink; do
	command -v "$c" >/dev/null || die "$c missing (Debian package postfix)"
done

WITH_POSTFIX=${BENCH_POSTFIX:-1}
if [ "$WITH_POSTFIX" = 1 ]; then
	if [ "$(id -u)" -ne 0 ] || ! command -v postfix >/dev/null ||
		! id postfix >/dev/null 2>&1 || ! getent group postdrop >/dev/null; then
		echo "bench: Postfix rows skipped (need root, postfix, user postfix, group postdrop)" >&2
		WITH_POSTFIX=0
	fi
fi

B=$(mktemp -d "${BENCH_DIR:-/var/tmp}/mailferry-bench.XXXXXX") || die "mktemp failed"
# Postfix's unprivileged processes must reach their queue under $B.
chmod 755 "$B"
if [ "$(stat -f -c %T "$B")" = tmpfs ]; then
	echo "bench: WARNING: $B is on tmpfs: fsync costs nothing there" >&2
fi

PIDS=()
PF_ETC=
cleanup() {
	local p
	[ -n "$PF_ETC" ] && pf_stop
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: kept $B" >&2
	else
		rm -rf "$B"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_tcp() {
	local i
	for ((i = 0; i < 200; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

now() {
	date +%s.%N
}

now_ms() {
	local t
	t=$(date +%s%N)
	echo $((t / 1000000))
}

# --- the monitor: CPU and peak RSS of a process and its children -------------

# A python process samples /proc every 100 ms from "start" until it is
# sent SIGTERM, then prints "CPU_SECONDS PEAK_RSS_KB".  CPU: the root's
# utime+stime+cutime+cstime (cutime: children it reaped, e.g. Postfix's
# smtpd processes that exited) plus, for children alive at the end, their
# utime+stime; minus the same at the start.  RSS: every process's VmHWM,
# its maximum over the samples, summed over all processes seen.
cat >"$B/monitor.py" <<'EOF'
import os, signal, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
root, ready = int(sys.argv[1]), sys.argv[2]
tck = os.sysconf("SC_CLK_TCK")
def stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): ppid=4, utime=14 ... cstime=17
    return int(fields[1]), [int(x) for x in fields[11:15]]
def hwm(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0
def tree():
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(int(d))
            if st and (int(d) == root or st[0] == root):
                procs[int(d)] = st[1]
    return procs
def cpu(procs, start_children):
    total = 0
    for pid, t in procs.items():
        if pid == root:
            total += sum(t)
        else:
            total += t[0] + t[1] - start_children.get(pid, 0)
    return total
first = tree()
start_children = {p: t[0] + t[1] for p, t in first.items() if p != root}
start_cpu = sum(first.get(root, [0, 0, 0, 0]))
peaks = {}
last = first
open(ready, "w").close()
while True:
    procs = tree()
    if procs:
        last = procs
    for p in procs:
        peaks[p] = max(peaks.get(p, 0), hwm(p))
    if stop:
        break
    time.sleep(0.1)
used = (cpu(last, start_children) - start_cpu) / tck
print("%.2f %d" % (used, sum(peaks.values())))
EOF

MON_PID=
mon_start() {
	local i
	rm -f "$B/monitor.ready"
	"$PY" "$B/monitor.py" "$1" "$B/monitor.ready" >"$B/monitor.out" &
	MON_PID=$!
	for ((i = 0; i < 200; i++)); do
		[ -e "$B/monitor.ready" ] && return 0
		sleep 0.02
	done
	die "the CPU/RSS monitor does not start"
}
# mon_stop - sets MON to "CPU RSS"; not in $( ): the monitor is our child
mon_stop() {
	kill -TERM "$MON_PID" 2>/dev/null
	wait "$MON_PID" 2>/dev/null
	MON=$(cat "$B/monitor.out")
}

# --- the sink ---------------------------------------------------------------

SINK_PORT=$(free_port)
sink_user=()
[ "$(id -u)" -ne 0 ] || sink_user=(-u root)
# -c: a running count of delivered messages on stdout ("... mesg=N\r").
smtp-sink "${sink_user[@]}" -c "127.0.0.1:$SINK_PORT" 1024 >"$B/sink.out" 2>&1 &
PIDS+=($!)
wait_tcp "$SINK_PORT" || die "smtp-sink does not start"

sink_count() {
	tail -c 300 "$B/sink.out" | tr '\r' '\n' | grep -o 'mesg=[0-9]*' |
		tail -n 1 | cut -d= -f2 | grep . || echo 0
}

# --- ferry-relay --------------------------------------------------------------

RELAY_PORT=$(free_port)
RELAY_PID=
BASE=${BENCH_BASE:-}
if [ -n "$BASE" ]; then
	[ -x "$BASE" ] || die "BENCH_BASE: $BASE not found"
	BASE=$(cd "$(dirname "$BASE")" && pwd)/$(basename "$BASE")
fi
RUN_RELAY=$RELAY
# relay_start NAME [checks]
relay_start() {
	local st=$B/relay-$1 checks="spf = off
dkim = off"
	[ "${2:-}" = checks ] && checks="spf = tag
dkim = tag
dns = 127.0.0.1:$DNS_PORT
dns_timeout = 5s"
	mkdir -p "$st"
	cat >"$B/relay.conf" <<EOF
[global]
state_dir = $st
log = stderr
log_level = info
[relay]
listen = 127.0.0.1:$RELAY_PORT
hostname = ferry-bench.localdomain
domains = example.com
max_connections = 4000
max_connections_per_ip = 4000
[forward]
upstream = 127.0.0.1:$SINK_PORT
tls = none
; Postfix's default_destination_concurrency_limit is 20 too.
concurrency = 20
[checks]
$checks
[control]
http =
EOF
	"$RUN_RELAY" -d -c "$B/relay.conf" >>"$B/relay.log" 2>&1 &
	RELAY_PID=$!
	PIDS+=("$RELAY_PID")
	wait_tcp "$RELAY_PORT" || {
		tail -n 20 "$B/relay.log" >&2
		die "ferry-relay does not start"
	}
}
relay_stop() {
	kill -TERM "$RELAY_PID" 2>/dev/null
	wait "$RELAY_PID" 2>/dev/null
	RELAY_PID=
}

# --- Postfix --------------------------------------------------------------------

PF_PORT=$(free_port)
pf_cmd() {
	# postfix(1) reports to stderr only on a terminal, syslog otherwise.
	script -qec "postfix -c $PF_ETC $*" /dev/null >>"$B/postfix.log" 2>&1
}
# pf_start NAME [checks] - with checks: the OpenDKIM milter and
# policyd-spf (pf_checks_setup) on every message
pf_start() {
	local d=$B/postfix-$1 restr="permit_mynetworks, reject_unauth_destination"
	mkdir -p "$d/etc" "$d/queue" "$d/data"
	chown postfix "$d/data"
	PF_ETC=$d/etc
	cat >"$d/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydomain = localdomain
myorigin = \$myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains = example.com
relayhost = [127.0.0.1]:$SINK_PORT
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = $restr
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
biff = no
maillog_file = $d/maillog
maillog_file_prefixes = $d
EOF
	[ "${2:-}" = checks ] && cat >>"$d/etc/main.cf" <<EOF
smtpd_milters = inet:127.0.0.1:$MILTER_PORT
non_smtpd_milters =
milter_default_action = tempfail
smtpd_recipient_restrictions = check_policy_service unix:private/policyd-spf, $restr
policyd-spf_time_limit = 3600
EOF
	# Every service chroot "n": the instance lives in a temporary dir.
	cat >"$d/etc/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
	[ "${2:-}" = checks ] &&
		echo "policyd-spf unix - n n - 0 spawn user=nobody argv=$B/policyd-spf.sh" \
			>>"$d/etc/master.cf"
	pf_cmd start || {
		tail -n 20 "$B/postfix.log" "$d/maillog" >&2 2>/dev/null
		die "Postfix does not start"
	}
	wait_tcp "$PF_PORT" || die "Postfix does not listen"
	PF_PID=$(tr -d ' ' <"$d/queue/pid/master.pid")
}
pf_stop() {
	local i
	pf_cmd stop
	for ((i = 0; i < 100; i++)); do
		kill -0 "$PF_PID" 2>/dev/null || break
		sleep 0.1
	done
	PF_ETC=
}

# --- strace (BENCH_TRACE) ---------------------------------------------------------

TRACE_DIR=${BENCH_TRACE:-}
BENCH_SRC=$(cd "$(dirname "$0")" && pwd)
TRACE_PID=
TRACE_OUT=
if [ -n "$TRACE_DIR" ]; then
	command -v strace >/dev/null || die "BENCH_TRACE: strace missing"
	mkdir -p "$TRACE_DIR" || die "BENCH_TRACE: cannot create $TRACE_DIR"
fi
# trace_start NAME PID SESSIONS - strace PID and its children (Postfix:
# the master and the daemons it has already started; -f follows the rest)
trace_start() {
	local p args=() i
	[ -n "$TRACE_DIR" ] && [ "$2" != - ] || return 0
	for p in "$2" $(pgrep -P "$2"); do
		args+=(-p "$p")
	done
	TRACE_OUT=$TRACE_DIR/$1-$SIZE_NAME-$3.strace
	TRACE_OUT=${TRACE_OUT// /_}
	strace -f -C -y -qq -o "$TRACE_OUT" "${args[@]}" 2>/dev/null &
	TRACE_PID=$!
	# strace attaches before it writes its first line
	for ((i = 0; i < 100; i++)); do
		[ -s "$TRACE_OUT" ] && break
		sleep 0.05
	done
}
PERF_DIR=${BENCH_PERF:-}
PERF_PID=
PERF_OUT=
if [ -n "$PERF_DIR" ]; then
	command -v perf >/dev/null || die "BENCH_PERF: perf missing (Debian linux-perf)"
	mkdir -p "$PERF_DIR" || die "BENCH_PERF: cannot create $PERF_DIR"
fi
perf_start() {
	[ -n "$PERF_DIR" ] && [ "$2" != - ] || return 0
	case $1 in ferry*) ;; *) return 0 ;; esac
	PERF_OUT=$PERF_DIR/$1-$SIZE_NAME-$3.data
	PERF_OUT=${PERF_OUT//+/_}
	perf record -q -g -F 999 -p "$2" -o "$PERF_OUT" >/dev/null 2>&1 &
	PERF_PID=$!
	sleep 0.3
}
perf_stop() {
	[ -n "$PERF_PID" ] || return 0
	kill -INT "$PERF_PID" 2>/dev/null
	wait "$PERF_PID" 2>/dev/null
	PERF_PID=
}
trace_stop() {
	[ -n "$TRACE_PID" ] || return 0
	kill -INT "$TRACE_PID" 2>/dev/null
	wait "$TRACE_PID" 2>/dev/null
	TRACE_PID=
}

# --- one measurement ------------------------------------------------------------

# run_one NAME PORT PID SIZE SESSIONS N [SMTP-SOURCE-OPTION...] - prints
# one table row and sets ACC DLV CPU RSS for the ratio line; options
# given replace "-l SIZE" (the message smtp-source makes up).
run_one() {
	local name=$1 port=$2 pid=$3 size=$4 sess=$5 n=$6
	local base t0 t1 t2 got rc deadline opts
	shift 6
	opts=("$@")
	[ ${#opts[@]} -gt 0 ] || opts=(-l "$size")
	base=$(sink_count)
	[ "$pid" = - ] || mon_start "$pid"
	trace_start "$name" "$pid" "$sess"
	perf_start "$name" "$pid" "$sess"
	t0=$(now)
	timeout "$RUN_CAP" smtp-source -s "$sess" -m "$n" "${opts[@]}" \
		-f sender@bench.example -t rcpt@example.com "127.0.0.1:$port" \
		>>"$B/source.log" 2>&1
	rc=$?
	t1=$(now)
	deadline=$(($(now_ms) + RUN_CAP * 1000))
	while :; do
		got=$(($(sink_count) - base))
		[ "$got" -ge "$n" ] && break
		[ "$(now_ms)" -lt "$deadline" ] || break
		sleep 0.01
	done
	t2=$(now)
	MON="- -"
	[ "$pid" = - ] || mon_stop
	trace_stop
	perf_stop
	read -r ACC DLV CPU RSS < <("$PY" -c "
n, got = $n, $got
acc = n / ($t1 - $t0)
dlv = got / ($t2 - $t0)
cpu, rss = '$MON'.split()
print('%.0f %.0f %s %s' % (acc, dlv, cpu, rss))")
	local note=
	[ "$rc" -eq 0 ] || note=" (smtp-source exit $rc)"
	[ "$got" -ge "$n" ] || note="$note (only $got/$n delivered)"
	printf '%-6s %5s %-14s %6s %11s %12s %8s %10s%s\n' "$SIZE_NAME" "$sess" \
		"$name" "$n" "$ACC" "$DLV" "$CPU" \
		"$([ "$RSS" = - ] && echo - || echo "$((RSS / 1024)) MB")" "$note"
	if [ -n "$TRACE_OUT" ]; then
		echo "       trace: $("$PY" "$BENCH_SRC/strace_summary.py" "$TRACE_OUT" "$n")"
		TRACE_OUT=
	fi
	if [ -n "$PERF_OUT" ]; then
		perf report -i "$PERF_OUT" --stdio --no-children --sort symbol \
			-g none 2>/dev/null | grep -E '^ +[0-9]' | head -n 10 |
			sed 's/^/       perf: /'
		PERF_OUT=
	fi
}

ratio() {
	"$PY" -c "
import sys
def r(a, b):
    try:
        v = float(a) / float(b)
    except (ValueError, ZeroDivisionError):
        return '-'
    return ('%.2fx' if v >= 0.1 else '%.3fx') % v
print('%-6s %5s %-14s %6s %11s %12s %8s %10s' % ('', '', '${RATIO_NAME:-ferry/postfix}', '',
      r('$1', '$5'), r('$2', '$6'), r('$3', '$7'), r('$4', '$8')))"
}

# --- checks: DNS, key, signed messages --------------------------------------------

WITH_CHECKS=${BENCH_CHECKS:-1}
DKIM_TOOL=${BENCH_DKIM_TOOL:-$(dirname "$RELAY")/../tests/integration/dkim_tool}
if [ "$WITH_CHECKS" = 1 ]; then
	for c in dnsmasq openssl "$DKIM_TOOL"; do
		command -v "$c" >/dev/null && continue
		echo "bench: ferry+checks rows skipped ($c missing)" >&2
		WITH_CHECKS=0
	done
fi
# checks_setup - dnsmasq with bench.example's SPF record and DKIM key, and
# one signed message per size: $B/signed-SIZE.eml
checks_setup() {
	local rec size
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$B/dkim.key" 2>/dev/null || return 1
	rec=$("$DKIM_TOOL" pubkey -k "$B/dkim.key") || return 1
	DNS_PORT=$(free_port)
	printf '%s\n' "local=/#/" \
		'txt-record=bench.example,"v=spf1 ip4:127.0.0.1 -all"' \
		"txt-record=bench._domainkey.bench.example,\"$rec\"" \
		>"$B/dnsmasq.conf"
	dnsmasq --keep-in-foreground --conf-file="$B/dnsmasq.conf" --no-resolv \
		--no-hosts --no-poll --listen-address=127.0.0.1 --bind-interfaces \
		--port="$DNS_PORT" --pid-file="$B/dnsmasq.pid" --user="$(id -un)" \
		--cache-size=0 --local-ttl=3600 >"$B/dnsmasq.log" 2>&1 &
	PIDS+=($!)
	wait_tcp "$DNS_PORT" || return 1
	for size in 4096 102400; do
		"$PY" -c '
import sys
path, size = sys.argv[1], int(sys.argv[2])
head = ("From: Bench <sender@bench.example>\nTo: <rcpt@example.com>\n"
        "Subject: ferry-relay benchmark with checks\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
        "Message-ID: <bench-%d@bench.example>\n\n" % size)
body, n = [], len(head) + 600		# 600: about the signature
while n < size:
    line = ("%06d the quick brown fox jumps over the lazy dog " % len(body)).ljust(75, "x")
    body.append(line)
    n += len(line) + 2
open(path, "w").write(head + "\n".join(body) + "\n")' \
			"$B/plain-$size.eml" "$size" || return 1
		"$DKIM_TOOL" sign -k "$B/dkim.key" -s bench -d bench.example \
			"$B/plain-$size.eml" | tr -d '\r' >"$B/signed-$size.eml" ||
			return 1
	done
}
if [ "$WITH_CHECKS" = 1 ] && ! checks_setup; then
	echo "bench: ferry+checks rows skipped (setup failed; see $B/dnsmasq.log)" >&2
	WITH_CHECKS=0
fi
# pf_checks_setup - the same records from a second dnsmasq on
# 127.0.0.2:53 (neither OpenDKIM nor policyd-spf takes a DNS port; the
# address is loopback all the same), OpenDKIM verifying as a milter, and
# policyd-spf spawned by Postfix in a private mount namespace whose
# /etc/resolv.conf names that server (the system's file is not touched).
# Both as Debian configures them, except: OpenDKIM verifies only (Mode v)
# and adds Authentication-Results, policyd-spf does not skip loopback
# clients (skip_addresses) and writes Authentication-Results too.
WITH_PF_CHECKS=0
pf_checks_setup() {
	local c
	for c in opendkim /usr/bin/policyd-spf unshare; do
		command -v "$c" >/dev/null || {
			echo "bench: postfix+checks rows skipped ($c missing:" \
				"Debian packages opendkim, postfix-policyd-spf-python)" >&2
			return 1
		}
	done
	dnsmasq --keep-in-foreground --conf-file="$B/dnsmasq.conf" --no-resolv \
		--no-hosts --no-poll --listen-address=127.0.0.2 --bind-interfaces \
		--port=53 --pid-file="$B/dnsmasq2.pid" --user="$(id -un)" \
		--cache-size=0 --local-ttl=3600 >"$B/dnsmasq2.log" 2>&1 &
	PIDS+=($!)
	sleep 0.3
	kill -0 "${PIDS[-1]}" 2>/dev/null || {
		echo "bench: postfix+checks rows skipped (no DNS on 127.0.0.2:53:" \
			"$(tail -n 1 "$B/dnsmasq2.log"))" >&2
		return 1
	}
	echo "nameserver 127.0.0.2" >"$B/resolv.conf"
	chmod 644 "$B/resolv.conf"
	cat >"$B/policyd-spf.conf" <<EOF
debugLevel = 0
TestOnly = 1
HELO_reject = False
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
skip_addresses = 192.0.2.255/32
Header_Type = AR
Authserv_Id = postfix-bench.localdomain
EOF
	cat >"$B/policyd-spf.sh" <<EOF
#!/bin/sh
exec unshare -Urm sh -c 'mount --bind $B/resolv.conf /etc/resolv.conf && exec /usr/bin/policyd-spf $B/policyd-spf.conf'
EOF
	chmod 755 "$B/policyd-spf.sh"
	chmod 644 "$B/policyd-spf.conf"
	MILTER_PORT=$(free_port)
	cat >"$B/opendkim.conf" <<EOF
Mode v
Socket inet:$MILTER_PORT@127.0.0.1
PidFile $B/opendkim.pid
UserID opendkim
Nameservers 127.0.0.2
Syslog no
AlwaysAddARHeader yes
AuthservID postfix-bench.localdomain
EOF
	opendkim -f -x "$B/opendkim.conf" >"$B/opendkim.log" 2>&1 &
	PIDS+=($!)
	wait_tcp "$MILTER_PORT" || {
		echo "bench: postfix+checks rows skipped (OpenDKIM does not" \
			"start: $(tail -n 1 "$B/opendkim.log"))" >&2
		return 1
	}
	WITH_PF_CHECKS=1
}
if [ "$WITH_CHECKS" = 1 ] && [ "$WITH_POSTFIX" = 1 ]; then
	pf_checks_setup || true
fi
SUMMARY=()
# passed - log lines of accepted messages with spf=pass and dkim=pass
passed() {
	grep -c ' spf=pass dkim=pass' "$B/relay.log" 2>/dev/null || true
}

echo "mailferry relay benchmark: $(nproc) CPU, $(uname -r), spool on $(stat -f -c %T "$B") ($B)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (anything else busy skews every row)"
echo "smtp-source -> X -> smtp-sink on 127.0.0.1; one message per SMTP session; fsync before 250"
echo "peak RSS: VmHWM; for Postfix the sum over its processes (shared pages count in each)"
echo "ratio rows: ferry-relay / Postfix (msgs/s: higher is better; CPU, RSS: lower is better)"
echo
printf '%-6s %5s %-14s %6s %11s %12s %8s %10s\n' SIZE SESS X N "accepted/s" \
	"delivered/s" "CPU s" "peak RSS"
START=$(date +%s)
for size in 4096 102400; do
	for sess in 1 50; do
		case $size/$sess in
		4096/1) base_n=2000 ;;
		4096/50) base_n=6000 ;;
		102400/1) base_n=500 ;;
		102400/50) base_n=2000 ;;
		esac
		n=$("$PY" -c "print(max(50, int($base_n * $SCALE)))")
		SIZE_NAME=$((size / 1024))K
		run_one "sink (ceiling)" "$SINK_PORT" - "$size" "$sess" "$n"

		relay_start "$size-$sess"
		run_one ferry-relay "$RELAY_PORT" "$RELAY_PID" "$size" "$sess" "$n"
		F=("$ACC" "$DLV" "$CPU" "$RSS")
		relay_stop

		if [ -n "$BASE" ]; then
			RUN_RELAY=$BASE
			relay_start "$size-$sess-base"
			run_one ferry-base "$RELAY_PORT" "$RELAY_PID" "$size" \
				"$sess" "$n"
			relay_stop
			RUN_RELAY=$RELAY
			RATIO_NAME="ferry/base" ratio "${F[@]}" "$ACC" "$DLV" \
				"$CPU" "$RSS"
		fi

		if [ "$WITH_CHECKS" = 1 ]; then
			relay_start "$size-$sess-checks" checks
			p0=$(passed)
			run_one ferry+checks "$RELAY_PORT" "$RELAY_PID" "$size" \
				"$sess" "$n" -F "$B/signed-$size.eml" -N
			FC=("$ACC" "$DLV" "$CPU" "$RSS")
			relay_stop
			p1=$(passed)
			[ $((p1 - p0)) -ge "$n" ] ||
				echo "       (spf=pass dkim=pass logged for only $((p1 - p0)) of $n)"
			SUMMARY+=("$(printf '%-6s %5s   accepted/s %6s -> %6s   delivered/s %6s -> %6s   CPU s %6s -> %6s' \
				"$SIZE_NAME" "$sess" "${F[0]}" "$ACC" "${F[1]}" "$DLV" \
				"${F[2]}" "$CPU")")
		fi

		if [ "$WITH_POSTFIX" = 1 ]; then
			pf_start "$size-$sess"
			run_one postfix "$PF_PORT" "$PF_PID" "$size" "$sess" "$n"
			P=("$ACC" "$DLV" "$CPU" "$RSS")
			pf_stop
			ratio "${F[@]}" "${P[@]}"
		fi

		if [ "$WITH_PF_CHECKS" = 1 ]; then
			# a tenth of the messages: it is that much slower,
			# and each run has its time cap
			pf_start "$size-$sess-checks" checks
			run_one postfix+checks "$PF_PORT" "$PF_PID" "$size" \
				"$sess" "$(((n + 9) / 10 > 50 ? (n + 9) / 10 : 50))" \
				-F "$B/signed-$size.eml" -N
			PC=("$ACC" "$DLV" "$CPU" "$RSS")
			pf_stop
			RATIO_NAME="ferry+chk/pf+chk" ratio "${FC[@]}" "${PC[@]}"
		fi
	done
done

# --- memory with 1,000 idle connections -------------------------------------------

echo
ulimit -n 8192 2>/dev/null || ulimit -n 4096 2>/dev/null
relay_start idle
cat >"$B/idle.py" <<'EOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    socks.append(s)
for s in socks:
    buf = b""
    while b"\r\n" not in buf:
        chunk = s.recv(512)
        if not chunk:
            sys.exit("connection %d closed before the greeting" % socks.index(s))
        buf += chunk
    if not buf.startswith(b"220"):
        sys.exit("greeting: %r" % buf)
print("open", flush=True)
sys.stdin.read()		# stay idle until told to go
EOF
rss_before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RELAY_PID/status")
coproc IDLE { "$PY" "$B/idle.py" "$RELAY_PORT" 1000 2>&1; }
read -r -t 60 line <&"${IDLE[0]}"
if [ "${line:-}" = open ]; then
	sleep 0.5
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$RELAY_PID/status")
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$RELAY_PID/status")
	printf 'ferry-relay with 1000 idle connections (greeting read): RSS %d MB (%d KB; %d KB before them), peak %d MB\n' \
		$((rss / 1024)) "$rss" "$rss_before" $((hwm / 1024))
else
	echo "idle connections: failed: ${line:-no answer}"
fi
eval "exec ${IDLE[1]}>&-"
wait "$IDLE_PID" 2>/dev/null
relay_stop
if [ ${#SUMMARY[@]} -gt 0 ]; then
	echo
	echo "ferry-relay, checks off -> on (spf = tag, dkim = tag, local DNS):"
	printf '%s\n' "${SUMMARY[@]}"
fi
echo "total time $(($(date +%s) - START)) s"
