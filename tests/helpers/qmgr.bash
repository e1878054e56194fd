# qmgr.bash - helpers for the qmgr and bounce tests (load after suite).
#
# sink_start NAME   start tests/helpers/qmgr_sink.py on a free port; sets
#                   ${NAME}_PORT and stores mail under $T/NAME
# sink_files NAME   the stored messages (*.eml), one per line
# smtp_sink_start NAME [smtp-sink options]
#                   Postfix's smtp-sink on a free port (sets ${NAME}_PORT;
#                   $T/NAME/ for its -d files, $T/NAME.log), killed by
#                   sinks_stop
# (wait_for_count CMD N [secs] and the other waits: helpers/wait.bash)
# qmgr_flush        ask qmgr to retry deferred mail now (postern queue flush)

QMGR_SINK="$BATS_TEST_DIRNAME/helpers/qmgr_sink.py"
SINK_PIDS=()

sink_start() {
	local name=$1 port
	port=$(free_port)
	mkdir -p "$T/$name"
	python3 "$QMGR_SINK" "$port" "$T/$name" 2>>"$T/$name.log" &
	SINK_PIDS+=($!)
	printf -v "${name}_PORT" '%s' "$port"
	export "${name}_PORT"
	wait_for_port "$port" 30
}

smtp_sink_start() {
	local name=$1 port
	shift
	port=$(free_port)
	mkdir -p "$T/$name"
	smtp-sink -u "$(id -un)" "$@" "127.0.0.1:$port" 256 \
		2>>"$T/$name.log" &
	SINK_PIDS+=($!)
	printf -v "${name}_PORT" '%s' "$port"
	export "${name}_PORT"
	wait_for_port "$port" 10
}

sinks_stop() {
	local pid
	for pid in "${SINK_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	SINK_PIDS=()
}

sink_files() {
	ls "$T/$1"/msg-*.eml 2>/dev/null || true
}

sink_count() {
	sink_files "$1" | grep -c . || true
}

log_count() {
	grep -cE -- "$1" "$T/log" || true
}

# Build a hash: table from text: table NAME <<EOF ... EOF
table() {
	local file="$T/conf/$1"
	cat > "$file"
	"$BUILD/postern" -c "$T/conf" map build ${2:-} "$file"
}

# Start the sink "sink" and relay everything to it.
relay_to_sink() {
	sink_start sink
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
}

# Start a sink, relay everything to it, but route dead.test to a port
# nobody listens on (mail for it is deferred and stays in the queue).
sink_and_dead_destination() {
	sink_start sink
	dead_port=$(free_port)
	table transport <<EOF
dead.test	smtp:[127.0.0.1]:$dead_port
EOF
	suite_conf transport_maps "hash:$T/conf/transport"
	suite_conf relayhost "[127.0.0.1]:$sink_PORT"
}

qmgr_flush() {
	"$BUILD/postern" -c "$T/conf" queue flush
}

# The envelope sender and the recipients of a stored message.
env_of() {
	cat "${1%.eml}.env"
}

# PID of a running postern program (a child of this test's master).
program_pid() {
	local pid
	for pid in $(child_pids "$SUITE_PID"); do
		if [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$1" ]; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}
