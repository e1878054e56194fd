#!/usr/bin/env bats
# recycle/ across a restart (mail/queue_recycle_keep.c): master keeps the
# finished files qmgr parked there, so that a fresh instance's writers
# take them instead of creating files; a recycle/ name that shares its
# inode with a queued message (a rename a power cut cut short) is never
# reused, and never unlinked when that would free the message's inode.

load helpers/suite
load helpers/qmgr

setup() {
	suite_init
	QFS=
}

teardown() {
	sinks_stop
	halt_instance
	if [ -n "$QFS" ]; then
		umount "$QFS" 2>/dev/null || umount -l "$QFS" 2>/dev/null || true
	fi
	# halt_instance has stopped it: suite_stop only reads the logs.
	suite_stop || return
	[ -n "${KEEP_TEST_DIR:-}" ] || rm -rf "$T"
}

# Stop the instance and every process of its tree (smtpd's doors are
# master's grandchildren and hold queue files), by PID, keeping $T.
halt_instance() {
	[ -n "${SUITE_PID:-}" ] || return 0
	local tree pid
	tree=$(tree_pids "$SUITE_PID")
	kill -TERM "$SUITE_PID" 2>/dev/null || true
	for pid in $tree; do
		wait_for_exit "$pid" 20 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	done
	wait "$SUITE_PID" 2>/dev/null || true
	SUITE_PID=
}

restart_instance() {
	halt_instance
	suite_start
}

# The inode numbers of recycle/'s files, one a line, sorted.
recycle_inodes() {
	find "$T/queue/recycle" -type f -printf '%i\n' | sort -n
}

# The one message a sink received with this subject.
sink_message() {
	grep -l "^Subject: $2" "$T/$1"/msg-*.eml
}

# send_batch TAG N TOTAL: N messages through the sink, "Subject: TAG i"
# and "the body TAG i" to TAGi@example.net, then wait until the sink
# holds TOTAL. Writers take recycled files meanwhile.
send_batch() {
	local n
	for n in $(seq "$2"); do
		send_mail --from a@example.org --to "$1$n@example.net" \
			--header "Subject: $1 $n" --body "the body $1 $n"
	done
	wait_for_count "sink_count sink" "$3"
}

# The bytes of inode $1, found under the directories that follow; qmgr
# moves a deferred message to active/ and back for its retries, so the
# look is tried again if the file moved under it.
inode_content() {
	local ino=$1 try f
	shift
	for try in 1 2 3 4 5; do
		f=$(find "$@" -inum "$ino" | head -n1)
		[ -n "$f" ] && cat "$f" 2>/dev/null && return 0
	done
	return 1
}

# The dead destination comes up (qmgr_sink.py on its port) and qmgr is
# told to retry: the queued message arrives whole.
dead_destination_delivers() {
	mkdir -p "$T/dead"
	/usr/bin/python3 "$QMGR_SINK" "$dead_port" "$T/dead" 2>>"$T/dead.log" &
	SINK_PIDS+=($!)
	wait_for_port "$dead_port" 30
	qmgr_flush
	wait_for_count "sink_count dead" 1 30
	m=$(sink_message dead "the queued one")
	grep -q '^the queued body' "$m"
	[ "$(grep -c '^Subject: ' "$m")" -eq 1 ]
}

@test "a restart keeps recycle/'s files, and mail written into them is intact" {
	relay_to_sink
	suite_start
	send_batch before 6 6
	wait_for_queue_count 0
	wait_until '[ -n "$(recycle_inodes)" ]'
	before=$(recycle_inodes)
	echo "recycle/ before: $before"
	[ -n "$before" ]
	restart_instance
	# Each file is still there, holding its old bytes: in recycle/, or
	# taken by a door for its worker's next message (incoming/.ID),
	# never freed and made again.
	for ino in $before; do
		f=$(find "$T/queue" -inum "$ino" -type f)
		echo "$ino: $f"
		[ "$(wc -l <<< "$f")" -eq 1 ]
		[[ "$f" == "$T/queue/recycle/"* || "$f" == "$T/queue/incoming/."* ]]
		[ "$(stat -c %s "$f")" -gt 0 ]
	done
	# Mail written into them holds its own bytes only.
	send_batch after 6 12
	for n in 1 2 3 4 5 6; do
		m=$(sink_message sink "after $n")
		[ "$(grep -c '^Subject: ' "$m")" -eq 1 ]
		grep -q "^the body after $n" "$m"
		! grep -q 'before' "$m"
		grep -q "^RCPT TO:<after$n@example.net>" "${m%.eml}.env"
	done
	# Nothing was set aside or removed at either start.
	! grep -q 'corrupt/' "$T/log"
	[ -z "$(ls -A "$T/queue/corrupt")" ]
}

@test "a second name of a queued message's file in recycle/ is dropped, never reused, and the message is delivered intact" {
	sink_and_dead_destination
	suite_start
	send_mail --from a@example.org --to stays@dead.test \
		--header "Subject: the queued one" --body "the queued body"
	wait_for_queue_count 1 20 deferred
	halt_instance
	f=$(find "$T/queue/deferred" -type f ! -name '.*')
	ino=$(stat -c %i "$f")
	# What a power cut in a rename leaves, as fsck counts it: two names.
	ln "$f" "$T/queue/recycle/7"
	[ "$(stat -c %h "$f")" -eq 2 ]
	suite_start
	wait_for_log "recycle/7: a second name of a queue file's inode $ino"
	[ ! -e "$T/queue/recycle/7" ]
	# Other mail goes through recycled files meanwhile; the message's
	# inode keeps its message and one name, with one link.
	send_batch other 4 4
	inode_content "$ino" "$T/queue" | grep -q '^Subject: the queued one'
	names=$(find "$T/queue" -inum "$ino")
	echo "names of $ino: $names"
	[ "$(wc -l <<< "$names")" -eq 1 ]
	[ "$(find "$T/queue" -inum "$ino" -links 1 | wc -l)" -eq 1 ]
	dead_destination_delivers
	[ -z "$(ls -A "$T/queue/corrupt")" ]
}

@test "recycle/ entries qmgr would not leave there are removed at start; its files stay" {
	suite_start
	halt_instance
	r="$T/queue/recycle"
	echo victim > "$T/victim"
	ln -s "$T/victim" "$r/1"
	mkfifo -m 0600 "$r/2"
	mkdir "$r/3"
	printf 'old bytes' > "$r/4"		# the right owner, another mode
	chmod 0644 "$r/4"
	printf 'old bytes' > "$r/77x"		# no slot's name
	printf 'old bytes' > "$r/5"		# kept
	chmod 0600 "$r/77x" "$r/5"
	chown "$TEST_USER" "$r/4" "$r/77x" "$r/5"
	if [ "$(id -u)" -eq 0 ]; then
		printf 'old bytes' > "$r/6"	# root's, not the queue owner's
		chmod 0600 "$r/6"
	fi
	kept=$(stat -c %i "$r/5")
	suite_start
	# The kept file may already be a door's next message file.
	f=$(find "$T/queue" -inum "$kept" -type f)
	[[ "$f" == "$r/5" || "$f" == "$T/queue/incoming/."* ]]
	grep -Eq 'recycle: 1 files kept for reuse, [0-9]+ removed, 0 moved' "$T/log"
	for name in 1 2 3 4 77x 6; do
		[ ! -e "$r/$name" ] && [ ! -L "$r/$name" ]
	done
	[ "$(cat "$T/victim")" = victim ]
	[ -z "$(ls -A "$T/queue/corrupt")" ]
}

@test "after a power cut on an unchecked file system (link count 1), the recycle/ name goes to corrupt/, never unlinked, and the message survives" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: a loop-mounted file system"
	command -v debugfs >/dev/null || skip "needs debugfs (e2fsprogs)"
	# The queue on a small ext4 without a journal, as on the bench VM.
	img="$T/queue.img"
	QFS="$T/qfs"
	truncate -s 32M "$img"
	mkfs.ext4 -q -O ^has_journal -N 16384 "$img"
	mkdir "$QFS"
	mount -o loop "$img" "$QFS" || skip "cannot loop-mount here"
	suite_conf queue_directory "$QFS/queue"
	# smtpd wants room for one and a half messages of the limit.
	suite_conf message_size_limit 1m
	sink_and_dead_destination
	suite_start
	send_mail --from a@example.org --to stays@dead.test \
		--header "Subject: the queued one" --body "the queued body"
	q="$QFS/queue"
	wait_until "[ -n \"\$(find '$q/deferred' -type f ! -name '.*')\" ]" 20
	halt_instance
	f=$(find "$q/deferred" -type f ! -name '.*')
	ino=$(stat -c %i "$f")
	rel=${f#"$QFS/"}
	# What a power cut in a rename leaves when no fsck runs after it: a
	# second name, and a link count of 1 (debugfs's link adds a name
	# without counting it).
	umount "$QFS"
	debugfs -w -R "link $rel queue/recycle/7" "$img" 2>/dev/null
	mount -o loop "$img" "$QFS"
	[ "$(stat -c %i "$q/recycle/7")" -eq "$ino" ]
	[ "$(stat -c %h "$f")" -eq 1 ]
	suite_start
	# The message's inode was not freed: it still reads as the message,
	# while other mail goes through recycled files, and it is delivered
	# whole once its destination comes up.
	send_batch other 4 4
	inode_content "$ino" "$q/deferred" "$q/active" | grep -q '^Subject: the queued one'
	dead_destination_delivers
	# The recycle/ name was moved, not unlinked, and said why.
	grep -q "recycle/7: inode $ino has 2 name(s) in the queue but a link count of 1" "$T/log"
	[ ! -e "$q/recycle/7" ]
	[ "$(stat -c %i "$q/corrupt/recycle.$ino.0")" -eq "$ino" ]
	# A second start moves nothing more: recycle/ holds no such name.
	restart_instance
	[ -z "$(find "$q/recycle" -inum "$ino")" ]
}
