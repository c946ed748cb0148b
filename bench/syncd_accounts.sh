#!/bin/bash
# bench/syncd_accounts.sh - ferry-syncd beside mbsync over many small
# accounts on one Dovecot pair, on loopback (bench/syncd.sh --accounts N
# runs this).
#
# usage: bench/syncd.sh --accounts N [--messages M] [--scale F]
#                       [--no-mbsync] [FERRY_SYNCD]
#
# The source Dovecot holds N accounts (u00001..), each with INBOX and
# Archive of M messages (default 20) written straight into maildirs by
# bench/gen_mailbox.py --accounts (seconds, not N logins of APPENDs),
# indexed by doveadm force-resync before anything is timed.  The
# destination Dovecot holds f00001.. for ferry-syncd and m00001.. for
# mbsync.  Printed rows (wall s, CPU s, peak RSS MB):
#   full            ferry-syncd --once; mbsync -a over N channels
#   no-op --once    each run again with nothing new
#   daemon no-op    ferry-syncd -d (interval 1 s, keep_connections = N
#                   when the build has it): pass 1 (a no-op pass that
#                   still logs in everywhere), then pass 2,
#                   timed by the daemon itself ("pass 2: done in S s");
#                   CPU and peak RSS are the daemon's over both passes
# Beside each --once row, "servers s": the CPU both Dovecots used during
# it (user+sys of each master, of its reaped children and of the live
# ones).  Then the ratios ferry-syncd / mbsync; the floor of the full
# copy (the servers' CPU s / CPUs / mbsync's wall s: with every CPU busy
# no client that asks the servers for what mbsync asks can do better);
# the size of ferry-syncd's LMDB
# state, and a check that both destinations hold every message.
#
# Options:
#   --accounts N   accounts (default 1000)
#   --messages M   messages per folder (default 20)
#   --scale F      message sizes, as gen_mailbox.py (default 0.3:
#                  mostly 1-6 KB, what the per-account cost is about)
#   --no-mbsync    only ferry-syncd's rows
# Environment:
#   BENCH_DIR      where the mail lives (default /var/tmp)
#   BENCH_SEED     generator seed (default 1)
#   BENCH_CAP      seconds one run may take before it is killed (600)
#   BENCH_SYNCD_CONF  extra lines for ferry-syncd's [syncd] section,
#                  e.g. "parallel = 8" (the defaults are measured)
#
# Both Dovecots allow N + 256 imap processes (Dovecot's default is
# 1024), so that a daemon may keep a logged-in pair per account.  Only
# 127.0.0.1; everything is removed on exit (tests/integration/lib.sh).
set -u

ACCOUNTS=1000
MESSAGES=20
SCALE=0.3
WITH_MBSYNC=1
SYNCD=
while [ $# -gt 0 ]; do
	case $1 in
	--accounts) ACCOUNTS=$2; shift 2 ;;
	--accounts=*) ACCOUNTS=${1#*=}; shift ;;
	--messages) MESSAGES=$2; shift 2 ;;
	--messages=*) MESSAGES=${1#*=}; shift ;;
	--scale) SCALE=$2; shift 2 ;;
	--scale=*) SCALE=${1#*=}; shift ;;
	--no-mbsync) WITH_MBSYNC=0; shift ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "bench: unknown option $1" >&2; exit 2 ;;
	*) SYNCD=$1; shift ;;
	esac
done
for v in "$ACCOUNTS" "$MESSAGES"; do
	case $v in '' | *[!0-9]* | 0) echo "bench: bad --accounts/--messages" >&2; exit 2 ;; esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$HERE/.." && pwd)
top_builddir=$PWD
export top_srcdir top_builddir
[ -n "$SYNCD" ] || SYNCD=$top_builddir/syncd/ferry-syncd
[ -x "$SYNCD" ] || {
	echo "bench: $SYNCD not found (build first or give its path)" >&2
	exit 1
}
SYNCD=$(cd "$(dirname "$SYNCD")" && pwd)/$(basename "$SYNCD")
for c in dovecot doveadm mbsync /usr/bin/time; do
	command -v "$c" >/dev/null || {
		echo "bench: $c missing (Debian packages dovecot-imapd, isync, time)" >&2
		exit 1
	}
done

TMPDIR=${BENCH_DIR:-/var/tmp}
export TMPDIR
. "$top_srcdir/tests/integration/lib.sh"
SEED=${BENCH_SEED:-1}
CAP=${BENCH_CAP:-600}
GEN=$top_srcdir/bench/gen_mailbox.py
say() { printf '%s\n' "$*" >&2; }

user() { printf "$1%05d" "$2"; }	# user PREFIX K

SRCU=() DSTU=()
for ((k = 1; k <= ACCOUNTS; k++)); do
	SRCU+=("$(user u $k):pass")
	DSTU+=("$(user f $k):pass" "$(user m $k):pass")
done
DOVECOT_EXTRA="service imap {
  process_limit = $((ACCOUNTS + 256))
}"
export DOVECOT_EXTRA
say "bench: starting two Dovecot instances in $T"
DOVECOT_NAME=src start_dovecot "${SRCU[@]}" || exit 1
DOVECOT_NAME=dst start_dovecot "${DSTU[@]}" || exit 1
unset DOVECOT_EXTRA
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst
MAILDIR_SRC=$T/dovecot/src/mail

say "bench: generating $ACCOUNTS accounts x 2 folders x $MESSAGES messages"
"$LIB_PYTHON" "$GEN" --seed "$SEED" --accounts "$ACCOUNTS" --user u%05d \
	--count $((2 * MESSAGES)) --folders INBOX,Archive --scale "$SCALE" \
	--maildir "$MAILDIR_SRC" >&2 || exit 1
[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$MAILDIR_SRC"
say "bench: indexing the source (doveadm force-resync -A)"
doveadm_cmd src force-resync -A '*' || exit 1

# count_msgs INSTANCE PREFIX - messages in all folders of users PREFIX*
count_msgs() {
	doveadm_cmd "$1" -f tab mailbox status -A messages '*' 2>/dev/null |
		awk -F'\t' -v p="$2" 'NR > 1 && index($1, p) == 1 { s += $3 }
			END { print s + 0 }'
}
SRC_MSGS=$(count_msgs src u)
SRC_BYTES=$(du -sb "$MAILDIR_SRC" | cut -f1)

# --- configurations ------------------------------------------------------------

mkdir -p "$T/syncd" "$T/mbsync"
for ((k = 1; k <= ACCOUNTS; k++)); do
	printf '%s pass %s pass\n' "$(user u $k)" "$(user f $k)"
done >"$T/syncd/accounts"
chmod 600 "$T/syncd/accounts"
syncd_conf() {	# syncd_conf LOG_LEVEL
	cat <<EOF
[global]
state_dir = $T/syncd/state
log = stderr
log_level = $1

[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $T/syncd/accounts
tls_verify = no
EOF
	[ -z "${BENCH_SYNCD_CONF:-}" ] || printf '%s\n' "$BENCH_SYNCD_CONF"
}
syncd_conf notice >"$T/syncd/once.conf"
{
	syncd_conf info
	printf 'interval = 1s\npid_file = %s\n' "$T/syncd/daemon.pid"
} >"$T/syncd/daemon.conf"
# A pair kept per account (a build without the key: its own rule)
cp "$T/syncd/daemon.conf" "$T/syncd/keep.conf"
echo "keep_connections = $ACCOUNTS" >>"$T/syncd/keep.conf"
if "$SYNCD" -c "$T/syncd/keep.conf" -t >/dev/null 2>&1; then
	mv "$T/syncd/keep.conf" "$T/syncd/daemon.conf"
	KEEP="keep_connections = $ACCOUNTS"
else
	KEEP="no keep_connections key"
fi

{
	for ((k = 1; k <= ACCOUNTS; k++)); do
		cat <<EOF
IMAPAccount s$k
Host 127.0.0.1
Port $SRC
User $(user u $k)
Pass pass
SSLType None
AuthMechs LOGIN

IMAPStore s$k
Account s$k

IMAPAccount d$k
Host 127.0.0.1
Port $DST
User $(user m $k)
Pass pass
SSLType None
AuthMechs LOGIN

IMAPStore d$k
Account d$k

Channel c$k
Far :s$k:
Near :d$k:
Patterns *
Create Near
Sync Pull
Expunge None
CopyArrivalDate yes
SyncState $T/mbsync/state/$k/

EOF
	done
} >"$T/mbsync/mbsyncrc"
for ((k = 1; k <= ACCOUNTS; k++)); do mkdir -p "$T/mbsync/state/$k"; done

# --- measuring -----------------------------------------------------------------

ROWS=()
# stat_cpu [children] < /proc/PID/stat lines - their user+sys seconds,
# with "children" also those of their reaped children (the command
# field may hold spaces: fields are counted from the end of "(...)")
stat_cpu() {
	awk -v hz="$(getconf CLK_TCK)" -v kids="${1:-}" '{
		sub(/^.*\) /, "")
		s += $12 + $13
		if (kids != "") s += $14 + $15
	} END { printf "%.2f", s / hz }'
}
# servers_cpu - user+sys seconds both Dovecots have used so far: each
# master's own and its reaped children's (every imap and imap-login
# process ends with its connection), and the live children's (auth,
# config, log, anvil, stats and the imap processes still running)
DOVECOT_MASTERS=$(awk '$2 ~ /^dovecot-/ { print $1 }' "$T/log/pids")
servers_cpu() {
	local m
	for m in $DOVECOT_MASTERS; do
		echo "$m"
		pgrep -P "$m"
	done | while read -r p; do
		cat "/proc/$p/stat" 2>/dev/null
	done | stat_cpu children
}
# timed NAME CMD... - wall, CPU (user+sys), peak RSS of CMD; a row
timed() {
	local name=$1 tv=$T/time.$RANDOM t0 t1 rc cpu rss s0 s1
	shift
	s0=$(servers_cpu)
	t0=$(date +%s.%N)
	/usr/bin/time -v -o "$tv" timeout -s KILL "$CAP" "$@" \
		>"$T/log/bench-out.log" 2>>"$T/log/bench-runs.log"
	rc=$?
	t1=$(date +%s.%N)
	s1=$(servers_cpu)
	cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$tv")
	rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tv")
	LAST_WALL=$(echo "$t1 - $t0" | bc)
	LAST_SRV=$(echo "$s1 $s0" | awk '{ printf "%.2f", $1 - $2 }')
	ROWS+=("$name|$LAST_WALL|$cpu|$rss|$rc|$LAST_SRV")
	[ $rc -eq 0 ] || [ $rc -eq 1 ] ||
		{ say "bench: $name exited $rc"; tail -n 5 "$T/log/bench-runs.log" >&2; }
}

say "bench: full copy, ferry-syncd"
timed "ferry-syncd full --once" "$SYNCD" -c "$T/syncd/once.conf" --once
S_FULL=$LAST_WALL
S_FULL_SRV=$LAST_SRV
M_FULL= M_FULL_SRV=
if [ "$WITH_MBSYNC" = 1 ]; then
	say "bench: full copy, mbsync"
	timed "mbsync full -a" mbsync -c "$T/mbsync/mbsyncrc" -q -a
	M_FULL=$LAST_WALL
	M_FULL_SRV=$LAST_SRV
fi
say "bench: no-op --once"
timed "ferry-syncd no-op --once" "$SYNCD" -c "$T/syncd/once.conf" --once
S_NOOP=$LAST_WALL
M_NOOP=
if [ "$WITH_MBSYNC" = 1 ]; then
	timed "mbsync no-op -a" mbsync -c "$T/mbsync/mbsyncrc" -q -a
	M_NOOP=$LAST_WALL
fi

# proc_cpu PID - user+sys seconds of PID so far
proc_cpu() {
	stat_cpu 2>/dev/null <"/proc/$1/stat"
}
say "bench: the daemon's no-op pass 2"
DLOG=$T/log/bench-daemon.log
"$SYNCD" -c "$T/syncd/daemon.conf" -d 2>"$DLOG" &
dpid=$!
for ((i = 0; i < CAP * 10; i++)); do
	grep -q "pass 2: done" "$DLOG" && break
	kill -0 "$dpid" 2>/dev/null || break
	sleep 0.1
done
D_CPU=$(proc_cpu "$dpid")
D_RSS=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$dpid/status" 2>/dev/null)
D_FDS=$(ls "/proc/$dpid/fd" 2>/dev/null | wc -l)
kill -TERM "$dpid" 2>/dev/null
wait "$dpid" 2>/dev/null
D_P1=$(sed -n 's/.*pass 1: done in \([0-9.]*\) s.*/\1/p' "$DLOG" | head -n 1)
D_P2=$(sed -n 's/.*pass 2: done in \([0-9.]*\) s.*/\1/p' "$DLOG" | head -n 1)
if [ -n "$D_P2" ]; then
	ROWS+=("ferry-syncd daemon pass 1|$D_P1|-|-|0")
	ROWS+=("ferry-syncd daemon no-op pass 2|$D_P2|$D_CPU|$D_RSS|0")
	say "bench: daemon: $KEEP; $(grep -c "logged in as" "$DLOG") logins"
else
	say "bench: the daemon did not finish 2 passes:"
	tail -n 5 "$DLOG" >&2
fi
LMDB=$(du -sk "$T/syncd/state" | awk '{ printf "%.1f", $1 / 1024 }')
F_MSGS=$(count_msgs dst f)
M_MSGS=$(count_msgs dst m)

# --- the table ---------------------------------------------------------------------

echo
echo "ferry-syncd vs mbsync: $ACCOUNTS accounts x INBOX+Archive x $MESSAGES messages" \
	"($SRC_MSGS messages, $(echo "scale=1; $SRC_BYTES / 1000000" | bc) MB), $(nproc) CPUs"
printf '%-34s %8s %7s %7s %9s %s\n' run "wall s" "CPU s" "RSS MB" "servers s" exit
for r in "${ROWS[@]}"; do
	IFS='|' read -r name wall cpu rss rc srv <<<"$r"
	printf '%-34s %8.2f %7s %7s %9s %s\n' "$name" "$wall" "$cpu" "$rss" "${srv:--}" "$rc"
done
echo "(servers s: CPU both Dovecots used during the run, user+sys)"
echo
# The floor: with every CPU busy a run takes at least the CPU time it
# made the servers spend, spread over the CPUs; mbsync's servers' time
# is the floor of any client that asks for what mbsync asks (a login a
# side, every folder selected, every body fetched and appended).
awk -v a="$S_FULL" -v b="$M_FULL" -v c="$S_NOOP" -v d="$M_NOOP" \
	-v e="${D_P2:-}" -v n="$ACCOUNTS" -v cpus="$(nproc)" \
	-v fs="$S_FULL_SRV" -v ms="$M_FULL_SRV" 'BEGIN {
	if (b != "" && d != "")
		printf "wall time ferry-syncd / mbsync: full %.2f, no-op --once %.2f, daemon no-op pass %s\n",
			a / b, c / d, e == "" ? "-" : sprintf("%.3f", e / d)
	printf "per account: no-op --once %.1f ms, daemon no-op pass %s ms\n",
		c * 1000 / n, e == "" ? "-" : sprintf("%.1f", e * 1000 / n)
	if (b != "" && fs != "")
		printf "floor of the full copy, %d CPUs all busy: mbsync\047s servers %.2f, ferry-syncd\047s servers %.2f (their CPU s / CPUs / mbsync\047s wall s)\n",
			cpus, ms / cpus / b, fs / cpus / b
	printf "(goals at 1,000 accounts: full <= 0.30, no-op --once <= 0.30, daemon pass <= 5 s, RSS < 200 MB)\n"
}'
echo "ferry-syncd's LMDB state: $LMDB MB; the daemon ($KEEP): $D_FDS open fds after pass 2," \
	"$(grep -c "logged in as" "$DLOG") logins in passes 1-2"
echo "messages: source $SRC_MSGS, ferry-syncd's destination $F_MSGS, mbsync's destination $M_MSGS"
[ "$F_MSGS" = "$SRC_MSGS" ] ||
	echo "WARNING: ferry-syncd's destination does not hold every source message"
[ "$WITH_MBSYNC" = 0 ] || [ "$M_MSGS" = "$SRC_MSGS" ] ||
	echo "WARNING: mbsync's destination does not hold every source message"
exit 0
