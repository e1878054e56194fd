#!/usr/bin/env bats
# MTA-STS when the policy cannot be fetched (RFC 8461 3.3, 5.1): the
# domain has an `_mta-sts` TXT record, but its policy host takes every
# connection and never answers (tests/helpers/mtasts_blackhole.py on
# 127.0.1.N:443, which counts the connections). deliver fetches it once,
# remembers the failure for smtp_mta_sts_negative_cache_time (the
# default, 5 minutes), and meanwhile delivers at once as without a
# policy; while one deliver process fetches, the others do not fetch
# too; TLS-RPT records one failure per fetch. After the window (the test
# moves the record's end into the past rather than wait, so that a slow
# machine cannot make it pass meanwhile), the next delivery fetches
# again.
# DNS from dnsmasq, the MX is smtp-sink; jobs through deliver's socket
# (tests/helpers/deliver-job). One suite start.

load helpers/suite
load helpers/peers

setup() {
	peers_setup
}

teardown() {
	peers_teardown
}

job() {
	deliver_job --nexthop "down.test:$SINK_PORT" --from a@example.org \
		--to "$1@down.test"
}

connects() {
	grep -c '^CONNECT' "$T/blackhole.out" || true
}

fetch_errors() {
	cat "$T"/queue/tls/tlsrpt/* 2>/dev/null |
		grep 'down\.test' | grep -c 'sts-policy-fetch-error' || true
}

@test "MTA-STS: a failed policy fetch is remembered for a while, shared by every deliver process, and tried again after" {
	[ "$(id -u)" -eq 0 ] || skip "port 443 needs root"
	/usr/bin/python3 "$BATS_TEST_DIRNAME/helpers/mtasts_blackhole.py" \
		--addr-file "$T/blackhole.addr" > "$T/blackhole.out" 2>&1 &
	PEER_PIDS+=($!)
	wait_for_file "$T/blackhole.addr" 10
	SINK_PORT=$(free_port)
	start_sink sink "127.0.0.1:$SINK_PORT"
	start_dnsmasq --host-record=mx.down.test,127.0.0.1 \
		--host-record=mta-sts.down.test,"$(cat "$T/blackhole.addr")" \
		--mx-host=down.test,mx.down.test,10 \
		"--txt-record=_mta-sts.down.test,v=STSv1; id=d1"
	# Wide enough for a machine under load: the five jobs below must
	# meet the first one's fetch (3 s, half of the timeout, for its TLS
	# handshake).
	suite_conf smtp_mta_sts_timeout 6s
	suite_conf deliver_processes 5
	suite_start

	# Five deliveries at once: one fetch (it waits its 3 s out), the
	# other four go on without a policy instead of fetching too.
	local i pids=()
	for i in 1 2 3 4 5; do
		job "p$i" > "$T/job$i.out" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	cat "$T"/job*.out
	[ "$(grep -c 'rcpt=0 S 2.0.0' "$T"/job*.out | awk -F: '{s += $2} END {print s}')" -eq 5 ]
	[ "$(connects)" -eq 1 ]
	[ "$(grep -c 'MTA-STS policy of down.test cannot be had' "$T/log")" -eq 1 ]
	grep -q 'MTA-STS policy of down.test: not fetched again for 300s' "$T/log"
	grep -q 'MTA-STS policy of down.test is being fetched by another deliver process: none for this delivery' "$T/log"
	[ "$(fetch_errors)" -eq 1 ]
	local record="$T/queue/tls/mta-sts/+down.test" until aged
	until=$(sed -n 's/^postern-mta-sts-failed 1 d1 \([0-9]*\)$/\1/p' "$record")
	[ "$until" -gt "$(date +%s)" ]

	# Within the window: delivered at once, no fetch, no new TLS-RPT
	# failure.
	run job s1
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	grep -q "$(last_qid): MTA-STS policy of down.test: its fetch failed, not tried again for [0-9]*s (.*): none for this delivery" "$T/log"
	[ "$(connects)" -eq 1 ]
	[ "$(fetch_errors)" -eq 1 ]

	# After the window: fetched again, once.
	# (Rewritten in place: the file stays deliver's.)
	aged=$(sed "s/^\(postern-mta-sts-failed 1 d1 \)[0-9]*$/\1$(( $(date +%s) - 1 ))/" "$record")
	printf '%s\n' "$aged" > "$record"
	run job later
	[[ "$output" == *"rcpt=0 S 2.0.0"* ]]
	[ "$(connects)" -eq 2 ]
	[ "$(grep -c 'MTA-STS policy of down.test cannot be had' "$T/log")" -eq 2 ]
	[ "$(fetch_errors)" -eq 2 ]
}
