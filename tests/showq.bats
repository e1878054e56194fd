#!/usr/bin/env bats
# mailq and "postern queue list" for users who may not read the queue:
# qmgr answers type=list (doc/architecture.md, IPC messages), and the listing
# is the same as the one root gets from the files. Needs root to run the
# client as another user (nobody); the daemons run as the suite's user.

load helpers/suite

setup() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to switch users"
	suite_init
	CONF="$T/conf"
	chmod 0755 "$T" "$CONF"
	chmod 0644 "$CONF/postern.conf"
}

teardown() {
	[ -n "${T:-}" ] || return 0
	suite_stop || return
	[ -n "${KEEP_TEST_DIR:-}" ] || rm -rf "$T"
}

as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"
}

# Queued messages (active/ or deferred/, not yet picked up files).
queued() {
	find "$T/queue/active" "$T/queue/deferred" -type f ! -name '.*' | wc -l
}

submit() {
	"$BUILD/sendmail" -C "$CONF" -f "$1" "${@:2}" \
		<<<$'Subject: showq test\n\nbody\n'
}

@test "an unprivileged user lists the queue through qmgr, as root sees it" {
	# A relay host nobody listens on: every attempt is deferred. One try
	# each, then none for an hour: a retry between two listings would
	# change the reasons and the order they are compared in.
	suite_conf relayhost "[127.0.0.1]:$(free_port)"
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 1h
	suite_start
	submit a@example.org one@remote.example two@remote.example
	submit '' three@remote.example
	submit c@example.org four@remote.example
	wait_until '[ "$(queued)" -eq 3 ]' 30
	# Wait until every message has been tried once, so the listing
	# (with the last reasons) holds still between the two runs.
	wait_until '[ "$(find "$T/queue/deferred" -type f ! -name ".*" | wc -l)" -eq 3 ]' 60

	# nobody cannot read the queue directories themselves.
	run as_nobody ls "$T/queue/deferred"
	[ "$status" -ne 0 ]

	run "$BUILD/postern" -c "$CONF" queue list
	[ "$status" -eq 0 ]
	root_list=$output
	[[ "$root_list" == *"Kbytes in 3 Requests."* ]]
	[[ "$root_list" == *"MAILER-DAEMON"* ]]
	[[ "$root_list" == *"one@remote.example"*"two@remote.example"* ]]
	# The last delay reason of the deferred recipients is shown.
	grep -q '^(.*)$' <<<"$root_list"

	run as_nobody "$BUILD/postern" -c "$CONF" queue list
	echo "$output" > "$T/nobody.list"
	[ "$status" -eq 0 ]
	[ "$output" = "$root_list" ]

	run as_nobody "$BUILD/mailq" -C "$CONF"
	[ "$status" -eq 0 ]
	[ "$output" = "$root_list" ]
	run as_nobody "$BUILD/sendmail" -C "$CONF" -bp
	[ "$status" -eq 0 ]
	[ "$output" = "$root_list" ]

	# Listing is for everyone; changing the queue is not.
	run as_nobody "$BUILD/postern" -c "$CONF" queue flush
	[ "$status" -eq 1 ]
	[[ "$output" == *"permission denied"* ]]
	id=$(find "$T/queue/deferred" -type f ! -name '.*' -printf '%f\n' | head -n 1)
	run as_nobody "$BUILD/postern" -c "$CONF" queue delete "$id"
	[ "$status" -eq 1 ]
	[[ "$output" == *"permission denied"* ]]
	[ "$(queued)" -eq 3 ]
}

@test "an empty queue through qmgr" {
	suite_start
	run as_nobody "$BUILD/mailq" -C "$CONF"
	[ "$status" -eq 0 ]
	[ "$output" = "Mail queue is empty" ]
}

@test "many messages stream through qmgr in chunks" {
	suite_conf relayhost "[127.0.0.1]:$(free_port)"
	# Tried once, then left in deferred/: fewer moves for hold to race.
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 1h
	suite_start
	# More than two chunks (QLIST_CHUNK is 200); put on hold so that
	# qmgr does not work on them meanwhile.
	for ((i = 0; i < 450; i++)); do
		submit s@example.org "r$i@remote.example" || return 1
	done
	wait_until '[ "$(queued)" -eq 450 ]' 120
	"$BUILD/postern" -c "$CONF" queue hold $(find "$T/queue/active" \
		"$T/queue/deferred" -type f ! -name '.*' -printf '%f\n') >/dev/null
	run "$BUILD/postern" -c "$CONF" queue list
	[ "$status" -eq 0 ]
	root_list=$output
	[[ "$root_list" == *"in 450 Requests."* ]]
	run as_nobody "$BUILD/postern" -c "$CONF" queue list
	[ "$status" -eq 0 ]
	[ "$output" = "$root_list" ]
	[ "$(grep -c '^[0-9A-Za-z]*! ' <<<"$output")" -eq 450 ]
}

@test "qmgr down: mail system is down" {
	# No suite running: the socket is not there.
	run as_nobody "$BUILD/postern" -c "$CONF" queue list
	[ "$status" -eq 1 ]
	[[ "$output" == *"mail system is down"* ]]
	run as_nobody "$BUILD/mailq" -C "$CONF"
	[ "$status" -eq 69 ]
	[[ "$output" == *"mail system is down"* ]]
}

@test "one local user cannot hold every control connection; only root and the postern user may do more than list" {
	suite_start
	wait_for_log 'qmgr\[[0-9]+\]: starting' 10
	# nobody opens more connections than qmgr has slots and keeps them.
	# setpriv execs python: $! is the holder itself.
	setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 -c '
import socket, sys, time
held = []
for i in range(80):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
print("ready", flush=True)
time.sleep(20)
' "$T/run/qmgr" > "$T/holder.out" 2>&1 &
	holder=$!
	wait_until 'grep -q ready "$T/holder.out"' 15
	# The administrator still gets in...
	run "$BUILD/postern" -c "$CONF" queue flush
	kill "$holder" 2>/dev/null || true
	wait "$holder" 2>/dev/null || true
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"retrying"* ]]
	grep -Eq 'control socket: uid [0-9]+ holds 4 connections; more refused' "$T/log"
	# ...and nobody may list, but not flush or wake qmgr up.
	run as_nobody "$BUILD/postern" -c "$CONF" queue list
	[ "$status" -eq 0 ]
	run as_nobody /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"type=wakeup\n\n")
print(s.recv(4096).decode())
' "$T/run/qmgr"
	[[ "$output" == *"type=error"*"permission denied"* ]]
}
