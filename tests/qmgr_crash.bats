#!/usr/bin/env bats
# Crash safety of the delivery path: 2,000 messages from Postfix's
# smtp-source into smtpd, relayed by qmgr and deliver to Postfix's
# smtp-sink, while qmgr and then every deliver process are killed with
# SIGKILL. After master has restarted them, every message must arrive;
# duplicates may only come from deliveries in flight at a kill: on each
# of the destination's connections (its concurrency window) the job in
# progress and the jobs qmgr sent behind it (QMGR_CONN_JOBS, 3), whose
# results a killed qmgr may not have read.
# test-runner: long

load helpers/suite
load helpers/qmgr

MESSAGES=2000

setup() {
	suite_init
}

teardown() {
	sinks_stop
	suite_stop
}

# Postern queue IDs of the messages the sink has stored, one per line
# (from smtpd's Received: "... with ESMTP id QUEUEID").
sink_ids() {
	cat "$T"/sink/* 2>/dev/null |
		sed -n 's/^.*(postern) with [A-Z]* id \([0-9A-Za-z]\{14\}\).*$/\1/p'
}

sink_messages() {
	ls "$T/sink" | wc -l
}

@test "kill -9 of qmgr and deliver during 2,000 deliveries loses nothing" {
	smtp_sink_start sink -d "$T/sink/%M."
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf destination_concurrency_limit 10
	suite_start

	smtp-source -s 10 -m "$MESSAGES" -f src@example.org \
		-t dst@example.net "127.0.0.1:$SMTP_PORT" 2>"$T/source.log" &
	source_pid=$!

	wait_for_count sink_messages 300 60
	qmgr=$(program_pid qmgr)
	kill -9 "$qmgr"
	echo "# killed qmgr $qmgr at $(sink_messages) delivered" >&3

	wait_for_count sink_messages 900 90
	# master started a new qmgr; it took back what active/ held, if
	# anything (on a fast machine active/ may be empty at the kill).
	wait_for_log "qmgr\[[0-9]+\]: starting: " 30
	[ "$(grep -cE 'qmgr\[[0-9]+\]: starting: ' "$T/log")" -ge 2 ]
	grep -E 'recovered [0-9]+ messages from active' "$T/log" >&3 || true
	killed=0
	for pid in $(child_pids "$SUITE_PID"); do
		if [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = deliver ]; then
			kill -9 "$pid" && killed=$((killed + 1))
		fi
	done
	echo "# killed $killed deliver processes at $(sink_messages) delivered" >&3
	[ "$killed" -ge 1 ]

	wait "$source_pid"
	! grep -qi 'error\|fail' "$T/source.log"
	# Everything accepted leaves the queue (retries are 1-4 s here).
	wait_for_queue_count 0 120
	[ "$(queue_count)" -eq 0 ]

	total=$(sink_ids | wc -l)
	distinct=$(sink_ids | sort -u | wc -l)
	accepted=$(grep -cE 'smtpd\[[0-9]+\]: [0-9A-Za-z]{14}: client=' "$T/log")
	echo "# accepted $accepted, stored $total, distinct $distinct, duplicates $((total - distinct))" >&3
	[ "$accepted" -eq "$MESSAGES" ]
	[ "$distinct" -eq "$MESSAGES" ]
	# At most 10 connections x (1 + 3 jobs behind) per kill in flight.
	[ $((total - distinct)) -le 80 ]
}

@test "20 reloads while 500 messages flow: nothing lost, nothing delivered twice" {
	# A sink that takes a while over each message (-w: delay before the
	# reply to the end of data), so deliveries are in flight at a reload.
	smtp_sink_start sink -w 1 -d "$T/sink/%M."
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf destination_concurrency_limit 20
	# A delivery in flight past shutdown_timeout is tried again by design
	# (doc/architecture.md): give a slow machine (a sanitized build under
	# load) the time, so that what fails here is the handover itself.
	suite_conf shutdown_timeout 60s
	suite_start

	smtp-source -s 10 -m 500 -f src@example.org \
		-t dst@example.net "127.0.0.1:$SMTP_PORT" 2>"$T/source.log" &
	source_pid=$!
	wait_for_count sink_messages 20 60
	for ((r = 1; r <= 20; r++)); do
		"$BUILD/postern" -c "$T/conf" reload
		# The next reload once this one's qmgr is at work.
		wait_for_count "grep -cE 'qmgr\[[0-9]+\]: starting: ' '$T/log'" $((r + 1)) 60
	done
	wait "$source_pid"
	for ((i = 0; i < 1800; i++)); do
		[ "$(queue_count)" -eq 0 ] && break
		sleep 0.1
	done
	[ "$(queue_count)" -eq 0 ]
	total=$(sink_ids | wc -l)
	distinct=$(sink_ids | sort -u | wc -l)
	echo "# stored $total, distinct $distinct, duplicates $((total - distinct)); $(grep -c 'cannot send a result to qmgr' "$T/log") results lost; $(grep -c 'waiting for the previous qmgr' "$T/log") handovers waited; $(grep -c 'in flight after shutdown_timeout' "$T/log") handovers timed out" >&3
	[ "$distinct" -eq 500 ]
	[ "$total" -eq 500 ]
	[ "$(grep -c 'cannot send a result to qmgr' "$T/log")" -eq 0 ]
}
