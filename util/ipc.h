/*
 * ipc.h - typed, length-checked messages between postern processes.
 *
 * A message is text lines "name=value\n" ended by an empty line. The first
 * line is always "type=<type>". Values are %-escaped for '%', CR, LF and
 * other control bytes, so any value fits on its line. A message larger
 * than IPC_MAX_MESSAGE or with more than IPC_MAX_ATTRS attributes is
 * malformed; the receiver logs it and ends that conversation.
 *
 * Conversations (the socket each runs on):
 *   run_directory/qmgr (qmgr's socket, any local user may connect, at
 *   most four connections per uid; every command but list only from root
 *   or the postern user, checked with SO_PEERCRED; others get type=error
 *   reason="permission denied"):
 *     type=wakeup                    new mail in incoming/ or maildrop/;
 *                                    no reply
 *     type=flush                     retry every deferred message now;
 *                                    reply type=ok or type=error reason=...
 *     type=hold id=<queue id>        put a message that is in active/ on
 *                                    hold; qmgr moves it to hold/ once
 *                                    its deliveries in flight are back
 *                                    and recorded; reply type=ok
 *                                    (reason= says when it waits) or
 *                                    type=error reason=...
 *     type=list                      the queue listing (mailq), for any
 *                                    user, as Postfix's showq; qmgr
 *                                    streams, in queue ID order:
 *       type=entry  one per message in maildrop/, incoming/, active/,
 *                   deferred/, hold/ (qlist.h): id= queue= size=
 *                   arrival=<sec> sender= (empty for <>), then reason=
 *                   (last delay reason of the recipients that follow) and
 *                   rcpt= (pending recipient) attributes in display order
 *       type=end count=<entries sent>, and qmgr closes the connection;
 *       or type=error reason=... (too many listings at once).
 *                   qmgr reads the envelopes a chunk at a time as the
 *                   client takes them; a file that is unreadable or left
 *                   the queue meanwhile is left out.
 *   run_directory/deliver (deliver processes; qmgr connects, and sends
 *   job after job on one connection; a deliver process serves one qmgr
 *   connection until qmgr closes it):
 *     qmgr -> deliver: type=job
 *       transport=smtp|lmtp
 *       nexthop=    smtp: "example.net" (MX lookup), "[host]" or
 *                   "[host]:port" (no MX lookup), "host:port" (MX lookup,
 *                   that port); lmtp: "unix:/path", "[host]:port"
 *       queue_id=   queue_file= (relative to queue_directory, "active/ID")
 *       content_offset=  content_length=   (bytes, from the queue file)
 *       sender=     (empty for <>)
 *       body=7BIT|8BITMIME|BINARYMIME   smtputf8=yes|no
 *       envid=      ret=FULL|HDRS       (only when given)
 *       arrival=<sec>.<usec>   job_time=<sec>.<usec> (for delay=, delays=)
 *       rcpt=<number> <notify> <orcpt> <address>   one per recipient, in
 *                   order; number is the queue file's recipient number;
 *                   notify is "-" or letters of S F D N; orcpt "-" or
 *                   "type;address"
 *     deliver -> qmgr: type=result
 *       rcpt=<number> <S|D|B> <x.y.z> <diagnostic>   one per recipient of
 *                   the job: S sent, D deferred (temporary), B bounce
 *                   (permanent); diagnostic is the peer's reply ("550 5.1.1
 *                   <b@example.net>: user unknown") or our own words
 *                   ("connect to mx.example.net[192.0.2.4]:25: Connection
 *                   refused")
 *       relay=      "mx.example.net[192.0.2.4]:25", or "none"
 *       remote_mta= "mx.example.net" when a peer was reached
 *       nexthop_status=ok|down   down: the destination could not be
 *                   reached at all (qmgr backs off the whole destination)
 *       dsn_passed=yes|no   yes: the peer that took the recipients
 *                   announced DSN and got NOTIFY/ORCPT/RET/ENVID (RFC
 *                   3461 4.1): it reports success from here on, so qmgr
 *                   sends no "relayed" notice (RFC 3461 5.2)
 */
#ifndef POSTERN_IPC_H
#define POSTERN_IPC_H

#include <stdbool.h>
#include <stddef.h>

#include "bio.h"
#include "str.h"

#define IPC_MAX_MESSAGE (4 * 1024 * 1024)
#define IPC_MAX_ATTRS 100000
#define IPC_SOCKET_QMGR "qmgr"
#define IPC_SOCKET_DELIVER "deliver"

struct ipc_attr {
	char *name;
	char *value;
};

struct ipc_msg {
	char *type;
	struct ipc_attr *attrs;
	size_t count;
	size_t cap;
};

void ipc_msg_init(struct ipc_msg *m, const char *type);
void ipc_msg_free(struct ipc_msg *m);
/* Add an attribute; names are [a-z0-9_]+. */
void ipc_add(struct ipc_msg *m, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* First value of name, or NULL. */
const char *ipc_get(const struct ipc_msg *m, const char *name);
/* First value of name as an integer; false if absent or not a number. */
bool ipc_get_ll(const struct ipc_msg *m, const char *name, long long *out);

/* Append the encoded message to out. */
void ipc_encode(const struct ipc_msg *m, struct str *out);

enum ipc_decode_result {
	IPC_NEED_MORE,		/* no complete message in buf yet */
	IPC_DONE,		/* *m filled in, *consumed bytes used */
	IPC_BAD,		/* malformed: end the conversation */
};
/* Decode one message from the front of buf (for event loops). */
enum ipc_decode_result ipc_decode(const char *buf, size_t len,
    struct ipc_msg *m, size_t *consumed);

/* Blocking helpers over a bio (deadline from the bio). */
bool ipc_send(struct bio *b, const struct ipc_msg *m);
/*
 * BIO_OK with *m filled in (m is initialised here: pass it uninitialised
 * or freed); BIO_TOOLONG for a malformed message.
 */
enum bio_status ipc_recv(struct bio *b, struct ipc_msg *m);

/*
 * Tell qmgr that new mail is waiting. Best effort and quick: if qmgr is
 * not running the mail waits for its next scan.
 */
void ipc_wake_qmgr(const char *run_directory);

#endif
