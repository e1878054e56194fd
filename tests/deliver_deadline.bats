#!/usr/bin/env bats
# deliver's deadlines against a server that answers slowly on purpose
# (tests/helpers/slow_smtp.py): a whole reply must come within its
# stage's timeout, however many lines it has (smtp_per_request_deadline),
# and one job's conversation within smtp_session_time_limit. Without them
# a malicious MX parks a deliver process for hours, a line at a time.

load helpers/suite
load helpers/peers

setup() {
	suite_init
	suite_conf smtp_connect_timeout 5s
	SLOW_PORT=$(free_port)
}

teardown() {
	peers_teardown
}

# slow_job LIMIT: one job to b@example.net through the slow server,
# ended after LIMIT seconds (status 124); its result in $output.
slow_job() {
	run timeout "$1" "$BATS_TEST_DIRNAME/helpers/deliver-job" --run "$T/run" \
		--queue "$T/queue" --nexthop "[127.0.0.1]:$SLOW_PORT" \
		--from a@example.org --to b@example.net ${2:+--transport "$2"}
}

start_slow() {	# slow_smtp.py arguments after the port
	"$BATS_TEST_DIRNAME/helpers/slow_smtp.py" "$SLOW_PORT" "$@" \
		>"$T/slow.out" 2>&1 &
	PEER_PIDS+=($!)
	local i
	for ((i = 0; i < 50; i++)); do
		grep -q listening "$T/slow.out" && return 0
		sleep 0.1
	done
	return 1
}

@test "a greeting dribbled a line a second is cut off at the stage's timeout" {
	suite_conf smtp_timeout 3s
	start_slow dribble
	suite_start
	SECONDS=0
	# Each line comes well within 3s; only a deadline for the whole
	# reply ends it (without one: 100 lines, 100 s, then "malformed").
	slow_job 60
	echo "$output (in ${SECONDS}s)"
	[[ "$output" == *"rcpt=0 D 4.4.2 conversation with 127.0.0.1[127.0.0.1]:$SLOW_PORT timed out while receiving the initial server greeting"* ]]
	[ "$SECONDS" -lt 30 ]
	wait_for_log "to=<b@example.net>, relay=127.0.0.1\[127.0.0.1\]:$SLOW_PORT, .*status=deferred \(conversation with .* timed out while receiving the initial server greeting\)"
}

@test "smtp_per_request_deadline = no: the deadline is per line again" {
	suite_conf smtp_timeout 3s
	suite_conf smtp_per_request_deadline no
	start_slow dribble
	suite_start
	run "$BUILD/postern" -c "$T/conf" config smtp_per_request_deadline
	[[ "$output" == *"no"* ]]
	# Still going after twice the timeout: the lines keep it alive.
	slow_job 8
	echo "$output"
	[ "$status" -eq 124 ]
}

@test "replies that each come in time still end at smtp_session_time_limit" {
	suite_conf smtp_timeout 10s
	suite_conf smtp_session_time_limit 5s
	start_slow slow 2
	suite_start
	SECONDS=0
	slow_job 60
	echo "$output (in ${SECONDS}s)"
	# Greeting 2 s, EHLO 2 s, MAIL would end at 6 s: past the limit.
	[[ "$output" == *"rcpt=0 D 4.4.2 conversation with 127.0.0.1[127.0.0.1]:$SLOW_PORT exceeded smtp_session_time_limit (5s) while sending MAIL FROM"* ]]
	[ "$SECONDS" -lt 30 ]
}

@test "a slow server within every limit gets the mail" {
	suite_conf smtp_timeout 10s
	suite_conf smtp_session_time_limit 60s
	start_slow slow 1
	suite_start
	slow_job 60
	echo "$output"
	[[ "$output" == *"rcpt=0 S 2.0.0 250 "*"2.0.0 queued"* ]]
}

@test "LMTP over TCP: deliver waits for the replies in read(2), not poll(2); a silent server is cut at smtp_timeout" {
	command -v strace >/dev/null || skip "strace is not installed"
	[ "$(id -u)" -eq 0 ] || skip "attaching to a process that changed user needs root"
	suite_conf smtp_timeout 3s
	suite_conf deliver_processes 1
	start_slow lmtp-silent
	suite_start
	local d strace_pid
	wait_until 'd=$(ps -o pid=,comm= --ppid "$SUITE_PID" | awk '"'"'$2 == "deliver" { print $1 }'"'"' | head -n 1); [ -n "$d" ]' 20
	strace -q -e trace=poll,read,setsockopt,sendto,write -o "$T/strace" -p "$d" 2>"$T/strace.err" &
	strace_pid=$!
	wait_until 'grep -q "TracerPid:[[:space:]]*[1-9]" "/proc/$d/status"' 20
	SECONDS=0
	slow_job 60 lmtp
	echo "$output (in ${SECONDS}s)"
	kill "$strace_pid"
	wait "$strace_pid" || true
	cat "$T/strace"
	# The transaction went in one write; the wait for its replies ends
	# at MAIL's timeout (smtp_timeout), as a wait in poll(2) did.
	[[ "$output" == *"rcpt=0 D 4.4.2 conversation with 127.0.0.1[127.0.0.1]:$SLOW_PORT timed out while sending MAIL FROM"* ]]
	[ "$SECONDS" -lt 30 ]
	# The LMTP socket (LHLO went out on it): SO_RCVTIMEO set, never
	# polled for input (the connect waits for POLLOUT); before, a poll
	# before each of its three reads.
	fd=$(sed -n 's/^[a-z]*(\([0-9]*\), "LHLO .*/\1/p' "$T/strace" | head -n 1)
	[ -n "$fd" ]
	[ "$(grep -c "^setsockopt($fd, SOL_SOCKET, SO_RCVTIMEO" "$T/strace")" -ge 1 ]
	[ "$(grep -c "^poll(.*{fd=$fd, events=POLLIN}" "$T/strace")" -eq 0 ]
	[ "$(grep -c "^read($fd," "$T/strace")" -ge 3 ]
}
