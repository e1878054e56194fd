#!/usr/bin/env bats
# ops_queue: the administrator's queue commands on a running instance
# with mail in its queue. Every action on a message is in the mail log
# (qmgr's log, here master's standard error) with who did it, as
# Postfix's postsuper logs: "QID: placed on hold, user=root, uid=0, ...".

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/qmgr

setup_file() {
	OPS_START=$SECONDS
	export OPS_START
	suite_init
	# Nothing answers at the relay: mail waits in deferred/.
	suite_conf relayhost "[127.0.0.1]:$(free_port)"
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 2h
	suite_conf queue_run_delay 1h
	suite_start
}

teardown_file() {
	echo "# ops_queue.bats: $((SECONDS - OPS_START)) s" >&3
	suite_stop
}

pq() {
	"$BUILD/postern" -c "$T/conf" queue "$@"
}

# IDs of the messages in deferred/, one a line.
deferred_ids() {
	find "$T/queue/deferred" -type f ! -name '.*' -printf '%f\n' | sort
}

@test "hold, release and delete are logged to the mail log with the acting user" {
	local i
	for i in 1 2 3; do
		send_mail --from "s$i@example.org" --to "r$i@example.net"
	done
	wait_for_queue_count 3 20 deferred
	local ids a b c
	ids=$(deferred_ids)
	local me="user=$(id -un), uid=$(id -u)"
	a=$(sed -n 1p <<<"$ids")
	b=$(sed -n 2p <<<"$ids")
	c=$(sed -n 3p <<<"$ids")

	run -0 pq hold "$a"
	run -0 pq release "$a"
	run -0 pq delete "$b"
	run -0 pq delete ALL
	# The administrator sees the same line on the terminal.
	[[ "$output" == *"$c: removed, $me, queue=deferred"* ||
		"$output" == *"$c: removed, $me, queue=incoming"* ||
		"$output" == *"$c: removed, $me, queue=active"* ]]
	wait_for_log "postern/qmgr\[[0-9]+\]: $c: removed, $me, queue="
	grep -E "postern/qmgr\[[0-9]+\]: $a: placed on hold, $me, queue=deferred$" "$T/log"
	grep -E "postern/qmgr\[[0-9]+\]: $a: released from hold, $me, queue=hold$" "$T/log"
	grep -E "postern/qmgr\[[0-9]+\]: $b: removed, $me, queue=deferred$" "$T/log"
	# Under sudo the login behind it is named too.
	[ "$(id -u)" -eq 0 ] || return 0
	send_mail --from s4@example.org --to r4@example.net
	wait_for_queue_count 1 20 deferred
	local d
	d=$(deferred_ids)
	SUDO_USER=alice run -0 pq hold "$d"
	wait_for_log "postern/qmgr\[[0-9]+\]: $d: placed on hold, user=root \(sudo alice\), uid=0, queue=deferred$"
}
