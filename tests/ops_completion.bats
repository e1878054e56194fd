#!/usr/bin/env bats
# ops_completion: bash completion for postern (admin/postern.bash-completion)
# run by bash as it completes a line: commands, queue subcommands, config
# keys from the program itself, queue IDs of a running instance's queue
# (deferred and held mail), and -c DIR honoured on the line.

bats_require_minimum_version 1.5.0
load helpers/suite

COMPLETION="$BATS_TEST_DIRNAME/../admin/postern.bash-completion"

setup_file() {
	OPS_START=$SECONDS
	export OPS_START
	suite_init
	suite_conf relayhost "[127.0.0.1]:$(free_port)"
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 2h
	suite_conf queue_run_delay 1h
	suite_start
}

teardown_file() {
	echo "# ops_completion.bats: $((SECONDS - OPS_START)) s" >&3
	suite_stop
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
	[ "$(echo $output)" = "-c check config map queue reload start status stop" ]
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
	send_mail --from a@example.org --to b@example.net
	send_mail --from c@example.org --to d@example.net
	wait_for_queue_count 2 20 deferred
	local held waiting
	held=$(find "$T/queue/deferred" -type f ! -name '.*' -printf '%f\n' | sort | head -n1)
	"$BUILD/postern" -c "$T/conf" queue hold "$held" >/dev/null 2>&1
	waiting=$(find "$T/queue/deferred" -type f ! -name '.*' -printf '%f\n')
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
