#!/usr/bin/env bats
# The S bytes of a message's last result (qmgr/qmgr_message.c,
# finish_unwritten): a message whose every recipient is then done is
# removed without them (neither they nor the remove are synced); a
# message that stays in the queue has them written, and fsync'd, before
# it moves on, so that its retry does not send to a recipient again.
# The test's Python sink takes "b" and defers "soft" (451).

load helpers/suite
load helpers/qmgr

setup() {
	suite_init
	relay_to_sink
	suite_start
}

teardown() {
	strace_end
	sinks_stop
	suite_stop
}

@test "a message delivered to every recipient is removed without writing its status bytes" {
	command -v strace >/dev/null || skip "strace is not installed"
	[ "$(id -u)" -eq 0 ] || skip "attaching to qmgr after it changed user needs root"
	local q
	wait_until 'q=$(program_pid qmgr); [ -n "$q" ]' 20
	q=$(program_pid qmgr)
	strace -q -e trace=pwrite64,renameat2,rename -o "$T/strace" \
		-p "$q" 2>"$T/strace.err" &
	STRACE_PID=$!
	wait_until 'grep -q "TracerPid:[[:space:]]*[1-9]" "/proc/$q/status"' 20
	for n in 1 2 3 4 5; do
		send_mail --from a@example.org --to "b$n@example.net"
	done
	wait_for_count "sink_count sink" 5
	wait_for_count "log_count ': removed'" 5
	kill "$STRACE_PID"
	wait "$STRACE_PID" || true
	STRACE_PID=
	cat "$T/strace"
	[ "$(queue_count)" -eq 0 ]
	# Each went from active/ to recycle/ (strace saw the finish) ...
	[ "$(grep -c 'recycle/' "$T/strace")" -eq 5 ]
	# ... and not one status byte was written first.
	[ "$(grep -c '^pwrite64(' "$T/strace")" -eq 0 ]
}

@test "a message that stays keeps the S of its delivered recipient: the retry does not send it again" {
	# One job: b is sent, soft deferred; the message goes to deferred/.
	send_mail --from a@example.org --to b@example.net,soft@example.net
	wait_for_count "queue_count deferred" 1
	wait_for_count "log_count 'to=<soft@example.net>.*status=deferred'" 1
	# Tried again from the file: soft only.
	qmgr_flush
	wait_for_count "log_count 'to=<soft@example.net>.*status=deferred'" 2
	[ "$(log_count 'to=<b@example.net>.*status=sent')" -eq 1 ]
	[ "$(sink_count sink)" -eq 1 ]
	[ "$(cat "$T"/sink/msg-*.env | grep -c '^RCPT TO:<b@example.net>')" -eq 1 ]
}
