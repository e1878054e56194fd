#!/usr/bin/env bats
# smtpd_milters with rspamd (issue 14), set up as rspamd documents it for
# Postfix: its proxy worker in milter mode (self_scan, no redis, no
# normal worker), `smtpd_milters = inet:127.0.0.1:PORT`,
# milter_default_action = accept. A private instance: its own config,
# database and run directories in $T, a loopback port, DNS pointed at a
# closed port so that no lookup leaves the machine or waits. rspamd is
# slow to start (it compiles its TLD and regexp tables), so it is started
# once for the file, with hyperscan off (its compile dominates).
#
# RSPAMD_MILTER=127.0.0.1:PORT uses an rspamd already running instead
# (for working on this file; CI starts its own).

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
	command -v rspamd >/dev/null || skip "rspamd is not installed"
	suite_init
	smtp_maps
	if [ -n "${RSPAMD_MILTER:-}" ]; then
		RSPAMD_ADDR=$RSPAMD_MILTER
	else
		local port user
		port=$(free_port)
		RSPAMD_ADDR=127.0.0.1:$port
		mkdir -p "$T/rspamd/local.d" "$T/rspamd/db" "$T/rspamd/run"
		cat > "$T/rspamd/rspamd.conf" <<CONF
.include "\$CONFDIR/common.conf"
options {
    pidfile = "\$RUNDIR/rspamd.pid";
    .include "\$CONFDIR/options.inc"
    disable_hyperscan = true;
    dns { nameserver = ["127.0.0.1:9"]; timeout = 0.2s; retransmits = 1; }
}
logging { type = "file"; filename = "\$LOGDIR/rspamd.log"; level = "info"; }
worker "rspamd_proxy" {
    bind_socket = "$RSPAMD_ADDR";
    milter = yes;
    timeout = 60s;
    upstream "local" { default = yes; self_scan = yes; }
    count = 1;
}
CONF
		# The headers rspamd's Postfix guide shows, also for mail from
		# loopback (rspamd skips local and authenticated mail by default).
		cat > "$T/rspamd/local.d/milter_headers.conf" <<'CONF'
use = ["x-spamd-result", "x-rspamd-server", "authentication-results"];
skip_local = false;
skip_authenticated = false;
CONF
		user=
		if [ "$(id -u)" -eq 0 ]; then
			user="-u $TEST_USER -g $(id -gn "$TEST_USER")"
			chown -R "$TEST_USER" "$T/rspamd"
		fi
		# shellcheck disable=SC2086
		rspamd -f $user -c "$T/rspamd/rspamd.conf" \
			--var=LOCAL_CONFDIR="$T/rspamd" --var=DBDIR="$T/rspamd/db" \
			--var=RUNDIR="$T/rspamd/run" --var=LOGDIR="$T/rspamd" \
			>"$T/rspamd/out" 2>&1 3>&- &
		echo $! > "$T/rspamd.pid"
		wait_for_port "$port" 240
	fi
	suite_conf smtpd_milters "inet:$RSPAMD_ADDR"
	suite_conf milter_default_action accept
	suite_conf smtpd_peername_lookup no
	suite_conf process_min_idle 1
	suite_start
	export RSPAMD_ADDR
}

teardown_file() {
	pidfile_kill rspamd
	suite_stop || true
	file_timer_report
}

@test "rspamd: GTUBE is rejected at end of data with rspamd's reply; a clean message gets rspamd's headers" {
	# GTUBE, as rspamd's documentation gives it.
	gtube='XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --helo client.example \
		--from sender@example.org --to alice@postern.test \
		--header "Subject: gtube" --body "$gtube"
	echo "$output"
	[[ "$output" == *"<** 554 5.7.1 "* ]]
	wait_for_log "milter-reject: END-OF-MESSAGE from unknown\[127.0.0.1\]: 5.7.1 "

	run swaks --server 127.0.0.1 --port "$SMTP_PORT" --helo client.example \
		--from sender@example.org --to alice@postern.test \
		--header "Subject: hello" --body "A plain, friendly message."
	echo "$output"
	[[ "$output" == *"250 2.0.0 Ok: queued as"* ]]
	id=$(queued_id "$output")
	qtool content "$id" > "$T/content"
	cat "$T/content"
	grep -q "^X-Spamd-Result: default: False" "$T/content"
	grep -q "^X-Rspamd-Server: " "$T/content"
	grep -q "^Received: from client.example" "$T/content"
	grep -q "^A plain, friendly message." "$T/content"
}
