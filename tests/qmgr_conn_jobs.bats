#!/usr/bin/env bats
# qmgr sends the jobs that wait for a delivery slot to a deliver process
# that already works for their destination, behind its current job
# (qmgr/qmgr_deliver.c, QMGR_CONN_JOBS): with one deliver process and a
# window of one, a backlog of four messages puts three jobs on that one
# process (one delivered, two behind it, sent in one write) and keeps
# the fourth in qmgr. Killing that process (-9) defers all three, never
# bounces them; a flush then delivers each once, and the fourth goes by
# the next deliver process. While another destination waits for the
# one deliver process, no job goes behind the current one (that process
# must come free for it). One suite start per test; the test's Python
# sink refuses mail while DIR/tempfail exists and keeps the end of
# data's reply back while DIR/hold exists.

load helpers/suite
load helpers/qmgr

setup() {
	suite_init
}

teardown() {
	sinks_stop
	suite_stop
}

metrics() {
	curl -s --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics"
}

# The deliver process with a connection to the sink.
deliver_at_sink() {
	ss -tnpH state established "dst 127.0.0.1:$sink_PORT" |
		sed -nE 's/.*"deliver",pid=([0-9]+).*/\1/p' | head -n1
}

# Copies of a message at the sink, by its Message-Id.
copies() {
	cat "$T"/sink/msg-*.eml 2>/dev/null | grep -c "^Message-Id: <$1>" || true
}

@test "jobs wait behind the current one on a busy deliver process; killing it defers them all, delivered once later" {
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf deliver_processes 1
	suite_conf initial_destination_concurrency 1
	suite_conf destination_concurrency_limit 1
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 1h
	suite_conf queue_run_delay 1h
	METRICS_PORT=$(free_port)
	suite_conf metrics_listen "127.0.0.1:$METRICS_PORT"
	suite_start

	# Four messages, deferred while the sink refuses: they wait in
	# deferred/ for the flush that takes them together.
	touch "$T/sink/tempfail"
	for i in 1 2 3 4; do
		send_mail --from "s$i@example.org" --to "r$i@example.net" \
			--header "Message-Id: <cj-$i@example.org>"
	done
	wait_for_queue_count 4 20 deferred
	rm "$T/sink/tempfail"
	touch "$T/sink/hold"
	qmgr_flush

	# One deliver process holds three jobs: the one the sink keeps in
	# flight and two behind it; the fourth waits in qmgr.
	wait_for_file "$T/sink/holding" 20
	wait_until 'metrics | grep -qx "postern_deliveries_in_flight 3"' 10
	metrics | grep -qx 'postern_destination_deliveries_active{destination="smtp:\[127.0.0.1\]:'"$sink_PORT"'"} 1'
	pid=$(deliver_at_sink)
	[ -n "$pid" ]
	[ "$(ps -o comm= -p "$pid")" = deliver ]

	kill -9 "$pid"
	wait_for_count "log_count 'delivery agent for smtp:\[127.0.0.1\]:$sink_PORT: connection closed; recipients deferred'" 3 20
	# In the order of the jobs: the one in flight first.
	mapfile -t lost < <(sed -nE 's/.*: ([0-9A-Za-z]{14}): delivery agent for .*recipients deferred$/\1/p' "$T/log")
	[ "${#lost[@]}" -eq 3 ]
	! grep -q 'status=bounced' "$T/log"

	# The sink's copy of the one in flight is stored when its hold ends
	# (the sink does not see that its client is gone): that message
	# arrives again with the retry, as any delivery cut short does.
	rm "$T/sink/hold"
	wait_for_log 'r[1-4]@example.net>.*status=sent' 20
	qmgr_flush
	wait_for_queue_count 0 30
	for i in 1 2 3 4; do
		id=$(grep -l "^Message-Id: <cj-$i@example.org>" "$T"/sink/msg-*.eml | head -n1)
		[ -n "$id" ]
	done
	inflight=$(sed -nE "s/.*: ${lost[0]}: from=<(s[1-4])@example.org>.*/\1/p" "$T/log" | head -n1)
	[ -n "$inflight" ]
	for i in 1 2 3 4; do
		n=$(copies "cj-$i@example.org")
		if [ "s$i" = "$inflight" ]; then
			[ "$n" -ge 1 ]
		else
			[ "$n" -eq 1 ]
		fi
	done
	# Each of the three was deferred once and then sent; none twice.
	for id in "${lost[@]}"; do
		[ "$(grep -c "$id: to=<.*status=sent" "$T/log")" -eq 1 ]
		[ "$(grep -c "$id: removed" "$T/log")" -eq 1 ]
	done
}

@test "no job goes behind another while a destination waits for a free deliver process" {
	sink_start sink
	sink_start other
	table transport <<EOF2
other.test	smtp:[127.0.0.1]:$other_PORT
EOF2
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf deliver_processes 1
	suite_conf initial_destination_concurrency 1
	suite_conf destination_concurrency_limit 1
	METRICS_PORT=$(free_port)
	suite_conf metrics_listen "127.0.0.1:$METRICS_PORT"
	suite_start

	# a1 in flight on the only deliver process; b1 waits for it; a2
	# would fit behind a1, but b1 was first.
	touch "$T/sink/hold"
	send_mail --from a1@example.org --to a1@example.net
	wait_for_file "$T/sink/holding" 20
	send_mail --from b1@example.org --to b1@other.test
	wait_for_log 'from=<b1@example.org>.*queue active' 10
	send_mail --from a2@example.org --to a2@example.net
	wait_for_log 'from=<a2@example.org>.*queue active' 10
	metrics | grep -qx 'postern_deliveries_in_flight 1'

	rm "$T/sink/hold"
	wait_for_queue_count 0 30
	[ "$(sink_count sink)" -eq 2 ]
	[ "$(sink_count other)" -eq 1 ]
	# b1 went before a2, which came after it.
	b=$(grep -n 'to=<b1@other.test>.*status=sent' "$T/log" | cut -d: -f1)
	a=$(grep -n 'to=<a2@example.net>.*status=sent' "$T/log" | cut -d: -f1)
	[ -n "$b" ] && [ -n "$a" ] && [ "$b" -lt "$a" ]
}
