#!/usr/bin/env bats
# smtpd's doors are forked by a door zygote (issue 20, branch h-doorzyg;
# smtpd/smtpd_door.c): one smtpd-door per smtpd zygote, exec'd once,
# which forks a door for each worker that asks while still root. Checked
# from outside: each door serves its own worker and holds no other
# worker's pair; a worker that has dropped root holds nothing to ask
# with, and a request from another uid or with a pair its sender did not
# make gets no door; when the door zygote dies, the smtpd zygote leaves,
# master starts a new pair of zygotes, and mail flows.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup() {
	suite_init
	suite_conf smtpd_peername_lookup no
	suite_conf process_min_idle 2
	suite_conf smtpd_processes 4
	suite_start
	wait_until "[ \"\$(workers | wc -l)\" -ge 2 ]" 30 "two smtp workers"
}

teardown() {
	suite_stop
}

# The smtp service's processes under master named NAME.
smtp_named() {
	local pid
	for pid in $(ps -o pid=,comm= --ppid "$(master_pid)" |
		awk -v n="$1" '$2 == n { print $1 }'); do
		tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null |
			grep -q -- '-s smtp $' && echo "$pid"
	done
	return 0
}

workers() {
	smtp_named smtpd
}

smtp_zygote() {
	smtp_named smtpd-zygote | head -n1
}

# The smtp zygote's door zygote: its child smtpd-door.
door_zygote() {
	ps -o pid=,comm= --ppid "$1" 2>/dev/null |
		awk '$2 == "smtpd-doorzyg" { print $1 }' | head -n1
}

every_worker_has_a_door() {
	local w
	for w in $(workers); do
		[ -n "$(smtp_door_of "$w")" ] || return 1
	done
}

socket_inode() {
	readlink "/proc/$1/fd/$2" | tr -dc 0-9
}

# "pid fd" of every holder of the other end of unix socket INODE.
peer_holders() {
	local peer
	peer=$(ss -xH | awk -v i="$1" '$6 == i { print $8 }' | head -n1)
	[ -n "$peer" ] || return 0
	find /proc/[0-9]*/fd -maxdepth 1 -lname "socket:\[$peer\]" 2>/dev/null |
		awk -F/ '{ print $3, $5 }'
}

@test "each door serves its own worker only, and is the door zygote's child" {
	zyg=$(smtp_zygote)
	dz=$(door_zygote "$zyg")
	[ -n "$dz" ]
	seen=
	for w in $(workers); do
		door=$(smtp_door_of "$w")
		[ -n "$door" ]
		# Forked by the door zygote, not by the worker.
		[ "$(ps -o ppid= -p "$door" | tr -d ' ')" = "$dz" ]
		[ -z "$(child_pids "$w")" ]
		# One socket pair in the door, whose other end only its
		# worker holds.
		socks=$(find "/proc/$door/fd" -maxdepth 1 -lname 'socket:*' -printf '%f\n')
		[ "$(echo "$socks" | wc -l)" -eq 1 ]
		[ "$(peer_holders "$(socket_inode "$door" "$socks")" | awk '{ print $1 }' | sort -u)" = "$w" ]
		[[ " $seen " != *" $door "* ]]
		seen="$seen $door"
	done
	run send_mail --from a@example.org --to alice@postern.test
	[ "$status" -eq 0 ]
}

@test "a worker that dropped root cannot ask for a door; nor another uid, nor with a pair it did not make" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: one uid otherwise, and pidfd_getfd"
	zyg=$(smtp_zygote)
	dz=$(door_zygote "$zyg")
	[ -n "$dz" ]
	# The door zygote's request socket: its other end is the smtp
	# zygote's alone; no worker kept a copy past its start.
	read -r holder fd < <(peer_holders "$(socket_inode "$dz" 3)")
	[ "$holder" = "$zyg" ]
	[ "$(peer_holders "$(socket_inode "$dz" 3)" | wc -l)" -eq 1 ]
	for w in $(workers); do
		! peer_holders "$(socket_inode "$dz" 3)" | grep -q "^$w "
	done
	# Root, with a pair of its own: a door (the control).
	run /usr/bin/python3 "$HELPERS/door_request.py" "$zyg" "$fd" root
	[ "$output" = ready ]
	# As smtpd_user, as a worker after its drop: none.
	run /usr/bin/python3 "$HELPERS/door_request.py" "$zyg" "$fd" "uid:$(id -u "$TEST_SMTPD_USER")"
	[ "$output" = none ]
	wait_for_log "door zygote: request refused \(from uid $(id -u "$TEST_SMTPD_USER")\)" 10
	# Root, sending a pair another process made: none.
	run /usr/bin/python3 "$HELPERS/door_request.py" "$zyg" "$fd" foreign
	[ "$output" = none ]
	wait_for_log "door zygote: request refused \(from pid [0-9]+: a socket pair it did not make\)" 10
	is_alive "$dz"
}

@test "kill -9 of the door zygote: the smtpd zygote leaves, master starts a new generation, mail flows" {
	zyg=$(smtp_zygote)
	dz=$(door_zygote "$zyg")
	[ -n "$dz" ]
	kill -KILL "$dz"
	wait_for_exit "$zyg" 30
	wait_for_log "zygote: its helper process is gone: exiting, to be replaced" 10
	wait_until "[ -n \"\$(smtp_zygote)\" ] && [ \"\$(smtp_zygote)\" != $zyg ] && [ -n \"\$(door_zygote \"\$(smtp_zygote)\")\" ]" 30 "a new smtp zygote and door zygote"
	# Workers made before still serve through their doors; new ones
	# get doors from the new door zygote.
	for i in 1 2 3 4; do
		run send_mail --from a@example.org --to alice@postern.test
		[ "$status" -eq 0 ]
	done
	wait_until "every_worker_has_a_door" 30 "a door for every worker"
}
