/*
 * ipc.h - typed, length-checked messages between postern processes: the
 * codec only.
 *
 * A message is text lines "name=value\n" ended by an empty line. The first
 * line is always "type=<type>". Values are %-escaped for '%', CR, LF and
 * other control bytes, so any value fits on its line. A message larger
 * than IPC_MAX_MESSAGE or with more than IPC_MAX_ATTRS attributes is
 * malformed; the receiver logs it and ends that conversation.
 *
 * The conversations (which socket, who sends which type with which
 * attributes) are the contract between the programs and are written down
 * in doc/architecture.md, "IPC messages".
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
#define IPC_SOCKET_LOCAL "local"
#define IPC_SOCKET_ANVIL "anvil"
#define IPC_SOCKET_PICKUP "pickup"

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
/*
 * The same bytes written straight into out, without a struct ipc_msg
 * (its allocations and its printf per attribute): ipc_put_type() first,
 * then one ipc_put*() per attribute, ipc_put_end() last. For the
 * messages sent per delivery (the job, its result).
 */
void ipc_put_type(struct str *out, const char *type);
void ipc_put(struct str *out, const char *name, const char *value);
void ipc_putf(struct str *out, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ipc_put_ll(struct str *out, const char *name, long long value);
void ipc_put_end(struct str *out);

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
