# local.bash - mail readers for the tests of local delivery
# (tests/local_*.bats): what Python's mailbox module and mutt see.

# count_in MBOX: messages Python's mailbox module sees in it.
count_in() {
	/usr/bin/python3 -c 'import mailbox, sys
print(len(mailbox.mbox(sys.argv[1], create=False)))' "$1" 2>/dev/null || echo 0
}

# mutt_index MAILBOX: mutt's index of an mbox file or a Maildir, as
# text. mutt wants a terminal: a pty from Python, "q" once the index is
# drawn, bounded by a deadline.
mutt_index() {
	# A home with its Mail folder, or mutt asks to create one.
	mkdir -p "$T/mutt-home/Mail"
	env HOME="$T/mutt-home" TERM=vt100 /usr/bin/python3 - "$1" <<-'PY'
	import os, pty, select, sys, time
	pid, fd = pty.fork()
	if pid == 0:
	    os.execvp("mutt", ["mutt", "-n", "-F", "/dev/null", "-R", "-f",
	                       sys.argv[1]])
	out, sent, deadline = b"", False, time.time() + 10
	while time.time() < deadline:
	    if not sent and b"Msgs:" in out:
	        os.write(fd, b"q")
	        sent = True
	    ready, _, _ = select.select([fd], [], [], 0.2)
	    if ready:
	        try:
	            data = os.read(fd, 65536)
	        except OSError:
	            break
	        if not data:
	            break
	        out += data
	_, status = os.waitpid(pid, os.WNOHANG) if not sent else os.waitpid(pid, 0)
	print(out.decode(errors="replace"))
	sys.exit(0 if sent and status == 0 else 1)
	PY
}
