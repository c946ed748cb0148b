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
# shellcheck disable=SC2046
apt-get install -y -q --no-install-recommends $(grep -v '^#' "$here/packages.txt")
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
