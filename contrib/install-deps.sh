#!/bin/sh
# install-deps.sh - install every Debian 12 package mailferry's build and
# test suite need (the list is contrib/packages.txt).  Run as root.
set -e
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
# Postfix is installed only for smtp-sink/smtp-source and the benchmark's
# reference instance: never ask, never configure a system mail service.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq

# The suite runs its own private servers; no package may start a system
# daemon while it is installed (a policy-rc.d that says "no", removed
# again afterwards unless one was there before).
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# mailferry install-deps.sh: start nothing while installing\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=1
fi
trap '[ -z "$own_policy" ] || rm -f "$policy"' EXIT
# Services of packages this script installs for the tests only: they are
# kept from starting at boot too (a service that was there before is left
# alone).
boot_off=
for unit in cyrus-common:cyrus-imapd courier-authlib:courier-authdaemon; do
	dpkg -s "${unit%%:*}" >/dev/null 2>&1 || boot_off="$boot_off ${unit#*:}"
done
# shellcheck disable=SC2046
apt-get install -y -q --no-install-recommends $(grep -v '^#' "$here/packages.txt")
for unit in $boot_off; do
	if command -v systemctl >/dev/null; then
		systemctl disable --quiet "$unit" 2>/dev/null || true
	fi
	update-rc.d -f "$unit" remove >/dev/null 2>&1 || true
done

# Cyrus's and Courier's IMAP servers: cyrus-imapd and courier-imap both
# conflict with dovecot-imapd (each provides imap-server), so they are
# unpacked, not installed, into a directory of their own where the
# suite's tests/integration/lib_servers.sh finds them.  Their libraries
# and helpers come from packages.txt (cyrus-common, courier-base,
# courier-authlib).
servers=/usr/local/lib/mailferry-test
mkdir -p "$servers/debs"
for pkg in cyrus-imapd courier-imap; do
	(cd "$servers/debs" && rm -f "${pkg}"_*.deb && apt-get download -q "$pkg")
	rm -rf "${servers:?}/$pkg"
	dpkg-deb -x "$servers/debs/${pkg}"_*.deb "$servers/$pkg"
done

# promtool checks the metrics exposition and the alerting rules in the
# tests.  It comes from Debian's prometheus package, whose server must
# not start on this host: only the one binary is taken from the .deb.
if ! command -v promtool >/dev/null 2>&1; then
	tmp=$(mktemp -d)
	chmod 0755 "$tmp"	# apt downloads as _apt
	if (cd "$tmp" && apt-get download -q prometheus >/dev/null &&
	    dpkg-deb -x prometheus_*.deb x &&
	    install -m 0755 x/usr/bin/promtool /usr/local/bin/promtool); then
		echo "install-deps: promtool installed in /usr/local/bin"
	else
		echo "install-deps: promtool not installed (its checks skip)" >&2
	fi
	rm -rf "$tmp"
fi
