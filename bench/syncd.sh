#!/bin/bash
# bench/syncd.sh - ferry-syncd beside mbsync (isync), on loopback.
#
# usage: bench/syncd.sh [--count N] [--scale F] [--quick] [--no-syncd]
#                       [FERRY_SYNCD]
#        bench/syncd.sh --accounts N [--messages M] [FERRY_SYNCD]
#        (default: syncd/ferry-syncd under the current directory)
#
# With --accounts: many small accounts on one Dovecot pair instead of
# one big mailbox; bench/syncd_accounts.sh --help tells the rows.
#
# In one run, against two private Dovecot instances (source: user alice,
# filled by bench/gen_mailbox.py; destination: bob for ferry-syncd, carol
# for mbsync):
#   floor        a plain "UID FETCH 1:* BODY.PEEK[]" of every source
#                folder that reads and discards the bytes: what Dovecot
#                can serve, the ceiling of any copier on this machine
#   full         ferry-syncd --once, then mbsync, each copying the whole
#                mailbox to its own empty destination user
#   no-op delta  each run again with nothing new (five times; the
#                median is shown); at the end once more against the same
#                Dovecots with pre-forked imap-login and imap processes
#                (Dovecot's "high-performance" settings), where the login
#                no longer hides what each client does per folder
#   daemon pass  ferry-syncd as a daemon (interval 1 s): its passes 2..6
#                reuse the connections of pass 1; compared with mbsync's
#                no-op run (mbsync has no daemon mode)
#   +100 delta   100 new messages arrive on the source; each runs again
# Printed per row: messages, MB, wall s, msgs/s, MB/s, CPU s (user+sys of
# the copying process, from /usr/bin/time), peak RSS; then the ratios
# ferry-syncd / mbsync, a check that both destinations hold as many
# messages as the source, and ferry-syncd's (and mbsync's) peak RSS while
# one 50 MB message is copied.
#
# Options:
#   --count N    messages in the generated mailbox (default 10000)
#   --scale F    multiply every message size (default 1: about 320 MB)
#   --quick      --count 1000 --scale 0.3 and no warm-up floor run
#   --no-syncd   only the floor and mbsync (before ferry-syncd exists)
#   --full-only  only the full copy of ferry-syncd, BENCH_RUNS times into
#                fresh destination users; with BENCH_BASE (another
#                ferry-syncd binary) each run of it follows one of
#                FERRY_SYNCD, so both see the same load; prints every run
#                and the medians
#   --delta-only after one full copy each (FERRY_SYNCD, and BENCH_BASE
#                when given), BENCH_RUNS rounds of 100 new messages across
#                the folders, each build's delta timed in turn (which goes
#                first alternates); prints every run, the medians and the
#                median of the run-by-run ratios
#   --noop-only  as --delta-only with nothing new: BENCH_RUNS no-op
#                passes of each build in turn
# Environment:
#   BENCH_DIR    where the mail lives (default /var/tmp; a real disk)
#   BENCH_SEED   generator seed (default 1)
#   BENCH_CAP    seconds one run may take before it is killed and shown
#                with exit 137 (default 300)
#   BENCH_BASE   --full-only, --delta-only, --noop-only: the ferry-syncd to
#                compare with
#   BENCH_RUNS   --full-only, --delta-only, --noop-only: runs of each
#                (default 5)
#
# Everything listens on 127.0.0.1 only; the Dovecot instances and every
# file are removed on exit (tests/integration/lib.sh's cleanup).  Not
# part of make check: the full run takes a few minutes.
set -u

for a in "$@"; do
	case $a in
	--accounts | --accounts=*)
		exec "$(dirname "$0")/syncd_accounts.sh" "$@" ;;
	esac
done
COUNT=10000
SCALE=1
QUICK=0
WITH_SYNCD=1
FULL_ONLY=0
SYNCD=
while [ $# -gt 0 ]; do
	case $1 in
	--count) COUNT=$2; shift 2 ;;
	--count=*) COUNT=${1#*=}; shift ;;
	--scale) SCALE=$2; shift 2 ;;
	--scale=*) SCALE=${1#*=}; shift ;;
	--quick) QUICK=1; COUNT=1000; SCALE=0.3; shift ;;
	--no-syncd) WITH_SYNCD=0; shift ;;
	--full-only) FULL_ONLY=1; shift ;;
	--delta-only) FULL_ONLY=2; shift ;;
	--noop-only) FULL_ONLY=3; shift ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "bench: unknown option $1" >&2; exit 2 ;;
	*) SYNCD=$1; shift ;;
	esac
done
case $COUNT in '' | *[!0-9]*) echo "bench: bad --count" >&2; exit 2 ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$HERE/.." && pwd)
top_builddir=$PWD
export top_srcdir top_builddir
[ -n "$SYNCD" ] || SYNCD=$top_builddir/syncd/ferry-syncd
if [ "$WITH_SYNCD" = 1 ]; then
	[ -x "$SYNCD" ] || {
		echo "bench: $SYNCD not found (build first, give its path, or --no-syncd)" >&2
		exit 1
	}
	SYNCD=$(cd "$(dirname "$SYNCD")" && pwd)/$(basename "$SYNCD")
fi
for c in dovecot doveadm mbsync /usr/bin/time; do
	command -v "$c" >/dev/null || {
		echo "bench: $c missing (Debian packages dovecot-imapd, isync, time)" >&2
		exit 1
	}
done

TMPDIR=${BENCH_DIR:-/var/tmp}
export TMPDIR
# lib.sh: $T, the cleanup trap, start_dovecot, doveadm_cmd.
. "$top_srcdir/tests/integration/lib.sh"
SEED=${BENCH_SEED:-1}
CAP=${BENCH_CAP:-300}
GEN=$top_srcdir/bench/gen_mailbox.py

say() { printf '%s\n' "$*" >&2; }

RUNS=${BENCH_RUNS:-5}
case $RUNS in '' | *[!0-9]* | 0) echo "bench: bad BENCH_RUNS" >&2; exit 2 ;; esac
AB_USERS=
if [ "$FULL_ONLY" != 0 ]; then
	for ((i = 1; i <= RUNS; i++)); do
		AB_USERS="$AB_USERS new$i:pass base$i:pass"
	done
fi

say "bench: starting two Dovecot instances in $T"
DOVECOT_NAME=src start_dovecot alice:pass big:pass || exit 1
# shellcheck disable=SC2086
DOVECOT_NAME=dst start_dovecot bob:pass carol:pass dave:pass erin:pass \
	$AB_USERS || exit 1
SRC=$IMAP_PORT_src
DST=$IMAP_PORT_dst
MAILDIR_SRC=$T/dovecot/src/mail

# own_mail - as root Dovecot reads the mail as user "mail".
own_mail() {
	[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$MAILDIR_SRC"
}

say "bench: generating $COUNT messages (scale $SCALE)"
"$LIB_PYTHON" "$GEN" --seed "$SEED" --count "$COUNT" --scale "$SCALE" \
	--maildir "$MAILDIR_SRC/alice/Maildir" >&2 || exit 1
own_mail
doveadm_cmd src force-resync -u alice '*' || exit 1
SRC_MSGS=$(doveadm_cmd src mailbox status -u alice messages '*' |
	awk -F'messages=' '{ s += $2 } END { print s + 0 }')
SRC_BYTES=$(du -sb "$MAILDIR_SRC/alice/Maildir" | cut -f1)

# --- the floor probe: read everything, keep nothing -------------------------

cat >"$T/floor.py" <<'EOF'
# floor.py PORT USER PASS - UID FETCH 1:* BODY.PEEK[] of every folder,
# bytes discarded; prints "messages bytes".
import socket, sys

port, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
buf = bytearray()
chunk = bytearray(1 << 20)
view = memoryview(chunk)
skip = 0          # literal bytes still to discard
nmsg = nbytes = 0

def fill():
    n = s.recv_into(view)
    if n == 0:
        sys.exit("floor: connection closed")
    return n

def line():
    """The next response line outside literals; literals are counted
    and thrown away as they stream past."""
    global buf, skip, nbytes
    while True:
        if skip:
            if len(buf) >= skip:
                del buf[:skip]
                skip = 0
            else:
                skip -= len(buf)
                buf.clear()
                while skip:
                    n = fill()
                    if n <= skip:
                        skip -= n
                    else:
                        buf += view[skip:n]
                        skip = 0
            continue
        i = buf.find(b"\r\n")
        if i < 0:
            buf += view[:fill()]
            continue
        l = bytes(buf[:i])
        del buf[:i + 2]
        if l.endswith(b"}") and b"{" in l:
            skip = int(l[l.rindex(b"{") + 1:-1])
            nbytes += skip
        return l

def cmd(tag, text):
    s.sendall(tag + b" " + text + b"\r\n")
    out = []
    while True:
        l = line()
        if l.startswith(tag + b" "):
            if not l.startswith(tag + b" OK"):
                sys.exit("floor: %r" % l)
            return out
        out.append(l)

line()
cmd(b"a1", b'LOGIN "%s" "%s"' % (user.encode(), pw.encode()))
folders = []
for l in cmd(b"a2", b'LIST "" "*"'):
    # * LIST (\HasNoChildren) "." "Name" or unquoted
    rest = l.split(b") ", 1)[1]
    name = rest.split(b" ", 1)[1]
    folders.append(name)
n = 3
for f in folders:
    cmd(b"a%d" % n, b"EXAMINE " + f); n += 1
    for l in cmd(b"a%d" % n, b"UID FETCH 1:* BODY.PEEK[]"):
        if b" FETCH " in l:
            nmsg += 1
    n += 1
cmd(b"a%d" % n, b"LOGOUT")
print(nmsg, nbytes)
EOF

# --- measuring -----------------------------------------------------------------

ROWS=()

# timed NAME MSGS CMD... - run CMD under /usr/bin/time, add a row.
# MSGS "-" means: the number the command itself printed (the floor).
timed() {
	local name=$1 msgs=$2 tv=$T/time.$RANDOM out=$T/out.$RANDOM t0 t1 rc
	local errf=$T/run.$RANDOM.err
	shift 2
	t0=$(date +%s.%N)
	/usr/bin/time -v -o "$tv" timeout -s KILL "$CAP" "$@" >"$out" 2>"$errf"
	rc=$?
	t1=$(date +%s.%N)
	LAST_OUT=$out
	if [ "$msgs" = - ]; then
		msgs=$(cut -d' ' -f1 "$out")
		LAST_BYTES=$(cut -d' ' -f2 "$out")
	fi
	local cpu rss
	cpu=$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$tv")
	rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$tv")
	ROWS+=("$name|$msgs|${LAST_BYTES:-0}|$(echo "$t1 - $t0" | bc)|$cpu|$rss|$rc")
	LAST_WALL=$(echo "$t1 - $t0" | bc)
	LAST_RC=$rc
	LAST_RSS=$rss
	if [ $rc -eq 137 ]; then
		say "bench: $name did not finish in $CAP s: killed"
	elif [ $rc -ne 0 ]; then
		say "bench: $name exited $rc:"
		# a sanitizer report from its start, else the end of stderr
		if grep -q 'ERROR: AddressSanitizer\|runtime error' "$errf"; then
			grep -m 1 -A 14 'ERROR: AddressSanitizer\|runtime error' "$errf" >&2
		else
			tail -n 8 "$errf" >&2
		fi
	fi
	cat "$errf" >>"$T/log/bench-runs.log"
	rm -f "$errf"
}

# dst_messages USER - messages in all of USER's destination folders
dst_messages() {
	doveadm_cmd dst mailbox status -u "$1" messages '*' 2>/dev/null |
		awk -F'messages=' '{ s += $2 } END { print s + 0 }'
}

# --- ferry-syncd configuration -------------------------------------------------

mkdir -p "$T/syncd" "$T/mbsync"
printf 'alice pass bob pass\n' >"$T/syncd/accounts"
printf 'big pass erin pass\n' >"$T/syncd/accounts.big"
chmod 600 "$T/syncd/accounts" "$T/syncd/accounts.big"
syncd_conf() {	# syncd_conf FILE ACCOUNTS STATE
	cat >"$1" <<EOF
[global]
state_dir = $3
log = stderr
log_level = notice

[syncd]
source = imap://127.0.0.1:$SRC?tls=none
destination = imap://127.0.0.1:$DST?tls=none
accounts = $2
tls_verify = no
EOF
}
syncd_conf "$T/syncd/syncd.conf" "$T/syncd/accounts" "$T/syncd/state"
syncd_conf "$T/syncd/big.conf" "$T/syncd/accounts.big" "$T/syncd/state-big"

# --- mbsync configuration --------------------------------------------------------

mbsync_conf() {	# mbsync_conf FILE SRCUSER DSTUSER STATEDIR
	mkdir -p "$4"
	cat >"$1" <<EOF
IMAPAccount src
Host 127.0.0.1
Port $SRC
User $2
Pass pass
SSLType None
AuthMechs LOGIN

IMAPStore src
Account src

IMAPAccount dst
Host 127.0.0.1
Port $DST
User $3
Pass pass
SSLType None
AuthMechs LOGIN

IMAPStore dst
Account dst

Channel copy
Far :src:
Near :dst:
Patterns *
Create Near
Sync Pull
Expunge None
CopyArrivalDate yes
SyncState $4/
EOF
}
mbsync_conf "$T/mbsync/mbsyncrc" alice carol "$T/mbsync/state"
mbsync_conf "$T/mbsync/big.rc" big dave "$T/mbsync/state-big"

# median N - keep only the median (by wall time) of the last N rows:
# a no-op pass takes a fraction of a second, so one run is mostly noise.
median() {
	local n=${#ROWS[@]} k=$1 keep
	[ "$n" -ge "$k" ] || return 0
	keep=$(printf '%s\n' "${ROWS[@]:n-k:k}" | sort -t'|' -k4,4n |
		sed -n "$(((k + 1) / 2))p")
	ROWS=("${ROWS[@]:0:n-k}" "$keep")
	IFS='|' read -r _ _ _ LAST_WALL _ _ _ <<<"$keep"
}
NOOP_RUNS=5

# noop_rows SUFFIX - no-op delta of each, NOOP_RUNS times, medians kept;
# sets SYNCD_NOOP and MBSYNC_NOOP
noop_rows() {
	local i
	if [ "$WITH_SYNCD" = 1 ]; then
		for ((i = 0; i < NOOP_RUNS; i++)); do
			run_syncd "ferry-syncd no-op delta$1" 0 0
		done
		median $NOOP_RUNS
	else
		run_syncd "ferry-syncd no-op delta$1" 0 0
	fi
	SYNCD_NOOP=$LAST_WALL
	for ((i = 0; i < NOOP_RUNS; i++)); do
		run_mbsync "mbsync no-op delta$1" 0 0
	done
	median $NOOP_RUNS
	MBSYNC_NOOP=$LAST_WALL
}

run_syncd() {	# run_syncd ROWNAME MSGS
	if [ "$WITH_SYNCD" = 1 ]; then
		LAST_BYTES=$3
		timed "$1" "$2" "$SYNCD" -c "$T/syncd/syncd.conf" --once
	else
		ROWS+=("$1|skipped|0|0|0|0|0")
	fi
}
run_mbsync() {	# run_mbsync ROWNAME MSGS BYTES
	LAST_BYTES=$3
	timed "$1" "$2" mbsync -c "$T/mbsync/mbsyncrc" -q copy
}

# --- --full-only: the full copy, this build against BENCH_BASE -------------------

# ab_run KIND N BINARY - one full copy of alice into user KIND+N, fresh
ab_run() {
	local conf=$T/syncd/ab-$1$2.conf
	printf 'alice pass %s%s pass\n' "$1" "$2" >"$T/syncd/accounts.$1$2"
	chmod 600 "$T/syncd/accounts.$1$2"
	syncd_conf "$conf" "$T/syncd/accounts.$1$2" "$T/syncd/state-$1$2"
	LAST_BYTES=0
	timed "$1 $2" "$SRC_MSGS" "$3" -c "$conf" --once
	if [ "$1" = new ]; then AB_WALL_new+=("$LAST_WALL")
	else AB_WALL_base+=("$LAST_WALL"); fi
	[ "$(dst_messages "$1$2")" = "$SRC_MSGS" ] ||
		say "bench: WARNING: $1$2 does not hold every source message"
}
ab_delta() {	# ab_delta KIND N BINARY - KIND1's delta after the new mail
	timed "$1 $2" "$AB_NEW" "$3" -c "$T/syncd/ab-${1}1.conf" --once
	if [ "$1" = new ]; then AB_WALL_new+=("$LAST_WALL")
	else AB_WALL_base+=("$LAST_WALL"); fi
}
ab_ratios() {	# ab_ratios - the median of new/base, run by run
	local i
	for ((i = 0; i < ${#AB_WALL_new[@]}; i++)); do
		echo "${AB_WALL_new[i]} ${AB_WALL_base[i]}"
	done | awk '{ print $1 / $2 }' | sort -n | awk '{ v[NR] = $1 } END {
		printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ab_report() {	# ab_report WALL_FORMAT - every run, the medians, the ratio
	local r name msgs bytes wall cpu rss rc
	printf '%-10s %8s %7s %9s %s\n' run "wall s" "CPU s" "RSS MB" exit
	for r in "${ROWS[@]}"; do
		IFS='|' read -r name msgs bytes wall cpu rss rc <<<"$r"
		printf "%-10s $1 %7.2f %9.1f %s\n" "$name" "$wall" "$cpu" "$rss" "$rc"
	done
	echo "median wall s: $SYNCD $(ab_median "${AB_WALL_new[@]}")"
	[ -z "${BENCH_BASE:-}" ] || {
		echo "median wall s: $BENCH_BASE $(ab_median "${AB_WALL_base[@]}")"
		echo "median of the run-by-run ratios new / base: $(ab_ratios)"
	}
}
ab_median() {	# ab_median WALL... - the median
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END {
		printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
if [ "$FULL_ONLY" = 1 ]; then
	"$LIB_PYTHON" "$T/floor.py" "$SRC" alice pass >/dev/null || exit 1
	AB_WALL_new=() AB_WALL_base=()
	for ((i = 1; i <= RUNS; i++)); do
		say "bench: full copy, run $i of $RUNS"
		ab_run new "$i" "$SYNCD"
		[ -z "${BENCH_BASE:-}" ] || ab_run base "$i" "$BENCH_BASE"
	done
	echo "ferry-syncd full copy: $SRC_MSGS messages, $(echo "scale=1; $SRC_BYTES / 1000000" | bc) MB on disk, $(nproc) CPUs"
	ab_report %8.2f
	exit 0
fi
if [ "$FULL_ONLY" = 2 ] || [ "$FULL_ONLY" = 3 ]; then
	"$LIB_PYTHON" "$T/floor.py" "$SRC" alice pass >/dev/null || exit 1
	say "bench: one full copy each, untimed"
	ab_run new 1 "$SYNCD"
	[ -z "${BENCH_BASE:-}" ] || ab_run base 1 "$BENCH_BASE"
	AB_WALL_new=() AB_WALL_base=() ROWS=()
	AB_NEW=$((FULL_ONLY == 2 ? 100 : 0))
	for ((i = 1; i <= RUNS; i++)); do
		if [ "$AB_NEW" = 0 ]; then
			say "bench: nothing new, round $i of $RUNS"
		else
			say "bench: 100 new messages, round $i of $RUNS"
			"$LIB_PYTHON" "$GEN" --seed "$SEED" \
				--start $((20000000 + i * 1000)) --count 100 \
				--scale "$SCALE" --maildir "$MAILDIR_SRC/alice/Maildir" \
				-q >&2 || exit 1
			own_mail
			# indexed now, or whichever runs first pays for it
			doveadm_cmd src force-resync -u alice '*' || exit 1
		fi
		if [ -z "${BENCH_BASE:-}" ]; then
			ab_delta new "$i" "$SYNCD"
		elif [ $((i % 2)) = 1 ]; then
			ab_delta new "$i" "$SYNCD"
			ab_delta base "$i" "$BENCH_BASE"
		else
			ab_delta base "$i" "$BENCH_BASE"
			ab_delta new "$i" "$SYNCD"
		fi
	done
	if [ "$AB_NEW" = 0 ]; then
		echo "ferry-syncd no-op delta over $SRC_MSGS messages, $(nproc) CPUs"
	else
		echo "ferry-syncd +100 delta over $SRC_MSGS messages, $(nproc) CPUs"
	fi
	ab_report %8.3f
	exit 0
fi

# --- the runs ---------------------------------------------------------------------

if [ "$QUICK" = 0 ]; then
	say "bench: warming the page cache (floor, untimed)"
	"$LIB_PYTHON" "$T/floor.py" "$SRC" alice pass >/dev/null || exit 1
fi
say "bench: floor"
LAST_BYTES=
timed "floor: UID FETCH BODY.PEEK[]" - "$LIB_PYTHON" "$T/floor.py" "$SRC" alice pass
FLOOR_BYTES=$LAST_BYTES

say "bench: full copy"
run_syncd "ferry-syncd full" "$SRC_MSGS" "$FLOOR_BYTES"
SYNCD_FULL=$LAST_WALL
SYNCD_VERDICT=$(sed -n 's/^verdict: //p' "${LAST_OUT:-/dev/null}" 2>/dev/null | tail -n 1)
run_mbsync "mbsync full" "$SRC_MSGS" "$FLOOR_BYTES"
MBSYNC_FULL=$LAST_WALL

say "bench: no-op delta ($NOOP_RUNS runs each, the median shown)"
noop_rows ""
SYNCD_NOOP_DEF=$SYNCD_NOOP
MBSYNC_NOOP_DEF=$MBSYNC_NOOP

# The daemon's own delta passes: between passes it stays logged in, so
# a no-op pass is one LIST-STATUS a side.  Its passes 2..6 (interval 1 s),
# timed by the daemon itself ("pass N: done in S s"), median shown.
SYNCD_NOOP_DAEMON=
if [ "$WITH_SYNCD" = 1 ]; then
	say "bench: no-op delta passes of the daemon (kept connections)"
	{
		sed 's/^log_level = notice/log_level = info/' "$T/syncd/syncd.conf"
		printf 'interval = 1s\npid_file = %s\n' "$T/syncd/daemon.pid"
	} >"$T/syncd/daemon.conf"
	"$SYNCD" -c "$T/syncd/daemon.conf" -d 2>"$T/log/bench-daemon.log" &
	dpid=$!
	for ((i = 0; i < 300; i++)); do
		grep -q "pass 6: done" "$T/log/bench-daemon.log" && break
		sleep 0.1
	done
	kill -TERM "$dpid" 2>/dev/null
	wait "$dpid" 2>/dev/null
	SYNCD_NOOP_DAEMON=$(sed -n 's/.*pass \([2-6]\): done in \([0-9.]*\) s.*/\2/p' \
		"$T/log/bench-daemon.log" | sort -n | sed -n 3p)
	if [ -n "$SYNCD_NOOP_DAEMON" ]; then
		ROWS+=("ferry-syncd daemon no-op pass|0|0|$SYNCD_NOOP_DAEMON|0|0|0")
	else
		say "bench: the daemon did not finish 6 passes:"
		tail -n 5 "$T/log/bench-daemon.log" >&2
	fi
fi

say "bench: 100 new messages"
"$LIB_PYTHON" "$GEN" --seed "$SEED" --start 10000000 --count 100 \
	--scale "$SCALE" --maildir "$MAILDIR_SRC/alice/Maildir" \
	--manifest "$T/new.manifest" >&2 || exit 1
own_mail
NEW_BYTES=$(awk -F'\t' '{ s += $3 } END { print s + 0 }' "$T/new.manifest")
run_syncd "ferry-syncd +100 delta" 100 "$NEW_BYTES"
SYNCD_DELTA=$LAST_WALL
run_mbsync "mbsync +100 delta" 100 "$NEW_BYTES"
MBSYNC_DELTA=$LAST_WALL

SRC_NOW=$(doveadm_cmd src mailbox status -u alice messages '*' |
	awk -F'messages=' '{ s += $2 } END { print s + 0 }')
BOB=$(dst_messages bob)
CAROL=$(dst_messages carol)

# --- one 50 MB message ---------------------------------------------------------------

say "bench: one 50 MB message"
"$LIB_PYTHON" "$GEN" --seed "$SEED" --count 1 --folder INBOX --scale 0.01 \
	--big 52428800 --maildir "$MAILDIR_SRC/big/Maildir" -q || exit 1
own_mail
BIG_SYNCD=skipped
BIG_BYTES=$(du -sb "$MAILDIR_SRC/big/Maildir" | cut -f1)
if [ "$WITH_SYNCD" = 1 ]; then
	LAST_BYTES=$BIG_BYTES
	timed "ferry-syncd 50 MB message" 2 "$SYNCD" -c "$T/syncd/big.conf" --once
	BIG_SYNCD="$LAST_RSS MB (exit $LAST_RC)"
fi
LAST_BYTES=$BIG_BYTES
timed "mbsync 50 MB message" 2 mbsync -c "$T/mbsync/big.rc" -q copy
BIG_MBSYNC="$LAST_RSS MB (exit $LAST_RC)"

# --- no-op delta against pre-forked Dovecot processes -------------------------------------

# A no-op pass is mostly the servers' login: with Dovecot's defaults each
# connection waits for a new imap-login and a new imap process to be
# spawned.  Dovecot's documented "high-performance" settings keep them
# ready, as a busy legacy host would; the same two no-op rows again:
say "bench: no-op delta, Dovecot with pre-forked login and imap processes"
for n in src dst; do
	v=DOVECOT_CONF_$n
	cat >>"${!v}" <<'EOF'
service imap-login {
  service_count = 0
  process_min_avail = 2
}
service imap {
  process_min_avail = 4
}
EOF
	doveadm_cmd "$n" reload || exit 1
done
sleep 1
noop_rows ", pre-forked"
SYNCD_NOOP_PF=$SYNCD_NOOP
MBSYNC_NOOP_PF=$MBSYNC_NOOP

# --- a destination slow to APPEND: Courier-IMAP ----------------------------------------

# Courier has no MULTIAPPEND (one APPEND a message, each waiting for its
# "+") and leaves Nagle's algorithm on; ferry-syncd acknowledges its short
# answers at once and opens connection pairs from the measured cost per
# message (syncd/sync_pairs.c).  The same full copy of alice's mailbox
# into Courier (lib_servers.sh; root, unpacked by install-deps.sh), by
# ferry-syncd and by mbsync; skipped where Courier cannot run.
COURIER_SYNCD= COURIER_MBSYNC= COURIER_PAIRS=
if [ "${BENCH_COURIER:-1}" = 1 ] && why=$(have_courier); then
	say "bench: full copy into Courier-IMAP"
	COURIER_NAME=cou start_courier frank:pass gina:pass || exit 1
	COU=$IMAP_PORT_cou
	printf 'alice pass frank pass\n' >"$T/syncd/accounts.cou"
	chmod 600 "$T/syncd/accounts.cou"
	syncd_conf "$T/syncd/cou.conf" "$T/syncd/accounts.cou" "$T/syncd/state-cou"
	sed -i -e "s#^destination = .*#destination = imap://127.0.0.1:$COU?tls=none#" \
		-e 's/^log_level = notice/log_level = info/' "$T/syncd/cou.conf"
	if [ "$WITH_SYNCD" = 1 ]; then
		LAST_BYTES=$FLOOR_BYTES
		timed "ferry-syncd full -> Courier" "$SRC_MSGS" "$SYNCD" -c "$T/syncd/cou.conf" --once
		COURIER_SYNCD=$LAST_WALL
		COURIER_PAIRS=$(grep -c "one more connection pair" "$T/log/bench-runs.log")
	fi
	mbsync_conf "$T/mbsync/cou.rc" alice gina "$T/mbsync/state-cou"
	# Courier keeps every folder below its "INBOX." namespace
	sed -i -e "s/^Port $DST\$/Port $COU/" \
		-e 's/^IMAPStore dst$/IMAPStore dst\nPath INBOX./' "$T/mbsync/cou.rc"
	LAST_BYTES=$FLOOR_BYTES
	timed "mbsync full -> Courier" "$SRC_MSGS" mbsync -c "$T/mbsync/cou.rc" -q copy
	COURIER_MBSYNC=$LAST_WALL
else
	say "bench: no Courier row: ${why:-BENCH_COURIER=0}"
fi

# --- the table ------------------------------------------------------------------------

echo
echo "ferry-syncd vs mbsync on loopback: $SRC_MSGS messages, $(echo "scale=1; $SRC_BYTES / 1000000" | bc) MB on disk, $(nproc) CPUs"
printf '%-30s %7s %8s %8s %8s %7s %7s %9s %s\n' run msgs MB "wall s" "msgs/s" "MB/s" "CPU s" "RSS MB" exit
for r in "${ROWS[@]}"; do
	IFS='|' read -r name msgs bytes wall cpu rss rc <<<"$r"
	if [ "$msgs" = skipped ]; then
		printf '%-30s %7s\n' "$name" "(skipped)"
		continue
	fi
	awk -v n="$name" -v m="$msgs" -v b="$bytes" -v w="$wall" -v c="$cpu" \
		-v r="$rss" -v rc="$rc" 'BEGIN {
		mb = b / 1e6
		printf "%-30s %7d %8.1f %8.2f %8s %7s %7.2f %9.1f %s\n", n, m, mb, w,
			(w > 0 && m > 0) ? sprintf("%.0f", m / w) : "-",
			(w > 0 && b > 0) ? sprintf("%.1f", mb / w) : "-", c, r,
			rc == 0 ? "0" : rc
	}'
done
if [ "$WITH_SYNCD" = 1 ]; then
	awk -v a="$SYNCD_FULL" -v b="$MBSYNC_FULL" -v c="$SYNCD_NOOP_DEF" \
		-v d="$MBSYNC_NOOP_DEF" -v e="$SYNCD_DELTA" -v f="$MBSYNC_DELTA" \
		-v g="$SYNCD_NOOP_PF" -v h="$MBSYNC_NOOP_PF" \
		-v k="$SYNCD_NOOP_DAEMON" 'BEGIN {
		printf "\nwall time ferry-syncd / mbsync: full %.2f, no-op delta %.2f (pre-forked Dovecot %.2f; daemon pass %s), +100 delta %.2f\n",
			a / b, c / d, g / h, k == "" ? "-" : sprintf("%.2f", k / d), e / f
		printf "(goals: full <= 0.50, no-op delta <= 0.50)\n"
	}'
	[ -z "$COURIER_SYNCD" ] || [ -z "$COURIER_MBSYNC" ] ||
		awk -v a="$COURIER_SYNCD" -v b="$COURIER_MBSYNC" 'BEGIN {
		printf "full copy into Courier-IMAP, ferry-syncd / mbsync: %.2f\n", a / b }'
	[ -z "$COURIER_SYNCD" ] ||
		echo "connection pairs ferry-syncd added for Courier from the measured APPEND cost: ${COURIER_PAIRS:-0}"
fi
echo
echo "messages: source $SRC_NOW, ferry-syncd's destination $BOB, mbsync's destination $CAROL"
[ -z "${SYNCD_VERDICT:-}" ] || echo "ferry-syncd's verdict after the full pass: $SYNCD_VERDICT"
[ "$WITH_SYNCD" = 0 ] || [ "$BOB" = "$SRC_NOW" ] ||
	echo "WARNING: ferry-syncd's destination does not hold every source message"
[ "$CAROL" = "$SRC_NOW" ] ||
	echo "WARNING: mbsync's destination does not hold every source message"
echo "peak RSS copying one 50 MB message: ferry-syncd $BIG_SYNCD, mbsync $BIG_MBSYNC (goal: ferry-syncd < 50 MB)"
exit 0
