#!/bin/bash
# test_programs.sh - the three programs parse -c/-t/-h and refuse a bad
# configuration with exit status 2 and "file:line: why".
. "$top_srcdir/tests/integration/lib.sh"

# The example as shipped, except that its accounts file (which ferry-syncd
# -t reads too) is one made here.
example=$T/mailferry.conf
printf 'alice@old.example pw1 alice@new.example pw2\n' >"$T/accounts"
chmod 600 "$T/accounts"
sed "s|^accounts = .*|accounts = $T/accounts|" \
	"$top_srcdir/conf/mailferry.conf.example" >"$example"

# expect_exit CODE PATTERN DESC CMD... - exit status and output both match
expect_exit() {
	local want=$1 pattern=$2 desc=$3 out rc
	shift 3
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -eq "$want" ] && printf '%s\n' "$out" | grep -qF -- "$pattern"; then
		ok "$desc"
	else
		not_ok "$desc" "exit $rc (want $want), output: $out" "wanted: $pattern"
	fi
}

for prog in "$FERRY_RELAY" "$FERRY_SYNCD" "$FERRYCTL"; do
	name=$(basename "$prog")
	expect_exit 0 "usage: $name" "$name -h prints usage" "$prog" -h
	expect_exit 2 "usage: $name" "$name with a bad option exits 2" "$prog" -Z
	expect_exit 0 "is valid" "$name -t accepts the example configuration" \
		"$prog" -t -c "$example"
	if [ "$prog" = "$FERRY_SYNCD" ]; then
		sed "s|^accounts = .*|accounts = $T/nosuch|" "$example" >"$T/noacc.conf"
		expect_exit 2 "$T/nosuch" "$name -t names a missing accounts file" \
			"$prog" -t -c "$T/noacc.conf"
	fi

	printf '[relay]\ndomains = example.com\nbogus_key = 1\n' > "$T/unknown.conf"
	expect_exit 2 "$T/unknown.conf:3: unknown key \"bogus_key\" in [relay]" \
		"$name refuses an unknown key naming file and line" \
		"$prog" -t -c "$T/unknown.conf"

	printf '[relay]\ndomains = example.com\n\n[forward]\nretry_initial = 5 minutes\n' > "$T/baddur.conf"
	expect_exit 2 "$T/baddur.conf:5: [forward] retry_initial: bad duration" \
		"$name refuses a bad duration naming file and line" \
		"$prog" -t -c "$T/baddur.conf"

	expect_exit 2 "$T/missing.conf: No such file or directory" \
		"$name reports a missing configuration file" \
		"$prog" -t -c "$T/missing.conf"
done

printf '[forward]\nupstream = 127.0.0.1:2526\n' > "$T/nodomains.conf"
expect_exit 2 "[relay] domains is required" \
	"ferry-relay refuses a configuration without [relay] domains" \
	"$FERRY_RELAY" -t -c "$T/nodomains.conf"
expect_exit 0 "is valid" "ferryctl does not need [relay] domains" \
	"$FERRYCTL" -t -c "$T/nodomains.conf"

done_testing
