#!/bin/bash
# demo_sync.sh - the history half of the demo cutover, on loopback only.
#
# usage: contrib/demo_sync.sh [FERRY_SYNCD [FERRYCTL]]
#        (default: syncd/ferry-syncd and ctl/ferryctl under the current
#        directory; contrib/demo.sh runs it after the relay's part)
#
# Two private Dovecot instances play the old IMAP server (separator ".")
# and the new provider's (separator "/"); bench/gen_mailbox.py fills the
# old one with a few hundred messages in nested folders, "Sent Items" and
# a non-ASCII folder among them.  ferry-syncd copies the history (--once:
# one pass, the report), then new mail reaches the old mailbox and a delta
# pass copies exactly that; "ferryctl sync" shows the progress record.
# Everything lives in a temporary directory that is removed on exit
# (tests/integration/lib.sh's clean-up, also on Ctrl-C).
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SYNCD=${1:-syncd/ferry-syncd}
CTL=${2:-ctl/ferryctl}
for p in "$SYNCD" "$CTL"; do
	[ -x "$p" ] || { echo "demo: $p not found: build first" >&2; exit 1; }
done
SYNCD=$(cd "$(dirname "$SYNCD")" && pwd)/$(basename "$SYNCD")
CTL=$(cd "$(dirname "$CTL")" && pwd)/$(basename "$CTL")
command -v dovecot >/dev/null || PATH=$PATH:/usr/sbin
command -v dovecot >/dev/null ||
	{ echo "demo: dovecot is missing (sudo contrib/install-deps.sh)" >&2; exit 1; }

top_srcdir=$here/..
top_builddir=$(pwd)
export top_srcdir top_builddir
# lib.sh: $T (removed on exit), start_dovecot, doveadm_cmd, free_port.
. "$top_srcdir/tests/integration/lib.sh"
GEN=$top_srcdir/bench/gen_mailbox.py

if [ -t 1 ]; then
	B=$'\e[1m' D=$'\e[2m' N=$'\e[0m'
else
	B= D= N=
fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
show() {
	printf '%s$ %s%s\n' "$D" "$*" "$N"
	"$@" 2>&1 | sed 's/^/    /'
}

step "History: the old and the new IMAP server (two private Dovecots on 127.0.0.1)"
DOVECOT_NAME=old start_dovecot alice:secret-old >/dev/null || exit 1
DOVECOT_NAME=new DOVECOT_SEP=/ start_dovecot alice:secret-new >/dev/null || exit 1
MAIL_OLD=$T/dovecot/old/mail/alice/Maildir
"$LIB_PYTHON" "$GEN" --seed 7 --count 300 --scale 0.2 --quiet \
	--maildir "$MAIL_OLD" || exit 1
[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/old/mail"
doveadm_cmd old force-resync -u alice '*' || exit 1
echo "    old server 127.0.0.1:$IMAP_PORT_old (separator \".\"), new server 127.0.0.1:$IMAP_PORT_new (separator \"/\")"
echo "    alice's old mailbox: $(doveadm_cmd old mailbox status -u alice messages '*' |
	awk -F'messages=' '{ s += $2 } END { print s + 0 }') messages in $(doveadm_cmd old mailbox list -u alice | wc -l) folders"

mkdir -p "$T/syncd"
printf 'alice secret-old alice secret-new\n' >"$T/syncd/accounts"
chmod 600 "$T/syncd/accounts"
CONF=$T/syncd/mailferry.conf
cat >"$CONF" <<EOF
[global]
state_dir = $T/syncd/state
log = stderr
log_level = warning
[syncd]
source = imap://127.0.0.1:$IMAP_PORT_old?tls=none
destination = imap://127.0.0.1:$IMAP_PORT_new?tls=none
accounts = $T/syncd/accounts
EOF

step "D-7: ferry-syncd copies the history (one pass, then its report)"
show "$SYNCD" -c "$CONF" --once

step "New mail still lands in the old mailbox..."
"$LIB_PYTHON" "$GEN" --seed 8 --start 1000 --count 12 --scale 0.2 --quiet \
	--folder INBOX --maildir "$MAIL_OLD" || exit 1
[ "$(id -u)" -ne 0 ] || chown -R mail:mail "$T/dovecot/old/mail"
doveadm_cmd old force-resync -u alice INBOX || exit 1
echo "    12 new messages in the old INBOX"

step "...and a delta pass copies exactly those (unchanged folders cost one STATUS)"
show "$SYNCD" -c "$CONF" --once

step "What the admin sees: ferryctl sync"
show "$CTL" -c "$CONF" sync
printf '\n%sHistory done.%s Stopping both Dovecots, removing %s.\n' "$B" "$N" "$T"
