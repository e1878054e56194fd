#!/usr/bin/env bats
# "postern start" (admin/postern.c): it waits for master's pid, which
# master writes once its listeners are bound, for at most start_timeout,
# reports at once a master that exits while starting (with master's
# fatal error), and says what it waited for when it gives up
# (postern(8)).

load helpers/suite

setup() {
	suite_init
}

teardown() {
	suite_stop
}

@test "postern start reports at once a master that exits while starting" {
	# A configuration error only master finds: the queue is a file.
	: > "$T/not-a-directory"
	suite_conf queue_directory "$T/not-a-directory"
	run "$POSTERN" -c "$T/conf" start
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"postern: master (pid "*") exited with status 1 while starting; see the mail log (or run \"postern start -f\")"* ]]
	[ ! -e "$T/run/master.pid" ]
}

@test "postern start reports a listener master cannot bind, and no master stays" {
	# Another process holds the submission port; smtp's is bound first.
	/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
print("listening", flush=True)
time.sleep(60)' "$SUBMISSION_PORT" > "$T/holder.out" 2>&1 &
	local holder=$! pid
	wait_for_log listening 10 "$T/holder.out"
	run "$POSTERN" -c "$T/conf" start
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"postern/master["*"]: fatal: service submission: 127.0.0.1:$SUBMISSION_PORT: Address already in use"* ]]
	[[ "$output" == *"postern: master (pid "*") exited with status 1 while starting"* ]]
	[[ "$output" != *"postern: started"* ]]
	pid=$(sed -n 's/^postern: master (pid \([0-9]*\)) exited .*/\1/p' <<<"$output")
	refute is_alive "$pid"
	[ ! -e "$T/run/master.pid" ]
}

@test "postern start waits up to start_timeout and says what it waited for" {
	# A master that never gets as far as its pid file.
	mkdir "$T/stuck"
	printf '#!/bin/sh\nexec sleep 60\n' > "$T/stuck/master"
	chmod 755 "$T/stuck/master"
	suite_conf daemon_directory "$T/stuck"
	suite_conf start_timeout 11s
	run "$POSTERN" -c "$T/conf" start
	echo "$output"
	local pid
	pid=$(sed -n 's/^postern: master (pid \([0-9]*\)) did not write .*/\1/p' <<<"$output")
	[ -n "$pid" ] && kill -TERM "$pid"
	[ "$status" -eq 1 ]
	[[ "$output" == *"postern: waiting for master (pid $pid) to write $T/run/master.pid, up to 11 seconds (start_timeout)"* ]]
	[[ "$output" == *"postern: master (pid $pid) did not write $T/run/master.pid within 11 seconds (start_timeout); it is still running and may yet start: see the mail log and \"postern status\""* ]]
}
