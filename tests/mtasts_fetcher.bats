#!/usr/bin/env bats
# MTA-STS: the fetcher program as deliver sees it when it fails
# (deliver/deliver_mtasts_fetch.c). deliver runs daemon_directory/
# mtasts-fetch when a policy is due; here daemon_directory is a copy of
# the build's programs in which mtasts-fetch is missing, not executable,
# or a program that never answers. Each time the policy counts as a
# fetch that failed (a log line that says why, TLS-RPT's
# sts-policy-fetch-error, the negative cache), the mail goes as without
# a policy (RFC 8461 5.1), and deliver is never killed.
# DNS from dnsmasq, the MX is smtp-sink; jobs through deliver's socket
# (tests/helpers/deliver-job). No HTTPS server: no fetch gets that far.

load helpers/suite
load helpers/peers

setup() {
	peers_setup
	# The build's programs, by link, in a daemon_directory of our own.
	mkdir -p "$T/daemons"
	local p
	for p in "$BUILD"/*; do
		[ -f "$p" ] && [ -x "$p" ] && ln -s "$p" "$T/daemons/${p##*/}"
	done
	rm -f "$T/daemons/mtasts-fetch"
	chmod 755 "$T/daemons"
	suite_conf daemon_directory "$T/daemons"
}

teardown() {
	peers_teardown
}

# start_suite DOMAIN: DNS for DOMAIN (an MX, an _mta-sts record, an
# address for its policy host), the sink as its MX, then the suite.
start_suite() {
	SINK_PORT=$(free_port)
	start_sink sink "127.0.0.1:$SINK_PORT"
	start_dnsmasq --host-record="mx.$1,127.0.0.1" \
		--host-record="mta-sts.$1,127.0.0.1" \
		--mx-host="$1,mx.$1,10" \
		"--txt-record=_mta-sts.$1,v=STSv1; id=f1"
	suite_start
}

# delivered_without_policy DOMAIN WHY: one job for DOMAIN is delivered,
# its policy a failed fetch for WHY (a regular expression).
delivered_without_policy() {
	run deliver_job --nexthop "$1:$SINK_PORT" --from a@example.org \
		--to "r@$1"
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -E "$(last_qid): MTA-STS policy of $1 cannot be had: $2" "$T/log"
	grep -q "$(last_qid): MTA-STS policy of $1: not fetched again for 300s" "$T/log"
	grep -q '^postern-mta-sts-failed 1 f1 ' "$T/queue/tls/mta-sts/+$1"
	cat "$T"/queue/tls/tlsrpt/* | grep "$1" | grep -q 'sts-policy-fetch-error'
	! grep -E 'service deliver: (process|zygote) [0-9]+ (killed by signal|exit status)' "$T/log"
}

@test "MTA-STS: a missing fetcher is a failed fetch, with a log line that names it" {
	start_suite missing.test
	delivered_without_policy missing.test \
		"cannot run $T/daemons/mtasts-fetch: No such file or directory"
	# Said at each deliver's start too (the one above had started).
	grep -q "cannot open $T/daemons/mtasts-fetch: No such file or directory: MTA-STS policies cannot be fetched" "$T/log"
}

@test "MTA-STS: a fetcher that cannot be executed is a failed fetch" {
	cp "$BUILD/mtasts-fetch" "$T/daemons/mtasts-fetch"
	chmod 644 "$T/daemons/mtasts-fetch"
	start_suite noexec.test
	delivered_without_policy noexec.test \
		"cannot run $T/daemons/mtasts-fetch: Permission denied"
}

@test "MTA-STS: a fetcher that never answers is killed at smtp_mta_sts_timeout" {
	command -v cc >/dev/null || skip "no C compiler for the hanging fetcher"
	printf '#include <unistd.h>\nint main(void) { for (;;) pause(); }\n' \
		> "$T/hang.c"
	cc -o "$T/daemons/mtasts-fetch" "$T/hang.c"
	chmod 755 "$T/daemons/mtasts-fetch"
	suite_conf smtp_mta_sts_timeout 2s
	start_suite hang.test
	delivered_without_policy hang.test \
		"mtasts-fetch: no answer within 2000 ms: killed"
	# Killed and reaped: no process of the suite runs it any more.
	local pid
	for pid in $(tree_pids "$(master_pid)"); do
		[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != "$T/daemons/mtasts-fetch" ]
	done
}
