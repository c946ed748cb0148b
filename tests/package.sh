#!/bin/bash
# package.sh - check the ways mailferry is installed, from a clean tree:
#   - plain `autoreconf -fi` (not autogen.sh) gives a tree where
#     configure, make and make dist work;
#   - make install puts the programs, the man pages, the systemd units
#     (with configure's paths) and the configuration in place, and
#     make uninstall takes them away again;
#   - dpkg-buildpackage builds the Debian package from the release
#     tarball, with the contents, conffile and maintainer scripts an admin
#     expects, and lintian reports no error.
# Run by tests/suite.sh --package.  Needs git, debhelper and lintian
# (contrib/packages.txt).  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
src=$PWD
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
not_ok() { fail=$((fail + 1)); echo "not ok - $*"; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else not_ok "$what"; fi; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

for tool in git autoreconf dpkg-buildpackage dh lintian; do
	command -v "$tool" >/dev/null ||
		{ not_ok "$tool is installed (contrib/install-deps.sh)"; finish; }
done
T=$(mktemp -d /tmp/mailferry-package.XXXXXX)
trap 'rm -rf "$T"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)

# A tree as a clean checkout has it: tracked files only, none generated.
mkdir "$T/tree"
(git ls-files -z --cached --others --exclude-standard | grep -zv '^build' |
	xargs -0 tar -cf - | tar -xf - -C "$T/tree") ||
	{ not_ok "copy the tracked files"; finish; }
cd "$T/tree"
check "autoreconf -fi works without autogen.sh" autoreconf -fi
check "autoreconf -fi installs build-aux/tap-driver.sh" test -f build-aux/tap-driver.sh
mkdir build && cd build
check "configure" ../configure --enable-werror
check "make" make -j"$jobs"
check "make dist" make dist
tarball=$(ls mailferry-*.tar.gz 2>/dev/null | head -1)
check "make dist leaves a tarball" test -n "$tarball"

# make install with the default prefix: everything under DESTDIR, paths in
# the units follow configure.
dest=$T/dest
check "make install" make install DESTDIR="$dest"
unitdir=$(sed -n 's/^systemdsystemunitdir = //p' Makefile)
prefix=$(sed -n 's/^prefix = //p' Makefile)
unitdir=${unitdir//\$\{prefix\}/$prefix}
for f in "$prefix/sbin/ferry-relay" "$prefix/sbin/ferry-syncd" "$prefix/sbin/ferryctl" \
	"$prefix/share/man/man5/mailferry.conf.5" "$prefix/share/man/man8/ferryctl.8" \
	"$unitdir/ferry-relay.service" "$unitdir/ferry-syncd.service" \
	"$prefix/etc/mailferry/mailferry.conf" "$prefix/etc/mailferry/mailferry.conf.example"; do
	check "make install puts ${f#"$prefix"/}" test -f "$dest$f"
done
check "the relay unit starts the installed program with the installed configuration" \
	grep -qxF "ExecStart=$prefix/sbin/ferry-relay -d -c $prefix/etc/mailferry/mailferry.conf" \
	"$dest$unitdir/ferry-relay.service"
check "the syncd unit starts the installed program" \
	grep -qxF "ExecStart=$prefix/sbin/ferry-syncd -d -c $prefix/etc/mailferry/mailferry.conf" \
	"$dest$unitdir/ferry-syncd.service"
check "no unit is left with an unsubstituted path" \
	bash -c "! grep -E '@(sbindir|sysconfdir|localstatedir)@' '$dest$unitdir'/*.service"
check "the installed configuration keeps its state under localstatedir" \
	grep -qxF "state_dir = $prefix/var/lib/mailferry" "$dest$prefix/etc/mailferry/mailferry.conf"
check "the installed configuration is valid for the relay" \
	"$dest$prefix/sbin/ferry-relay" -t -c "$dest$prefix/etc/mailferry/mailferry.conf"
echo "; the admin's own edit" >>"$dest$prefix/etc/mailferry/mailferry.conf"
check "a second make install" make install DESTDIR="$dest"
check "make install keeps a configuration the admin edited" \
	grep -qxF "; the admin's own edit" "$dest$prefix/etc/mailferry/mailferry.conf"
check "make uninstall" make uninstall DESTDIR="$dest"
check "make uninstall leaves only the edited configuration" \
	bash -c "test \"\$(find '$dest' -type f)\" = '$dest$prefix/etc/mailferry/mailferry.conf'"

# The Debian package, from the release tarball as a packager gets it.
mkdir "$T/deb"
tar -xzf "$tarball" -C "$T/deb" || not_ok "unpack $tarball"
cd "$T/deb"/mailferry-*/ || finish
if dpkg-buildpackage -us -uc -b >"$T/deb/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b"
else
	not_ok "dpkg-buildpackage -us -uc -b"; tail -30 "$T/deb/build.log"; finish
fi
cd "$T/deb"
deb=$(ls mailferry_*_*.deb | head -1)
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >contents
for f in /usr/sbin/ferry-relay /usr/sbin/ferry-syncd /usr/sbin/ferryctl \
	/lib/systemd/system/ferry-relay.service /lib/systemd/system/ferry-syncd.service \
	/etc/mailferry/mailferry.conf /usr/share/man/man8/ferry-relay.8.gz \
	/usr/share/man/man5/mailferry.conf.5.gz /usr/share/doc/mailferry/copyright; do
	check "the package holds $f" grep -qxF "$f" contents
done
dpkg-deb -e "$deb" control
check "/etc/mailferry/mailferry.conf is a conffile" grep -qxF /etc/mailferry/mailferry.conf control/conffiles
check "postinst creates the system user mailferry" grep -q 'adduser --system --group --home /var/lib/mailferry' control/postinst
check "postinst gives /var/lib/mailferry to mailferry" \
	grep -q 'install -d -o mailferry -g mailferry -m 0700 /var/lib/mailferry' control/postinst
check "postinst enables both units" \
	bash -c "grep -q \"enable 'ferry-relay.service'\" control/postinst && grep -q \"enable 'ferry-syncd.service'\" control/postinst"
check "postinst does not start them" bash -c "! grep -q 'deb-systemd-invoke .*start' control/postinst"
dpkg-deb -x "$deb" root
check "the packaged configuration drops root to mailferry" grep -qxF "user = mailferry" root/etc/mailferry/mailferry.conf
check "the packaged units run /usr/sbin" grep -qxF \
	"ExecStart=/usr/sbin/ferry-relay -d -c /etc/mailferry/mailferry.conf" root/lib/systemd/system/ferry-relay.service
check "the packaged programs read /etc/mailferry/mailferry.conf by default" \
	grep -qaF /etc/mailferry/mailferry.conf root/usr/sbin/ferryctl
check "the packaged relay accepts the packaged configuration" \
	root/usr/sbin/ferry-relay -t -c root/etc/mailferry/mailferry.conf
lintian --fail-on error "$deb" >lintian.out 2>&1
rc=$?
sed 's/^/# lintian: /' lintian.out
if [ $rc -eq 0 ]; then ok "lintian reports no error"; else not_ok "lintian reports no error"; fi
finish
