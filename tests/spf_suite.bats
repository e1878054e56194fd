#!/usr/bin/env bats
# SPF (RFC 7208, issue 15): the test suites of the RFCs, run as data.
# Debian's python3-spf ships the openspf.org suites of RFC 7208 and RFC
# 4408 as YAML; tests/helpers/spf_suite.py serves each scenario's zonedata
# from tests/helpers/spf_suite_dns.py (an authoritative DNS server, one
# loopback port per scenario) and compares every test's expected result
# with `postern spf check` (mail/spf_check.c) through dns_servers. The
# driver lists the known differences, each with its reason; any other
# mismatch fails.
#
# Time: the suites' TIMEOUT names get no reply, and the resolver's timers
# with dns_servers are fixed in mail/dns.c (2 s, 2 tries: 6 s for each
# unanswered query; no key sets them). The driver runs 8 tests at a time,
# so those waits overlap: about 8 s for both suites side by side.

load helpers/suite

SUITES=/usr/share/doc/python3-spf

setup() {
	suite_init
}

teardown() {
	rm -rf "$T"
}

# counts FILE NAME: print the driver's summary to the test output.
counts() {
	local line
	line=$(tail -n 1 "$1")
	echo "# $2: $line" >&3
}

@test "postern passes the RFC 7208 and RFC 4408 SPF test suites (python3-spf's YAML)" {
	[ -r "$SUITES/rfc7208-tests.yml.gz" ] ||
		skip "no $SUITES/rfc7208-tests.yml.gz (apt-get install python3-spf)"
	/usr/bin/python3 -c 'import yaml' 2>/dev/null ||
		skip "no yaml module for /usr/bin/python3 (python3-yaml)"
	local helper="$BATS_TEST_DIRNAME/helpers/spf_suite.py" pid4408= rc4408=0
	if [ -r "$SUITES/rfc4408-tests.yml.gz" ]; then
		/usr/bin/python3 "$helper" "$POSTERN" "$T/conf" \
			"$SUITES/rfc4408-tests.yml.gz" rfc4408 > "$T/rfc4408" 2>&1 &
		pid4408=$!
	fi
	run /usr/bin/python3 "$helper" "$POSTERN" "$T/conf" \
		"$SUITES/rfc7208-tests.yml.gz" rfc7208
	echo "$output" > "$T/rfc7208"
	if [ -n "$pid4408" ]; then
		wait "$pid4408" || rc4408=$?
	fi
	grep -v '^ok ' "$T/rfc7208" || true
	counts "$T/rfc7208" rfc7208
	[ "$status" -eq 0 ]
	# Every test ran: the suite holds over 200.
	[[ "$(tail -n 1 "$T/rfc7208")" =~ ^tests\ ([0-9]+)\  ]]
	[ "${BASH_REMATCH[1]}" -ge 200 ]
	if [ -n "$pid4408" ]; then
		grep -v '^ok ' "$T/rfc4408" || true
		counts "$T/rfc4408" rfc4408
		[ "$rc4408" -eq 0 ]
		[[ "$(tail -n 1 "$T/rfc4408")" =~ ^tests\ ([0-9]+)\  ]]
		[ "${BASH_REMATCH[1]}" -ge 150 ]
	fi
}
