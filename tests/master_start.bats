#!/usr/bin/env bats
# "postern start" (admin/postern.c): it waits for master's pid file for
# at most start_timeout, reports at once a master that exits while
# starting, and says what it waited for when it gives up (postern(8)).

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
