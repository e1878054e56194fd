#!/usr/bin/env bats
# qmgr keeps a message's queue file open from its activation to its
# finish (qmgr/qmgr_message.c, msg_keep_fd): the results of its jobs go
# through that descriptor. What must hold: results written through it
# are in the file a retry reads (a deferred message shows its reason);
# a file that "postern queue delete" unlinks while its delivery is in
# flight is forgotten, neither deferred nor bounced; relayed mail
# arrives once each and leaves nothing behind. One suite start; a
# Postfix smtp-sink that waits before DATA and then refuses the message
# (4xx) keeps deliveries in flight, the test's Python sink takes the
# rest.

load helpers/suite
load helpers/qmgr

setup() {
	suite_init
}

teardown() {
	sinks_stop
	suite_stop
}

# The queue ID of the message from this sender (its activation line).
qid_of() {
	sed -nE "s/.*qmgr\[[0-9]+\]: ([0-9A-Za-z]{14}): from=<$1>.*\(queue active\)/\1/p" \
		"$T/log" | head -n1
}

@test "results go through the kept descriptor; a message deleted in flight is forgotten; relayed mail arrives once" {
	sink_start sink
	# DATA answered after 2 s, the end of data with 450: the job is out
	# while we act, and comes back deferred.
	smtp_sink_start slow -w 2 -r .
	table transport <<EOF
slow.test	smtp:[127.0.0.1]:$slow_PORT
EOF
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 1h
	suite_start

	# 1. Deleted while its delivery is in flight.
	send_mail --from del@example.org --to u@slow.test
	wait_for_log 'from=<del@example.org>.*queue active' 10
	id=$(qid_of del@example.org)
	[ -n "$id" ]
	"$BUILD/postern" -c "$T/conf" queue delete "$id"
	wait_for_log "$id: no longer in active; forgotten" 15
	grep -q "$id: to=<u@slow.test>.*status=deferred" "$T/log"
	! grep -q "$id: .*warning" "$T/log"
	[ "$(queue_count)" -eq 0 ]

	# 2. Not deleted: deferred, its reason recorded in the file through
	# the descriptor kept since the activation.
	send_mail --from keep@example.org --to v@slow.test
	wait_for_log 'from=<keep@example.org>.*queue active' 10
	id2=$(qid_of keep@example.org)
	wait_for_count "queue_count deferred" 1 15
	f=$(find "$T/queue/deferred" -type f -name "$id2")
	[ -n "$f" ]
	grep -a -q '^Z 0 4\.' "$f"
	grep -q "$id2: to=<v@slow.test>.*status=deferred" "$T/log"
	! grep -q "$id2: no longer in active" "$T/log"

	# 3. Relayed mail: each message once, every file removed.
	senders=()
	for i in $(seq 1 20); do
		send_mail --from "m$i@example.org" --to "r$i@example.net" \
			--header "Message-Id: <fd-$i@example.org>" &
		senders+=($!)
	done
	wait "${senders[@]}"
	wait_for_count "sink_count sink" 20 30
	wait_for_count "log_count 'qmgr\[[0-9]+\]: [0-9A-Za-z]{14}: removed$'" 20 15
	[ "$(cat "$T"/sink/msg-*.eml | grep -c '^Message-Id: <fd-')" -eq 20 ]
	[ "$(cat "$T"/sink/msg-*.eml | grep '^Message-Id: <fd-' | sort -u | wc -l)" -eq 20 ]
	[ "$(queue_count)" -eq 1 ]	# the deferred one of step 2
}
