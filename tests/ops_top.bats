#!/usr/bin/env bats
# ops_top: "postern top" in a real terminal (a detached tmux session,
# package tmux) against an instance with traffic from swaks: the
# counters move as mail arrives, the recent rejects and deferrals show
# their reasons, the arrow keys and "/ ID" pick a message, "s" shows it,
# "h" puts it on hold (and the mail log says who did), "f" flushes the
# queue through qmgr, "q" quits with status 0. One suite for the file.

bats_require_minimum_version 1.5.0
load helpers/suite
load helpers/qmgr

setup_file() {
	OPS_START=$SECONDS
	export OPS_START
	suite_init
	sink_and_dead_destination
	suite_conf smtpd_peername_lookup no
	suite_conf mynetworks 127.0.0.1/32
	suite_conf minimal_backoff 1h
	suite_conf maximal_backoff 2h
	suite_conf queue_run_delay 1h
	suite_start
	TMUX_SOCK="postern-top-$$"
	export TMUX_SOCK
}

teardown_file() {
	tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
	sinks_stop
	echo "# ops_top.bats: $((SECONDS - OPS_START)) s" >&3
	suite_stop
}

pane() {
	tmux -L "$TMUX_SOCK" capture-pane -p -t top
}

keys() {
	tmux -L "$TMUX_SOCK" send-keys -t top "$@"
}

# The "messages" column of the smtp row.
smtp_messages() {
	pane | awk '$1 == "smtp" { print $7 }'
}

pane_has() {
	pane | grep -qF -- "$1"
}

@test "postern top under tmux: counters move, keys pick, show, hold and flush, q quits" {
	command -v tmux >/dev/null || skip "tmux not installed"
	send_mail --from a@example.org --to b@example.net
	send_mail --from a@example.org --to c@dead.test
	send_mail --from a@example.org --to d@dead.test
	wait_for_count "sink_count sink" 1
	wait_for_queue_count 2 20 deferred
	tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -s top -x 160 -y 60 \
		"$POSTERN -c $T/conf top; echo \$? > $T/top.rc; sleep 30"
	wait_until '[ "$(smtp_messages)" = 3 ]' 15
	wait_until 'pane_has "deferred 2"' 5
	pane_has "4.4.1 connect to 127.0.0.1"
	# The counters move: three more messages arrive while it runs.
	for i in 1 2 3; do
		send_mail --from a@example.org --to "e$i@example.net"
	done
	wait_until '[ "$(smtp_messages)" = 6 ]' 15
	# A refused recipient shows up with its reason.
	swaks --server 127.0.0.1 --port "$SMTP_PORT" --silent 2 \
		--local-interface 127.0.0.2 --from x@example.org \
		--to y@example.net >/dev/null 2>&1 || true
	wait_until 'pane_has "Relay access denied"' 10
	pane_has "REJECTS    relay 1"
	# Pick the second deferred message with the arrow keys, show it.
	local ids second
	ids=$("$POSTERN" -c "$T/conf" queue list --json |
		/usr/bin/python3 -c 'import json, sys
print(" ".join(sorted(json.loads(l)["queue_id"] for l in sys.stdin)))')
	second=${ids#* }
	[ -n "$second" ] && [ "$second" != "$ids" ]
	keys Down
	keys s
	wait_until "pane_has 'MESSAGE $second'" 5
	pane_has "from <a@example.org>"
	keys s
	# Hold it: the queue line and the mail log say so.
	keys h
	wait_for_log "$second: placed on hold, user=.*queue=deferred" 10
	wait_until 'pane_has "hold 1"' 5
	pane_has "$second: placed on hold"
	# The first one picked by its ID.
	local first=${ids%% *}
	keys / "$first" Enter
	wait_until "pane_has 'MESSAGE $first'" 5
	keys s
	# Flush: qmgr takes it from root.
	keys f
	wait_for_log "flush requested by uid $(id -u)" 10
	wait_until 'pane_has "flush: qmgr is retrying every deferred message now"' 5
	pane | sed '/^$/d; s/^/# /' >&3
	keys q
	wait_for_file "$T/top.rc" 10
	[ "$(cat "$T/top.rc")" = 0 ]
	# The terminal is given back: the normal screen, no dashboard.
	[ -z "$(pane | grep -F 'postern top - ')" ]
}
