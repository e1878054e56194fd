# smtp_common.bash - shared pieces of smtpd's bats files (tests/smtpd*.bats).
#
#   load helpers/suite
#   load helpers/smtp_common
#
# raw PAYLOAD...      tests/helpers/smtp_raw.py against the smtp port
# psend ARGS...       tests/helpers/smtp_send.py send against the smtp port
# qtool CMD [ID]      tests/helpers/smtp_queue.py on the test queue
# smtp_maps           mailbox and alias tables built with Postfix's postmap
# queued_id TEXT      the queue ID from a "queued as" reply in TEXT
# suite_halt          stop master (and so smtpd) but keep $T for inspection
# smtp_script         run the Python script on stdin against the smtp port
#                     with open_from, reply, say and session in scope
#                     (tests/helpers/smtp_script.py)
# smtp_one_worker     configure one network worker per service, no peer
#                     name lookup (after suite_init)
# smtp_worker         the pid of the smtp service's network worker (one)
# smtp_door_of PID    the pid of that worker's door (its smtpd child)

HELPERS=$BATS_TEST_DIRNAME/helpers

raw() {
	python3 "$HELPERS/smtp_raw.py" "$SMTP_PORT" "$@"
}

raw_port() {
	python3 "$HELPERS/smtp_raw.py" "$@"
}

smtp_one_worker() {
	suite_conf smtpd_peername_lookup no
	suite_conf process_min_idle 1
	suite_conf smtpd_processes 1
}

# The network worker of the smtp service, for files that run one
# (smtpd_processes 1): master's smtpd child started with "-s smtp" (the
# submission service has its own worker, and which of the two has the
# lower pid depends on which zygote was ready first).
smtp_worker() {
	ps -o pid=,comm=,args= --ppid "$(master_pid)" |
		awk '$2 == "smtpd" && $NF == "smtp" { print $1 }' | head -n1
}

# A worker's door: the process at the other end of the worker's socket
# pair, named smtpd (smtpd-door names itself so). Doors are the door
# zygote's children, not the worker's (smtpd/smtpd_door.c).
smtp_door_of() {
	ss -xpH 2>/dev/null | awk -v w="pid=$1," '
		$1 == "u_seq" { owner[$6] = $0; if (index($0, w)) peer[$8] = 1 }
		END {
			for (i in peer)
				if ((i in owner) && owner[i] ~ /"smtpd",pid=/ &&
				    !index(owner[i], w)) {
					match(owner[i], /pid=[0-9]+/)
					print substr(owner[i], RSTART + 4, RLENGTH - 4)
				}
		}' | head -n1
}

smtp_script() {
	/usr/bin/python3 "$HELPERS/smtp_script.py" "$SMTP_PORT"
}

psend() {
	python3 "$HELPERS/smtp_send.py" send "$SMTP_PORT" "$@"
}

qtool() {
	python3 "$HELPERS/smtp_queue.py" "$1" "$T/queue" "${@:2}"
}

queued_id() {
	printf '%s\n' "$1" | sed -n 's/.*queued as \([0-9A-Za-z]\{14\}\).*/\1/p' | head -n1
}

# Local recipients: alice and carol have mailboxes; root is an alias.
smtp_maps() {
	cat > "$T/conf/mailboxes" <<'MAP'
alice@postern.test	postern.test/alice/
carol@localhost	localhost/carol/
MAP
	cat > "$T/conf/aliases" <<'MAP'
root: alice@postern.test
MAP
	postmap "hash:$T/conf/mailboxes"
	postalias "hash:$T/conf/aliases"
	suite_conf mailbox_maps "hash:$T/conf/mailboxes"
	suite_conf alias_maps "hash:$T/conf/aliases"
	# Mail stays in the queue for inspection: neither the relay nor the
	# LMTP server that qmgr hands mail to answers, so it is deferred.
	suite_conf relayhost "[127.0.0.1]:$(free_port)"
	suite_conf lmtp_destination "unix:$T/run/nowhere"
}

suite_halt() {
	local i pid kids
	[ -n "${SUITE_PID:-}" ] || return 0
	# master's children too: qmgr must not move files while we look
	kids=$(child_pids "$SUITE_PID")
	kill -TERM "$SUITE_PID" 2>/dev/null || return 0
	for pid in "$SUITE_PID" $kids; do
		wait_for_exit "$pid" 15 || return 1
	done
	return 0
}

# replies: after `run raw ...`, set the array `reply` to one entry per
# complete reply, its last line ("NNN text"): reply[0] is the greeting,
# reply[N] the answer to the Nth command, however many lines EHLO's list
# has. Tests index replies by command this way, not by line position.
replies() {
	reply=()
	local l
	for l in "${lines[@]}"; do
		[[ "$l" =~ ^[0-9]{3}( |$) ]] && reply+=("$l")
	done
	return 0
}
