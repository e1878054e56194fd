#!/usr/bin/env bats
# smtpd's door passes the next message's queue file ahead (issue 20,
# smtpd/smtpd_door.c): the answer that ends a message (commit, or abort
# of a refused one) carries the next file, so that the worker asks its
# door once per message, not twice. Checked from outside, with one
# worker: the file the worker holds between messages is the one the next
# message is queued as; it is write only; the door makes the one after it
# (its spare) once its answer is out, and passes that one with its next
# answer; the door removes both when the worker goes, whether it is
# killed or leaves (a reload).

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/smtp_common

setup_file() {
	file_timer_start
}

teardown_file() {
	file_timer_report
}

setup() {
	suite_init
	smtp_maps
	smtp_one_worker
	suite_start
}

teardown() {
	suite_stop
}

# "fd ID" of the queue file a process holds in incoming/ (as ".ID").
held_file() {
	find "/proc/$1/fd" -maxdepth 1 -lname "$T/queue/incoming/.*" -printf '%f %l\n' 2>/dev/null |
		sed -n 's|^\([0-9]*\) .*/incoming/\.\([0-9A-Za-z]\{14\}\)$|\1 \2|p'
}

# One message to alice with swaks; its queue ID is added to queued[].
send_one() {
	run swaks --server 127.0.0.1 --port "$SMTP_PORT" \
		--from a@example.org --to alice@postern.test
	[ "$status" -eq 0 ]
	queued+=("$(queued_id "$output")")
	[ -n "${queued[-1]}" ]
}

# The temporary files in incoming/.
temporaries() {
	ls -A "$T/queue/incoming" | grep '^\.' || true
}

# The IDs a process holds in incoming/, sorted, on one line.
held_ids() {
	held_file "$1" | awk '{ print $2 }' | sort | paste -sd' '
}

# The temporary files' IDs, sorted, on one line.
temporary_ids() {
	temporaries | sed 's/^\.//' | sort | paste -sd' '
}

@test "the next message's file is passed ahead, used by the next message, dropped with its worker" {
	# The worker's first message: no file ahead yet, asked at DATA.
	queued=()
	send_one
	worker=$(smtp_worker)
	[ -n "$worker" ]
	door=$(smtp_door_of "$worker")
	[ -n "$door" ]
	# Three messages in three sessions: each is queued under the ID of
	# the file its worker held before it; the worker holds one file,
	# write only, which its door holds too, with one spare made after
	# its last answer (never passed yet): the file the worker gets next.
	# The temporary files in incoming/ are those two and no other.
	for i in 1 2 3; do
		read -r fd id < <(held_file "$worker")
		[ -n "$id" ]
		[ "$(held_file "$worker" | wc -l)" -eq 1 ]
		flags=$(awk '/^flags:/ { print $2 }' "/proc/$worker/fdinfo/$fd")
		[ $((8#$flags & 3)) -eq 1 ]
		wait_until "[ \"\$(held_file $door | wc -l)\" -eq 2 ]" 10 "the door's spare"
		spare=$(held_file "$door" | awk -v id="$id" '$2 != id { print $2 }')
		[ -n "$spare" ]
		[ "$(held_ids "$door")" = "$(printf '%s\n' "$id" "$spare" | sort | paste -sd' ')" ]
		[ "$(temporary_ids)" = "$(held_ids "$door")" ]
		send_one
		[ "${queued[-1]}" = "$id" ]
		[ "$(smtp_worker)" = "$worker" ]
		# The spare is what the door passed ahead with its answer.
		read -r fd next < <(held_file "$worker")
		[ "$next" = "$spare" ]
	done
	# A message refused at its end (a bare LF: 550): its file is removed,
	# and the door's answer to the abort passes the next one ahead.
	read -r fd id < <(held_file "$worker")
	run raw 'EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@postern.test>\r\nDATA\r\n' \
		'Subject: bare\r\n\r\nbare\nLF\r\n.\r\nQUIT\r\n'
	replies
	[ "${reply[5]}" = "550 5.5.2 Error: bare <CR> or <LF> received in message text" ]
	read -r fd next < <(held_file "$worker")
	[ -n "$next" ]
	[ "$next" != "$id" ]
	[ ! -e "$T/queue/incoming/.$id" ]
	wait_until "[ \"\$(held_file $door | wc -l)\" -eq 2 ]" 10 "the door's spare"
	held_ids "$door" | grep -qw "$next"
	[ "$(temporary_ids)" = "$(held_ids "$door")" ]
	# A reload: the worker leaves, and its door removes the file it held
	# ahead.
	kill -HUP "$(master_pid)"
	wait_for_exit "$worker" 10
	wait_for_exit "$door" 10
	wait_until "[ -z \"\$(temporaries)\" ]" 10 "incoming/ without a temporary file"
	# A new pair: its first message asks for its file, then one ahead.
	wait_until "[ -n \"\$(smtp_worker)\" ]" 10 "a new worker"
	send_one
	worker=$(smtp_worker)
	read -r fd id < <(held_file "$worker")
	[ -n "$id" ]
	# kill -9 of a worker that holds a file ahead: its door removes it.
	door=$(smtp_door_of "$worker")
	kill -KILL "$worker"
	wait_for_exit "$door" 10
	wait_until "[ -z \"\$(temporaries)\" ]" 10 "incoming/ without a temporary file"
	wait_until "[ -n \"\$(smtp_worker)\" ]" 10 "a new worker"
	send_one
	# Nothing acknowledged was lost: each message is in the queue under
	# the ID it was acknowledged with, complete.
	[ "${#queued[@]}" -eq 6 ]
	for id in "${queued[@]}"; do
		[ -n "$(find "$T/queue" -type f -name "$id")" ]
		qtool show "$id" > /dev/null
	done
}
