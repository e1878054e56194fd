#!/usr/bin/env bats
# qmgr's system calls for a lone relayed message, seen by strace:
# - it writes the jobs a dispatch pass queued before it sleeps in poll()
#   (qmgr/qmgr_deliver.c, qmgr_deliver_flush): a message taken into
#   active/ is in deliver's socket without a poll of every connection in
#   between that only reports the sockets writable;
# - it reads the inotify watch on incoming/ once per wake-up: a read that
#   left room in the buffer emptied the queue (qmgr_scan.c, watch_read),
#   so no second read comes back EAGAIN.

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

# strace_lone_messages CALLS: qmgr's CALLS (strace -e trace=) into
# $T/strace while three messages are relayed one at a time, each a lone
# message that qmgr takes at once.
strace_lone_messages() {
	command -v strace >/dev/null || skip "strace is not installed"
	[ "$(id -u)" -eq 0 ] || skip "attaching to qmgr after it changed user needs root"
	local q n
	wait_until 'q=$(program_pid qmgr); [ -n "$q" ]' 20
	q=$(program_pid qmgr)
	strace -q -s 12 -e trace="$1" -o "$T/strace" -p "$q" \
		2>"$T/strace.err" &
	STRACE_PID=$!
	wait_until 'grep -q "TracerPid:[[:space:]]*[1-9]" "/proc/$q/status"' 20
	for n in 1 2 3; do
		send_mail --from a@example.org --to "b$n@example.net"
		wait_for_count "sink_count sink" "$n"
		wait_for_count "log_count ': removed'" "$n"
	done
	kill "$STRACE_PID"
	wait "$STRACE_PID" || true
	STRACE_PID=
	cat "$T/strace"
}

@test "a message's job is written to deliver without a poll between its move into active/ and the write" {
	strace_lone_messages poll,ppoll,write,rename,renameat,renameat2
	# For each job: the polls after its message's move into active/
	# and before the job's write.
	awk '/^rename.*\/active\// { armed = 1; polls = 0; next }
	    /^p?poll\(/ { if (armed) polls++; next }
	    /^write\(.*"type=job/ { if (armed) print polls; armed = 0 }' \
		"$T/strace" > "$T/polls"
	cat "$T/polls"
	[ "$(grep -c . "$T/polls")" -eq 3 ]
	[ "$(grep -vc '^0$' "$T/polls")" -eq 0 ]
}

@test "qmgr reads the inotify watch once per wake-up, not again until EAGAIN" {
	strace_lone_messages read
	# The watch's reads are the ones of its 16 KiB buffer: each one
	# that a wake-up made found events, and no read came back empty.
	[ "$(grep -c '^read(.*, 16384) *= [1-9]' "$T/strace")" -ge 3 ]
	[ "$(grep -c '^read(.*, 16384) *= -1 EAGAIN' "$T/strace")" -eq 0 ]
}
