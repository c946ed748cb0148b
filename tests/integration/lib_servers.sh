# lib_servers.sh - Cyrus IMAP and Courier-IMAP as private test servers on
# 127.0.0.1 (sourced by lib.sh; uses its spawn, free_port and $T).
#
# cyrus-imapd and courier-imap conflict with dovecot-imapd, so
# contrib/install-deps.sh unpacks them into $MAILFERRY_TEST_SERVERS
# (/usr/local/lib/mailferry-test) instead of installing them; their
# libraries and helpers (cyrus-common, sasl2-bin, courier-base,
# courier-authlib, courier-authlib-userdb) are installed normally.  Both
# need root (Cyrus's master changes to the cyrus user; Courier runs in a
# private mount namespace): have_cyrus / have_courier say whether a test
# can use them, and why not.
#
#   CYRUS_NAME=N start_cyrus USER:PASS...
#       a Cyrus 3.6 master with imapd on a free port: imapd.conf and
#       cyrus.conf of its own under $T/cyrus/N, users in a sasldb there,
#       "/" as the separator (unixhierarchysep), an admin "cyrusadmin"
#       (password "admin") that creates each user's INBOX.  CYRUS_EXTRA:
#       more imapd.conf lines (e.g. "munge8bit: no").  CYRUS_QUOTA=KB:
#       a STORAGE quota on every user's INBOX, set by the admin.
#       Sets IMAP_PORT_N (and IMAP_PORT).
#   cyrus_setquota NAME USER KB - change a user's STORAGE quota
#   COURIER_NAME=N start_courier USER:PASS...
#       authdaemond (userdb) and couriertcpd + imaplogin + imapd on a free
#       port, in a private mount namespace where $T/courier/N/etc and
#       .../run are bind-mounted over the compiled-in /etc/courier and
#       /run/courier; maildirs under $T/courier/N/mail owned by mail.
#       "." as the separator with the "INBOX." namespace, as Courier has
#       it.  Sets IMAP_PORT_N (and IMAP_PORT).

MAILFERRY_TEST_SERVERS=${MAILFERRY_TEST_SERVERS:-/usr/local/lib/mailferry-test}
CYRUS_BIN=/usr/lib/cyrus/bin
CYRUS_IMAPD=$MAILFERRY_TEST_SERVERS/cyrus-imapd/usr/lib/cyrus/bin/imapd
COURIER_LOGIN=$MAILFERRY_TEST_SERVERS/courier-imap/usr/lib/courier/courier/imaplogin
COURIER_IMAPD=$MAILFERRY_TEST_SERVERS/courier-imap/usr/bin/imapd

# have_cyrus - 0 when start_cyrus can work; else the reason on stdout
have_cyrus() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "Cyrus's master runs as the cyrus user: needs root"
	elif [ ! -x "$CYRUS_IMAPD" ]; then
		echo "no Cyrus imapd at $CYRUS_IMAPD (contrib/install-deps.sh unpacks it)"
	elif [ ! -x "$CYRUS_BIN/master" ] || ! command -v saslpasswd2 >/dev/null; then
		echo "cyrus-common or sasl2-bin not installed (contrib/install-deps.sh)"
	elif ! id cyrus >/dev/null 2>&1; then
		echo "no cyrus user (cyrus-common not installed)"
	else
		return 0
	fi
	return 1
}

# have_courier - 0 when start_courier can work; else the reason on stdout
have_courier() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "Courier needs a private mount namespace: needs root"
	elif [ ! -x "$COURIER_IMAPD" ] || [ ! -x "$COURIER_LOGIN" ]; then
		echo "no Courier imapd under $MAILFERRY_TEST_SERVERS (contrib/install-deps.sh unpacks it)"
	elif ! command -v couriertcpd >/dev/null || ! command -v makeuserdb >/dev/null ||
		[ ! -x /usr/lib/courier/courier-authlib/authdaemond ]; then
		echo "courier-base, courier-authlib or courier-authlib-userdb not installed"
	elif ! unshare -m --propagation private true 2>/dev/null; then
		echo "unshare -m is not allowed here"
	else
		return 0
	fi
	return 1
}

# _lib_wait_imap PORT PID WHAT LOG - until PORT greets with "* OK", or fail
_lib_wait_imap() {
	local port=$1 pid=$2 what=$3 log=$4 i line
	for ((i = 0; i < 200; i++)); do
		if ! _lib_alive "$pid"; then
			echo "$what exited:" >&2
			tail -n 20 "$log" >&2 2>/dev/null
			return 1
		fi
		if exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
			line=
			read -r -t 5 line <&3
			exec 3<&- 3>&-
			case $line in
			"* OK"*) return 0 ;;
			esac
		fi
		sleep 0.05
	done
	echo "$what does not answer on port $port" >&2
	tail -n 20 "$log" >&2 2>/dev/null
	return 1
}

# _lib_py_imap PORT USER PASS CODE - run Python CODE with an imaplib
# connection "m" logged in; exit status 0 when CODE ran without error
_lib_py_imap() {
	"$LIB_PYTHON" - "$@" <<'PYEOF'
import imaplib, sys
port, user, password, code = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
m = imaplib.IMAP4("127.0.0.1", port, timeout=20)
m.login(user, password)
ok = True
try:
    exec(code)
except Exception as e:
    print("error: %s" % e, file=sys.stderr)
    ok = False
try:
    m.logout()
except Exception:
    pass
sys.exit(0 if ok else 1)
PYEOF
}

start_cyrus() {
	local name=${CYRUS_NAME:-cyrus} d port u why
	case $name in
	*[!A-Za-z0-9_]* | "")
		echo "start_cyrus: bad CYRUS_NAME '$name'" >&2
		return 1
		;;
	esac
	why=$(have_cyrus) || { echo "start_cyrus: $why" >&2; return 1; }
	d=$T/cyrus/$name
	[ ! -e "$d" ] || { echo "start_cyrus: instance $name already exists" >&2; return 1; }
	mkdir -p "$d/conf" "$d/spool" "$d/run" || return 1
	port=$(free_port) || return 1
	[ $# -gt 0 ] || set -- alice:pass bob:pass
	cat >"$d/imapd.conf" <<EOF
configdirectory: $d/conf
defaultpartition: default
partition-default: $d/spool
admins: cyrusadmin
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $d/sasldb2
sasl_mech_list: PLAIN LOGIN
unixhierarchysep: yes
lmtpsocket: $d/run/lmtp
idlesocket: $d/run/idle
notifysocket: $d/run/notify
mboxname_lockpath: $d/run/lock
proc_path: $d/run/proc
syslog_prefix: cyrus-$name
${CYRUS_EXTRA:-}
EOF
	cat >"$d/cyrus.conf" <<EOF
START {
  recover cmd="$CYRUS_BIN/ctl_cyrusdb -C $d/imapd.conf -r"
}
SERVICES {
  imap cmd="$CYRUS_IMAPD -C $d/imapd.conf" listen="127.0.0.1:$port" prefork=0 maxchild=50
}
EVENTS {
}
EOF
	# The realm is the host name, as imapd looks users up.
	echo admin | saslpasswd2 -p -c -f "$d/sasldb2" cyrusadmin || return 1
	for u in "$@"; do
		printf '%s' "${u#*:}" | saslpasswd2 -p -c -f "$d/sasldb2" "${u%%:*}" || return 1
	done
	chown -R cyrus:mail "$d"
	chmod 711 "$T" "$T/cyrus" 2>/dev/null
	spawn "cyrus-$name" "$CYRUS_BIN/master" -C "$d/imapd.conf" -M "$d/cyrus.conf" \
		-p "$d/run/master.pid" -D
	eval "_lib_cyrus_pid_$name=\$SPAWN_PID"
	_lib_wait_imap "$port" "$SPAWN_PID" "start_cyrus: master $name" \
		"$T/log/cyrus-$name.log" || return 1
	for u in "$@"; do
		_lib_py_imap "$port" cyrusadmin admin "
r = m.create('user/${u%%:*}')
assert r[0] == 'OK', r
q = '${CYRUS_QUOTA:-}'
if q:
    r = m.setquota('user/${u%%:*}', '(STORAGE %s)' % q)
    assert r[0] == 'OK', r
" || { echo "start_cyrus: cannot create user ${u%%:*}" >&2; return 1; }
	done
	IMAP_PORT=$port
	eval "IMAP_PORT_$name=\$port CYRUS_DIR_$name=\$d"
	export IMAP_PORT "IMAP_PORT_$name" "CYRUS_DIR_$name"
}

cyrus_setquota() {
	local v=IMAP_PORT_$1
	_lib_py_imap "${!v}" cyrusadmin admin "
r = m.setquota('user/$2', '(STORAGE $3)')
assert r[0] == 'OK', r"
}

stop_cyrus() {
	local name=${1:-${CYRUS_NAME:-cyrus}} v
	v=_lib_cyrus_pid_$name
	[ -n "${!v:-}" ] && stop_pid "${!v}"
	eval "$v="
}

start_courier() {
	local name=${COURIER_NAME:-courier} d port u user pass why
	case $name in
	*[!A-Za-z0-9_]* | "")
		echo "start_courier: bad COURIER_NAME '$name'" >&2
		return 1
		;;
	esac
	why=$(have_courier) || { echo "start_courier: $why" >&2; return 1; }
	d=$T/courier/$name
	[ ! -e "$d" ] || { echo "start_courier: instance $name already exists" >&2; return 1; }
	mkdir -p "$d/etc" "$d/run/authdaemon" "$d/mail" || return 1
	port=$(free_port) || return 1
	[ $# -gt 0 ] || set -- alice:pass bob:pass
	sed 's/^authmodulelist=.*/authmodulelist="authuserdb"/' /etc/courier/authdaemonrc \
		>"$d/etc/authdaemonrc" || return 1
	: >"$d/etc/userdb"
	chmod 600 "$d/etc/userdb"
	chmod 711 "$T" "$T/courier" "$d" 2>/dev/null
	for u in "$@"; do
		user=${u%%:*} pass=${u#*:}
		mkdir -p "$d/mail/$user"
		maildirmake.courier "$d/mail/$user/Maildir" || return 1
		userdb -f "$d/etc/userdb" "$user" set uid="$(id -u mail)" gid="$(id -g mail)" \
			home="$d/mail/$user" mail="$d/mail/$user/Maildir" || return 1
		printf '%s\n' "$pass" | userdbpw | userdb -f "$d/etc/userdb" "$user" set systempw ||
			return 1
	done
	chown -R mail:mail "$d/mail"
	makeuserdb -f "$d/etc/userdb" || return 1
	cat >"$d/run.sh" <<EOF
#!/bin/sh
# Courier's /etc/courier and /run/courier paths are compiled in: this
# instance's own directories take their place in a private namespace.
set -e
mount --bind "$d/etc" /etc/courier
mount --bind "$d/run" /run/courier
cd /
set -a
. /etc/courier/authdaemonrc
/usr/lib/courier/courier-authlib/authdaemond &
for i in \$(seq 100); do [ -S /run/courier/authdaemon/socket ] && break; sleep 0.05; done
IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
IMAP_KEYWORDS=1
IMAP_ACL=1
IMAP_EMPTYTRASH=
IMAP_MOVE_EXPUNGE_TO_TRASH=0
IMAP_UMASK=022
IMAP_ULIMITD=131072
MAILDIRPATH=Maildir
${COURIER_EXTRA:-}
exec couriertcpd -address=127.0.0.1 -maxprocs=60 -maxperip=60 -nodnslookup \\
	-noidentlookup $port "$COURIER_LOGIN" "$COURIER_IMAPD" Maildir
EOF
	chmod 755 "$d/run.sh"
	spawn "courier-$name" unshare -m --propagation private "$d/run.sh"
	eval "_lib_courier_pid_$name=\$SPAWN_PID"
	_lib_wait_imap "$port" "$SPAWN_PID" "start_courier: couriertcpd $name" \
		"$T/log/courier-$name.log" || return 1
	IMAP_PORT=$port
	eval "IMAP_PORT_$name=\$port COURIER_DIR_$name=\$d"
	export IMAP_PORT "IMAP_PORT_$name" "COURIER_DIR_$name"
}

stop_courier() {
	local name=${1:-${COURIER_NAME:-courier}} v
	v=_lib_courier_pid_$name
	[ -n "${!v:-}" ] && stop_pid "${!v}"
	eval "$v="
}
