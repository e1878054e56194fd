#!/usr/bin/env bats
# ops_queue: the administrator's queue commands on a running instance
# with mail in its queue, and bash completion (admin/postern.bash-completion)
# run by bash against that queue. Every action on a message is in the mail log
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

COMPLETION="$BATS_TEST_DIRNAME/../admin/postern.bash-completion"

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

# Deferral lines for a queue ID.
deferrals() {
	grep -cE "postern/(deliver|qmgr)\[[0-9]+\]: $1: to=<.*status=deferred" "$T/log" || true
}

@test "list --json, shape, show --body, flush ID and --domain, requeue, delete by pattern" {
	send_mail --from s1@example.org --to r1@one.test
	send_mail --from s2@example.org --to r2@two.test
	send_mail --from s3@other.org --to r3@two.test
	send_mail --from bulk@spam.test --to x@one.test --body 'the body line'
	wait_for_queue_count 4 20 deferred
	local ids m1 m2 m3 m4
	ids=$(deferred_ids)
	for id in $ids; do
		env=$(pq show "$id")
		case "$env" in
		*"<s1@example.org>"*) m1=$id ;;
		*"<s2@example.org>"*) m2=$id ;;
		*"<s3@other.org>"*) m3=$id ;;
		*"<bulk@spam.test>"*) m4=$id ;;
		esac
	done
	[ -n "$m1" ] && [ -n "$m2" ] && [ -n "$m3" ] && [ -n "$m4" ]

	# One JSON object a line, postqueue -j's fields; the held message
	# of the test before is there too.
	run -0 --separate-stderr pq list --json
	[ "${#lines[@]}" -eq 5 ]
	printf '%s\n' "$output" | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    assert set(m) >= {"queue_name", "queue_id", "arrival_time",
                      "message_size", "sender", "recipients"}, m
    assert m["queue_name"] in ("deferred", "hold"), m
    assert m["message_size"] > 0 and m["arrival_time"] > 1.7e9, m
    r = m["recipients"]
    assert len(r) == 1 and "@" in r[0]["address"], m
    if m["queue_name"] == "deferred":
        assert "delay_reason" in r[0] and r[0]["delay_reason"], m
'
	# The same for a user who may not read the queue: from qmgr.
	if [ "$(id -u)" -eq 0 ]; then
		run -0 --separate-stderr setpriv --reuid=nobody --regid=nogroup \
			--clear-groups "$BUILD/postern" -c "$T/conf" queue list --json
		[ "${#lines[@]}" -eq 5 ]
	fi

	# qshape: recipients by domain and age, the busiest first.
	run -0 pq shape
	printf '# %s\n' "${lines[@]}" >&3
	[[ "${lines[0]}" == *" T     5    10    20"*"1280 1280+" ]]
	[[ "${lines[1]}" =~ ^\ +TOTAL\ +4\ +4\  ]]
	[[ "${lines[2]}" =~ ^\ +one\.test\ +2\ +2\  || "${lines[2]}" =~ ^\ +two\.test\ +2\ +2\  ]]
	run -0 pq shape hold
	[[ "${lines[1]}" =~ ^\ +TOTAL\ +1\  ]]
	[[ "${lines[2]}" =~ ^\ +example\.net\ +1\  ]]

	# show: the header section; the body with --body.
	run -0 pq show "$m4"
	[[ "$output" != *"the body line"* ]]
	run -0 pq show "$m4" --body
	[[ "$output" == *"the body line"* ]]

	# flush ID: that message is tried now, the others wait.
	[ "$(deferrals "$m1")" -eq 1 ]
	run -0 pq flush "$m1"
	wait_for_count "deferrals $m1" 2
	# flush --domain: the messages with a recipient there.
	run -0 pq flush --domain TWO.test
	[[ "$output" == *"flushed: 2 messages"* ]]
	wait_for_count "deferrals $m2" 2
	wait_for_count "deferrals $m3" 2
	[ "$(deferrals "$m4")" -eq 1 ]
	# requeue: back through incoming, logged with who did it.
	run -0 pq requeue "$m4"
	wait_for_log "postern/qmgr\[[0-9]+\]: $m4: requeued, user=$(id -un), uid=$(id -u), queue=deferred$"
	wait_for_count "deferrals $m4" 2
	wait_for_queue_count 4 20 deferred

	# delete by pattern: sender, then recipient within deferred.
	run -0 pq delete --sender '^BULK@'
	[[ "$output" == *"deleted: 1 message"* ]]
	[ ! -e "$(find "$T/queue" -name "$m4")" ] || false
	run -0 pq delete --deferred --recipient 'two\.test$'
	[[ "$output" == *"deleted: 2 messages"* ]]
	[ "$(deferred_ids)" = "$m1" ]
	run -1 pq delete --sender '('
	[[ "$output" == *"bad pattern"* ]]
	run -0 pq delete --deferred
	[[ "$output" == *"deleted: 1 message"* ]]
	[ "$(queue_count deferred)" -eq 0 ]
	[ "$(queue_count hold)" -eq 1 ]
}

# complete LINE: what bash offers for the last word of LINE (a trailing
# space starts a new, empty word), sorted, one a line.
complete_line() {
	bash -c '
		source "$1"
		read -ra COMP_WORDS <<<"$2"
		[[ $2 == *" " ]] && COMP_WORDS+=("")
		COMP_WORDS[0]=$3
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_postern
		printf "%s\n" "${COMPREPLY[@]}" | LC_ALL=C sort
	' _ "$COMPLETION" "$1" "$BUILD/postern"
}

@test "completion: commands, subcommands, config keys and options" {
	run -0 complete_line "postern "
	[ "$(echo $output)" = "-c check config dkim map queue reload spf start status stop top" ]
	run -0 complete_line "postern -c $T/conf dkim "
	[ "$(echo $output)" = "check keygen verify" ]
	run -0 complete_line "postern -c $T/conf q"
	[ "$output" = queue ]
	run -0 complete_line "postern -c $T/conf queue "
	[ "$(echo $output)" = "delete flush hold list release requeue shape show" ]
	run -0 complete_line "postern -c $T/conf config smtpd_ti"
	[ "$output" = smtpd_timeout ]
	# Every key the program knows, no more.
	run -0 complete_line "postern -c $T/conf config "
	[ "${#lines[@]}" -eq "$("$BUILD/postern" -c "$T/conf" config -d | wc -l)" ]
	run -0 complete_line "postern -c $T/conf config -e message_size"
	[ "$output" = "message_size_limit=" ]
	run -0 complete_line "postern -c $T/conf config -"
	[ "$(echo $output)" = "-X -d -e -n" ]
	run -0 complete_line "postern -c $T/conf queue delete --s"
	[ "$output" = --sender ]
}

@test "completion: queue IDs of the instance's queue, by what the subcommand takes" {
	# The test before left one message on hold and none deferred.
	send_mail --from a@example.org --to b@example.net
	wait_for_queue_count 1 20 deferred
	local held waiting
	held=$(find "$T/queue/hold" -type f ! -name '.*' -printf '%f\n')
	waiting=$(deferred_ids)
	[ -n "$held" ] && [ -n "$waiting" ]
	run -0 complete_line "postern -c $T/conf queue release "
	[ "$(echo $output)" = "$held ALL" ]
	run -0 complete_line "postern -c $T/conf queue flush "
	[ "$(echo $output)" = "--domain $waiting" ]
	run -0 complete_line "postern -c $T/conf queue show ${waiting:0:6}"
	[ "$output" = "$waiting" ]
	run -0 complete_line "postern -c $T/conf queue show $waiting "
	[ "$output" = --body ]
	run -0 complete_line "postern -c $T/conf queue delete "
	[ "$(echo $output)" = "$(printf '%s\n' "$held" "$waiting" ALL | LC_ALL=C sort | xargs)" ]
}
