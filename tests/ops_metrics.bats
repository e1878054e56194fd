#!/usr/bin/env bats
# ops_metrics: qmgr's metrics endpoint (metrics_listen) on a running
# instance with traffic: one message relayed to a sink, one deferred. The
# scrape is valid by Debian's promtool (package prometheus) and says what
# the queue holds and what happened.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/qmgr

setup_file() {
	OPS_START=$SECONDS
	export OPS_START
	suite_init
	sink_start sink
	dead_port=$(free_port)
	table transport <<-EOF
	dead.test	smtp:[127.0.0.1]:$dead_port
	EOF
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 2h
	suite_conf queue_run_delay 1h
	METRICS_PORT=$(free_port)
	export METRICS_PORT
	suite_conf metrics_listen "127.0.0.1:$METRICS_PORT"
	suite_start
}

teardown_file() {
	sinks_stop
	echo "# ops_metrics.bats: $((SECONDS - OPS_START)) s" >&3
	suite_stop
}

scrape() {
	/usr/bin/python3 -c 'import sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5)
assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
sys.stdout.write(r.read().decode())' "$METRICS_PORT"
}

@test "metrics: promtool accepts the scrape; queue sizes and results are right" {
	command -v promtool >/dev/null || skip "promtool (package prometheus) not installed"
	send_mail --from a@example.org --to b@example.net
	send_mail --from a@example.org --to c@dead.test
	wait_for_count "sink_count sink" 1
	wait_for_queue_count 1 20 deferred
	scrape > "$T/metrics.txt"
	sed -n '/^#/d; / 0$/d; s/^/# /p' "$T/metrics.txt" >&3
	run -0 promtool check metrics < "$T/metrics.txt"
	grep -qx 'postern_queue_messages{queue="deferred"} 1' "$T/metrics.txt"
	grep -qx 'postern_queue_messages{queue="active"} 0' "$T/metrics.txt"
	grep -qx 'postern_recipient_results_total{transport="smtp",status="sent"} 1' "$T/metrics.txt"
	grep -qx 'postern_recipient_results_total{transport="smtp",status="deferred"} 1' "$T/metrics.txt"
	grep -qx 'postern_messages_activated_total 2' "$T/metrics.txt"
	# A client that sends nothing and stays does not stop qmgr: the
	# next scrape is served meanwhile.
	exec 5<>"/dev/tcp/127.0.0.1/$METRICS_PORT"
	scrape | grep -q '^postern_deliveries_in_flight 0$'
	exec 5>&-
}
