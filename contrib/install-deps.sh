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
