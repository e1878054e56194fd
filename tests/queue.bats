#!/usr/bin/env bats
# postern queue list/show/delete/hold/release/flush, against real queue
# files made by sendmail. Without master (qmgr would take the messages);
# a message is put in incoming/ or active/ by renaming it there, which is
# what pickup and qmgr do with a file that is already a queue file.

load helpers/suite

setup() {
	suite_init
	CONF="$T/conf"
	suite_queue_tree
}

teardown() {
	suite_stop || return
	[ -n "${KEEP_TEST_DIR:-}" ] || rm -rf "$T"
}

pq() {
	"$BUILD/postern" -c "$CONF" queue "$@"
}

# Submit a message with sendmail into maildrop/, optionally move it to
# another queue; prints its ID.
submit() {
	local to_queue=$1 sender=$2
	shift 2
	"$BUILD/sendmail" -C "$CONF" -v -f "$sender" "$@" \
		<<<$'Subject: queue test\n\nbody\n' 2> "$T/sm.err" || return 1
	local id
	id=$(sed -n 's/.*queued as //p' "$T/sm.err")
	[ -n "$id" ] || return 1
	if [ "$to_queue" != maildrop ]; then
		mv "$T/queue/maildrop/$id" "$T/queue/$to_queue/$id"
	fi
	echo "$id"
}

where_is() {
	find "$T/queue" -type f -name "$1" -printf '%P\n'
}

@test "list: an empty queue" {
	run pq list
	[ "$status" -eq 0 ]
	[ "$output" = "Mail queue is empty" ]
}

@test "list: one block per message, in arrival order, with marks" {
	a=$(submit incoming first@example.org r1@example.net r2@example.net)
	b=$(submit active second@example.org r3@example.net)
	c=$(submit hold '<>' r4@example.net)
	run pq list
	[ "$status" -eq 0 ]
	echo "$output" > "$T/list"
	[[ "${lines[0]}" == "-Queue ID-"* ]]
	[[ "${lines[1]}" =~ ^${a}\ +[0-9]+\ .*\ first@example.org$ ]]
	[[ "${lines[2]}" =~ ^\ {40,}r1@example.net$ ]]
	[[ "${lines[3]}" =~ ^\ {40,}r2@example.net$ ]]
	[[ "${lines[4]}" =~ ^${b}\*\ +[0-9]+\ .*\ second@example.org$ ]]
	[[ "${lines[5]}" =~ ^\ {40,}r3@example.net$ ]]
	[[ "${lines[6]}" =~ ^${c}!\ +[0-9]+\ .*\ MAILER-DAEMON$ ]]
	[[ "${lines[8]}" =~ ^--\ [0-9]+\ Kbytes\ in\ 3\ Requests\.$ ]]
	# The size is the content's, as the envelope says.
	size=$(pq show "$a" | sed -n 's/^size: //p')
	[[ "${lines[1]}" == *" $size "* ]]
}

@test "list: sent recipients are left out, deferred ones show their last reason" {
	id=$(submit incoming s@example.org done@example.net late1@example.net late2@example.net new@example.net)
	f="$T/queue/incoming/$id"
	# Mark recipient 0 sent in place and append reasons, as qmgr does.
	python3 - "$f" <<'PY'
import sys
path = sys.argv[1]
data = open(path, 'rb').read()
off = data.index(b'\nR P - - done@example.net\n') + 3
with open(path, 'r+b') as f:
    f.seek(off); f.write(b'S')
with open(path, 'ab') as f:
    f.write(b'Z 1 4.4.1 connect to mx.example.net[192.0.2.1]:25: Connection refused\n')
    f.write(b'Z 2 4.4.1 connect to mx.example.net[192.0.2.1]:25: Connection refused\n')
PY
	run pq list
	[ "$status" -eq 0 ]
	refute grep -q 'done@example.net' <<<"$output"
	[[ "${lines[2]}" == "(connect to mx.example.net[192.0.2.1]:25: Connection refused)" ]]
	[[ "${lines[3]}" =~ ^\ +late1@example.net$ ]]
	[[ "${lines[4]}" =~ ^\ +late2@example.net$ ]]
	[[ "${lines[5]}" =~ ^\ +new@example.net$ ]]
}

@test "list: a corrupt file is reported by name, the rest still listed" {
	good=$(submit incoming s@example.org r@example.net)
	bad=$(submit incoming s@example.org r@example.net)
	truncate -s 30 "$T/queue/incoming/$bad"
	run pq list
	[ "$status" -eq 1 ]
	[[ "$output" == *"incoming/$bad: corrupt queue file"* ]]
	[[ "$output" == *"$good "* ]]
	[[ "$output" == *"in 1 Request."* ]]
}

@test "show: envelope and content of a message" {
	id=$(submit incoming sender@example.org one@example.net two@example.net)
	run pq show "$id"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "*** ENVELOPE $id ***" ]
	[[ "$output" == *"queue: incoming"* ]]
	[[ "$output" == *"sender: <sender@example.org>"* ]]
	[[ "$output" == *"recipient 0: <one@example.net> status=pending notify=default"* ]]
	[[ "$output" == *"recipient 1: <two@example.net> status=pending"* ]]
	[[ "$output" == *"attribute: origin=local"* ]]
	# The header section; the body too with --body.
	[[ "$output" == *"*** CONTENT $id ***"*"Subject: queue test"*"*** END $id ***" ]]
	[[ "$output" != *$'\nbody\n'* ]]
	run pq show "$id" --body
	[[ "$output" == *"*** CONTENT $id ***"*"Subject: queue test"*"body"*"*** END $id ***" ]]
	# Content is shown with plain LF line ends.
	refute grep -q $'\r' <<<"$output"
}

@test "show: unknown, malformed and corrupt IDs are errors naming the problem" {
	run pq show 1xVXAAAAAAAAAA
	[ "$status" -eq 1 ]
	[[ "$output" == *"1xVXAAAAAAAAAA: no such message"* ]]
	run pq show ../../etc/passwd
	[ "$status" -eq 1 ]
	[[ "$output" == *"not a queue ID"* ]]
	id=$(submit incoming s@example.org r@example.net)
	sed -i '1s/V 1/V 9/' "$T/queue/incoming/$id"
	run pq show "$id"
	[ "$status" -eq 1 ]
	[[ "$output" == *"corrupt queue file"*"version"* ]]
	run pq show
	[ "$status" -eq 1 ]
}

@test "hold and release move messages and mark them in the list" {
	a=$(submit incoming s@example.org r@example.net)
	b=$(submit active s@example.org r@example.net)
	run pq hold "$a" "$b"
	[ "$status" -eq 0 ]
	[[ "$output" == *"placed on hold: 2 messages"* ]]
	[ "$(where_is "$a")" = "hold/$a" ]
	[ "$(where_is "$b")" = "hold/$b" ]
	run pq list
	[[ "$output" == *"$a! "* && "$output" == *"$b! "* ]]
	run pq release "$a"
	[ "$status" -eq 0 ]
	[ "$(where_is "$a")" = "incoming/$a" ]
	# Releasing what is not on hold, holding what is, are errors.
	run pq release "$a"
	[ "$status" -eq 1 ]
	[[ "$output" == *"$a: no such message on hold"* ]]
	run pq hold "$b"
	[ "$status" -eq 1 ]
	run pq release ALL
	[ "$status" -eq 0 ]
	[[ "$output" == *"released from hold: 1 message"* ]]
	[ "$(where_is "$b")" = "incoming/$b" ]
	# Files in maildrop/ are not queue files yet: not held.
	c=$(submit maildrop s@example.org r@example.net)
	run pq hold "$c"
	[ "$status" -eq 1 ]
	[ "$(where_is "$c")" = "maildrop/$c" ]
}

@test "delete: by ID, ALL, and errors" {
	a=$(submit incoming s@example.org r@example.net)
	b=$(submit hold s@example.org r@example.net)
	c=$(submit maildrop s@example.org r@example.net)
	d=$(submit active s@example.org r@example.net)
	run pq delete "$a"
	[ "$status" -eq 0 ]
	[[ "$output" == *"deleted: 1 message"* ]]
	[ -z "$(where_is "$a")" ]
	run pq delete "$a" 1xVX@bad
	[ "$status" -eq 1 ]
	[[ "$output" == *"$a: no such message"* ]]
	[[ "$output" == *"not a queue ID"* ]]
	cp "$T/queue/hold/$b" "$T/queue/corrupt/$b"
	run pq delete ALL
	[ "$status" -eq 0 ]
	[[ "$output" == *"deleted: 3 messages"* ]]
	run pq list
	[ "$output" = "Mail queue is empty" ]
	# corrupt/ is kept by ALL, and emptied only by name.
	[ "$(where_is "$b")" = "corrupt/$b" ]
	run pq delete "$b"
	[ "$status" -eq 0 ]
	[ -z "$(find "$T/queue" -type f)" ]
}

@test "flush says so when qmgr is not there" {
	run pq flush
	[ "$status" -eq 1 ]
	[[ "$output" == *"cannot reach qmgr"*"is postern running?"* ]]
}

@test "with the real qmgr: flush, hold keeps a message, release gives it back" {
	[ -x "$BUILD/qmgr" ] || skip "qmgr not built yet"
	# A relay host nobody listens on: every attempt is deferred.
	suite_conf relayhost "[127.0.0.1]:$(free_port)"
	suite_start
	submit maildrop s@example.org r@remote.example
	# qmgr copies a maildrop file into a queue file of its own (new ID),
	# then keeps it in active/ or defers it.
	wait_until '[ "$(find "$T/queue/active" "$T/queue/deferred" -type f ! -name ".*" | wc -l)" -eq 1 ]' 30
	id=$(find "$T/queue/active" "$T/queue/deferred" -type f ! -name '.*' -printf '%f\n')
	run pq flush
	[ "$status" -eq 0 ]
	run pq hold "$id"
	[ "$status" -eq 0 ]
	[ "$(where_is "$id")" = "hold/$id" ]
	# qmgr scans every second here (queue_run_delay): it leaves hold/ alone.
	sleep 2
	[ "$(where_is "$id")" = "hold/$id" ]
	run pq list
	[[ "$output" == *"$id! "* ]]
	run pq release "$id"
	[ "$status" -eq 0 ]
	# Back in qmgr's hands: taken from incoming/ and tried again.
	wait_until '[[ "$(where_is "$id")" == deferred/* || "$(where_is "$id")" == active/* ]]' 30
	grep -q "$id" "$T/log"
}

@test "only root or the postern user may change or show the queue" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to switch users"
	chmod 0755 "$T" "$CONF"
	id=$(submit incoming s@example.org r@example.net)
	run setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$BUILD/postern" -c "$CONF" queue show "$id"
	[ "$status" -eq 1 ]
	[[ "$output" == *"permission denied"*"$TEST_USER"* ]]
	run setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$BUILD/postern" -c "$CONF" queue delete "$id"
	[ "$status" -eq 1 ]
	[[ "$output" == *"permission denied"*"$TEST_USER"* ]]
	[ "$(where_is "$id")" = "incoming/$id" ]
	# list asks qmgr instead (showq.bats), which is not running here.
	run setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$BUILD/postern" -c "$CONF" queue list
	[ "$status" -eq 1 ]
	[[ "$output" == *"mail system is down"* ]]
}

@test "usage errors" {
	run pq
	[ "$status" -eq 1 ]
	[[ "$output" == *"usage"* ]]
	run pq frobnicate
	[ "$status" -eq 1 ]
	[[ "$output" == *"unknown subcommand"* ]]
	run pq hold
	[ "$status" -eq 1 ]
}

@test "check before the first start: what start creates is a note, what it cannot fix an error" {
	# INSTALL has a newcomer run check before starting: an empty
	# queue_directory (made by a package, say) is as fine as none.
	# As root, check makes them itself, as "postfix check" does (issue 13).
	if [ "$(id -u)" -eq 0 ]; then done_text=created; else done_text="start creates it"; fi
	rm -rf "$T/queue"
	run "$BUILD/postern" -c "$CONF" check
	[ "$status" -eq 0 ]
	[[ "$output" == *"$T/queue: missing; $done_text"* ]]
	[[ "$output" == *"is valid"* ]]
	[ "$(id -u)" -ne 0 ] || [ -d "$T/queue/maildrop" ]
	rm -rf "$T/queue"
	install -d -m 0755 "$T/queue"
	run "$BUILD/postern" -c "$CONF" check
	[ "$status" -eq 0 ]
	[[ "$output" == *"$T/queue/maildrop: missing; $done_text"* ]]
	[[ "$output" == *"is valid"* ]]
	# A file where a queue directory belongs: start cannot fix that.
	rm -rf "$T/queue/incoming"
	touch "$T/queue/incoming"
	run "$BUILD/postern" -c "$CONF" check
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/queue/incoming: exists and is not a directory"* ]]
	# Nor a queue_directory whose parent is missing.
	rm -rf "$T/queue"
	sed -i "s|^queue_directory = .*|queue_directory = $T/nowhere/queue|" "$CONF/postern.conf"
	run "$BUILD/postern" -c "$CONF" check
	[ "$status" -eq 1 ]
	[[ "$output" == *"$T/nowhere/queue: missing, and start cannot create it"* ]]
}

@test "list and show escape control bytes, C1 controls and invalid UTF-8 from senders, recipients and headers" {
	# A queue file as a hostile client could get one written: ESC, CSI
	# (C1, U+009B), an invalid byte and a bidi override in its fields.
	python3 - "$T/queue/incoming" <<'PY'
import sys
esc, csi, bad, rlo = b"\x1b[2J", "\u009b31m".encode(), b"\xff", "\u202e".encode()
content = b"Subject: hi " + esc + b" there\r\nX-Evil: " + csi + bad + b"\r\n\r\nbody \xc3\xa9t\xc3\xa9\r\n"
mid = b"1xaC000000001B"
head = (b"V 1\nI " + mid + b"\nT 1767225600.000000\nF evil" + esc + b"@example.org\n"
        b"B 8BITMIME\nW 0\nR P - - to" + csi + bad + rlo + b"@example.net\n"
        b"D %020d\n" % len(content))
with open(sys.argv[1] + "/" + mid.decode(), "wb") as f:
    f.write(head + content + b"C %d\n" % len(content))
PY
	run pq list
	[ "$status" -eq 0 ]
	printf '%s' "$output" | grep -q 'evil\\x1b\[2J@example.org'
	printf '%s' "$output" | grep -q 'to\\xc2\\x9b31m\\xff\\xe2\\x80\\xae@example.net'
	[ "$(printf '%s' "$output" | LC_ALL=C grep -c $'[\x1b\x9b\xff]')" -eq 0 ]
	run pq show 1xaC000000001B --body
	[ "$status" -eq 0 ]
	printf '%s' "$output" | grep -q '^Subject: hi \\x1b\[2J there$'
	printf '%s' "$output" | grep -q '^X-Evil: \\xc2\\x9b31m\\xff$'
	# Valid UTF-8 stays as it is.
	printf '%s' "$output" | grep -q '^body été$'
	[ "$(printf '%s' "$output" | LC_ALL=C grep -c $'[\x1b\x9b\xff]')" -eq 0 ]
}
