#!/usr/bin/env bats
# ops_metrics_services: the counters of smtpd, lmtpd and qmgr on the
# metrics endpoint (mail/metrics.h: shared memory segments master owns),
# on one instance with real traffic from swaks: mail over STARTTLS to a
# Maildir (lmtpd) and relayed to a sink, a relay refused to a stranger
# (127.0.0.2), an unknown user, AUTH that works and AUTH that fails on
# submission. Checked by Debian's promtool, then the same counters after a
# reload (a new qmgr, the same segments), then scraped once by a real
# Prometheus (package prometheus) and asked through its HTTP API.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common
load helpers/qmgr

setup_file() {
	OPS_START=$SECONDS
	export OPS_START
	suite_init
	smtp_maps
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf lmtp_destination "unix:$T/run/lmtp"
	suite_conf mynetworks 127.0.0.1/32
	suite_conf smtpd_peername_lookup no
	suite_conf submission_require_auth no
	suite_tls_selfsigned mx.postern.test ec
	suite_sasl_users alice alice-pw
	METRICS_PORT=$(free_port)
	export METRICS_PORT
	suite_conf metrics_listen "127.0.0.1:$METRICS_PORT"
	suite_start
	traffic
}

teardown_file() {
	[ -z "${PROM_PID:-}" ] || kill "$PROM_PID" 2>/dev/null || true
	sinks_stop
	echo "# ops_metrics_services.bats: $((SECONDS - OPS_START)) s" >&3
	suite_stop
}

sub() {
	swaks --server 127.0.0.1 --port "$SUBMISSION_PORT" --silent 2 "$@"
}

# The day: 4 connections on smtp (and suite_start's probe) (2 accepted, 2 refused), 2 on
# submission (1 accepted after AUTH, 1 failed AUTH).
traffic() {
	send_mail -tls --from a@example.org --to alice@postern.test
	send_mail --from a@example.org --to b@example.net
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --silent 2 \
		--local-interface 127.0.0.2 --from x@example.org \
		--to y@example.net >/dev/null 2>&1 || true
	send_mail --from a@example.org --to nobody@postern.test \
		>/dev/null 2>&1 || true
	sub -tls -a PLAIN -au alice -ap alice-pw --from alice@postern.test \
		--to alice@postern.test
	sub -tls -a PLAIN -au alice -ap wrong --from alice@postern.test \
		--to alice@postern.test >/dev/null 2>&1 || true
	wait_for_count "sink_count sink" 1
	wait_for_count "log_count 'result=stored'" 2
	wait_for_count "log_count 'relay=.*status=sent'" 3
}

scrape() {
	/usr/bin/python3 -c 'import sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5)
assert r.status == 200
sys.stdout.write(r.read().decode())' "$METRICS_PORT"
}

# value FILE SERIES: the value of one series, exactly as written.
value() {
	awk -v s="$2" '$1 == s { print $2 }' "$1"
}

check_counts() {
	local f=$1
	# suite_start's wait_for_port is the fifth on smtp.
	[ "$(value "$f" 'postern_smtpd_connections_total{service="smtp"}')" = 5 ]
	[ "$(value "$f" 'postern_smtpd_connections_total{service="submission"}')" = 2 ]
	[ "$(value "$f" 'postern_smtpd_messages_total{service="smtp"}')" = 2 ]
	[ "$(value "$f" 'postern_smtpd_messages_total{service="submission"}')" = 1 ]
	[ "$(value "$f" 'postern_smtpd_received_bytes_total{service="smtp"}')" -gt 300 ]
	[ "$(value "$f" 'postern_smtpd_rejects_total{service="smtp",reason="relay"}')" = 1 ]
	[ "$(value "$f" 'postern_smtpd_rejects_total{service="smtp",reason="unknown_recipient"}')" = 1 ]
	[ "$(value "$f" 'postern_smtpd_rejects_total{service="smtp",reason="other"}')" = 0 ]
	[ "$(value "$f" 'postern_smtpd_tls_sessions_total{service="smtp",version="TLSv1.3"}')" = 1 ]
	[ "$(value "$f" 'postern_smtpd_tls_sessions_total{service="submission",version="TLSv1.3"}')" = 2 ]
	[ "$(value "$f" 'postern_smtpd_auth_total{service="submission",result="success"}')" = 1 ]
	[ "$(value "$f" 'postern_smtpd_auth_total{service="submission",result="failure"}')" = 1 ]
	[ "$(value "$f" 'postern_smtpd_accept_seconds_count{service="smtp"}')" = 2 ]
	[ "$(value "$f" 'postern_smtpd_accept_seconds_bucket{service="smtp",le="+Inf"}')" = 2 ]
	[ "$(value "$f" 'postern_smtpd_accept_seconds_count{service="submission"}')" = 1 ]
	[ "$(value "$f" 'postern_lmtpd_messages_total')" = 2 ]
	[ "$(value "$f" 'postern_lmtpd_recipients_total{result="stored"}')" = 2 ]
	[ "$(value "$f" 'postern_lmtpd_store_seconds_count')" = 2 ]
	[ "$(value "$f" 'postern_recipient_results_total{transport="smtp",status="sent"}')" = 1 ]
	[ "$(value "$f" 'postern_recipient_results_total{transport="lmtp",status="sent"}')" = 2 ]
	[ "$(value "$f" 'postern_delivery_delay_seconds_count{transport="lmtp"}')" = 2 ]
	[ "$(value "$f" 'postern_delivery_delay_seconds_count{transport="smtp"}')" = 1 ]
}

@test "metrics of smtpd, lmtpd and qmgr: promtool accepts them, the counts are the traffic's, and a reload keeps them" {
	command -v promtool >/dev/null || skip "promtool (package prometheus) not installed"
	scrape > "$T/m1.txt"
	grep -v '^#' "$T/m1.txt" | grep -v ' 0$' | sed 's/^/# /' >&3
	run -0 promtool check metrics < "$T/m1.txt"
	check_counts "$T/m1.txt"
	# Histogram buckets are cumulative: never fewer in a wider one.
	awk -F'[ ]' '/^postern_smtpd_accept_seconds_bucket\{service="smtp"/ {
		if ($2 < last) exit 1; last = $2 }' "$T/m1.txt"
	# A reload starts a new qmgr and new workers; the segments are
	# master's, so nothing is lost or counted twice.
	local old_qmgr
	old_qmgr=$(program_pid qmgr)
	"$POSTERN" -c "$T/conf" reload
	wait_for_log 'reload -- configuration'
	wait_until "[ -n \"\$(program_pid qmgr)\" ] && [ \"\$(program_pid qmgr)\" != $old_qmgr ]" 20
	wait_until "scrape > '$T/m2.txt' 2>/dev/null" 20
	check_counts "$T/m2.txt"
}

@test "a real Prometheus scrapes the endpoint: up is 1 and the counters arrive" {
	command -v prometheus >/dev/null || skip "prometheus not installed"
	local port
	port=$(free_port)
	mkdir -p "$T/prom"
	cat > "$T/prom/prometheus.yml" <<-EOF
	global:
	  scrape_interval: 1s
	  scrape_timeout: 1s
	scrape_configs:
	  - job_name: postern
	    static_configs:
	      - targets: ['127.0.0.1:$METRICS_PORT']
	EOF
	prometheus --config.file="$T/prom/prometheus.yml" \
		--storage.tsdb.path="$T/prom/data" \
		--web.listen-address="127.0.0.1:$port" \
		>"$T/prom/log" 2>&1 &
	PROM_PID=$!
	promq() {
		/usr/bin/python3 -c 'import json, sys, urllib.parse, urllib.request
q = urllib.parse.quote(sys.argv[2])
r = json.load(urllib.request.urlopen("http://127.0.0.1:%s/api/v1/query?query=%s" % (sys.argv[1], q), timeout=2))
print(" ".join(x["value"][1] for x in r["data"]["result"]))' "$port" "$1" 2>/dev/null
	}
	wait_until "[ \"\$(promq 'up{job=\"postern\"}')\" = 1 ]" 30
	wait_until "[ \"\$(promq 'postern_smtpd_messages_total{service=\"smtp\"}')\" = 2 ]" 10
	[ "$(promq 'sum(postern_lmtpd_recipients_total{result="stored"})')" = 2 ]
	kill "$PROM_PID"
	wait "$PROM_PID" 2>/dev/null || true
	PROM_PID=
}
