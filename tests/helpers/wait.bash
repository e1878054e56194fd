# wait.bash - bounded waits for the bats tests: poll for a condition until
# a deadline, never sleep a fixed time to synchronise. suite.bash loads
# this file, so every test that loads helpers/suite has these:
#
#   wait_until COND [SECS]            the shell condition COND (eval'd) holds
#   wait_for_log REGEX [SECS] [FILE]  a line matching REGEX (grep -E) is in
#                                     FILE (default: the suite log $T/log)
#   wait_for_file PATH [SECS]         PATH exists
#   wait_for_socket PATH [SECS]       PATH is a Unix socket
#   wait_for_port PORT [SECS]         127.0.0.1:PORT accepts a connection
#   wait_for_listen PORT [SECS]       something listens on TCP PORT (checked
#                                     without connecting, for peers that
#                                     count their connections)
#   wait_for_count CMD N [SECS]       CMD (eval'd) prints a number >= N
#   wait_for_queue_count N [SECS] [SUBDIR]
#                                     the queue (or queue/SUBDIR) holds
#                                     exactly N messages (suite.bash's
#                                     queue_count)
#   wait_for_exit PID [SECS]          process PID is gone (or a zombie)
#
# SECS defaults to 10 (20 for the counts). Each returns 0 as soon as the
# condition holds; on the deadline it returns 1 and prints, on standard
# error (which bats shows with a failed test), what it waited for, what
# it saw last and the end of the suite log. The helpers' own variables
# start with _w_, so a COND may use the caller's locals freely.

# Microseconds on a monotonic-enough clock, without a fork.
_w_now() {
	local t=${EPOCHREALTIME//[.,]/}
	echo "$t"
}

# _w_poll SECS COMMAND...: run COMMAND every 0.1 s until it succeeds.
_w_poll() {
	local _w_secs=$1 _w_deadline
	shift
	_w_deadline=$(($(_w_now) + _w_secs * 1000000))
	while :; do
		"$@" && return 0
		[ "$(_w_now)" -ge "$_w_deadline" ] && return 1
		sleep 0.1
	done
}

# _w_fail WHAT [SEEN]: the timeout message.
_w_fail() {
	echo "# timed out after ${_w_secs_given}s waiting for $1" >&2
	[ -n "${2:-}" ] && echo "# last seen: $2" >&2
	if [ -n "${T:-}" ] && [ -f "$T/log" ]; then
		echo "# end of $T/log:" >&2
		tail -n 30 "$T/log" | sed 's/^/#   /' >&2
	fi
	return 1
}

_w_eval() {
	eval "$1"
}

wait_until() {
	local _w_cond=$1 _w_secs_given=${2:-10}
	_w_poll "$_w_secs_given" _w_eval "$_w_cond" && return 0
	_w_fail "condition: $_w_cond"
}

_w_grep() {
	grep -Eq -- "$1" "$2" 2>/dev/null
}

wait_for_log() {
	local _w_re=$1 _w_secs_given=${2:-10} _w_file=${3:-${T:-}/log}
	_w_poll "$_w_secs_given" _w_grep "$_w_re" "$_w_file" && return 0
	_w_fail "/$_w_re/ in $_w_file" \
		"$(tail -n 1 "$_w_file" 2>/dev/null || echo "no such file")"
}

wait_for_file() {
	local _w_path=$1 _w_secs_given=${2:-10}
	_w_poll "$_w_secs_given" test -e "$_w_path" && return 0
	_w_fail "file $_w_path"
}

wait_for_socket() {
	local _w_path=$1 _w_secs_given=${2:-10}
	_w_poll "$_w_secs_given" test -S "$_w_path" && return 0
	_w_fail "Unix socket $_w_path"
}

_w_connects() {
	(exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_port() {
	local _w_port=$1 _w_secs_given=${2:-10}
	_w_poll "$_w_secs_given" _w_connects "$_w_port" && return 0
	_w_fail "a connection to 127.0.0.1:$_w_port"
}

_w_listening() {
	[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

wait_for_listen() {
	local _w_port=$1 _w_secs_given=${2:-10}
	_w_poll "$_w_secs_given" _w_listening "$_w_port" && return 0
	_w_fail "a listener on TCP port $_w_port"
}

_w_count_at_least() {
	_w_seen=$(eval "$1")
	[ "${_w_seen:-0}" -ge "$2" ] 2>/dev/null
}

wait_for_count() {
	local _w_cmd=$1 _w_want=$2 _w_secs_given=${3:-20} _w_seen=
	_w_poll "$_w_secs_given" _w_count_at_least "$_w_cmd" "$_w_want" &&
		return 0
	_w_fail "'$_w_cmd' to print $_w_want or more" "${_w_seen:-nothing}"
}

_w_queue_is() {
	_w_seen=$(queue_count "$2")
	[ "$_w_seen" -eq "$1" ]
}

wait_for_queue_count() {
	local _w_want=$1 _w_secs_given=${2:-20} _w_sub=${3:-} _w_seen=
	_w_poll "$_w_secs_given" _w_queue_is "$_w_want" "$_w_sub" && return 0
	_w_fail "$_w_want message(s) in $T/queue/$_w_sub" \
		"$_w_seen: $(find "$T/queue/$_w_sub" -path "$T/queue/recycle" \
		-prune -o -path "$T/queue/tls" -prune -o -type f \
		-printf '%P ' 2>/dev/null)"
}

_w_gone() {
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
	[[ "$state" == Z* ]]
}

wait_for_exit() {
	local _w_pid=$1 _w_secs_given=${2:-10}
	_w_poll "$_w_secs_given" _w_gone "$_w_pid" && return 0
	_w_fail "process $_w_pid to exit" \
		"$(ps -o pid=,stat=,args= -p "$_w_pid" 2>/dev/null)"
}
