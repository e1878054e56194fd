/*
 * milter_proto.h - the Sendmail milter protocol, version 6 (as libmilter
 * and Postfix speak it): packet framing, command encoding and reply
 * decoding. Pure: no I/O, no global state, so that smtpd's client
 * (smtpd/smtpd_milter.c), qmgr's pickup and a fuzzer all drive the same
 * code. Everything a filter sends is untrusted and decoded here with
 * every length checked.
 *
 * A packet is a 32-bit length in network order (counting the command
 * byte), one command byte, then the data. Strings are NUL-terminated.
 */
#ifndef POSTERN_MILTER_PROTO_H
#define POSTERN_MILTER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "str.h"

#define MILTER_PROTO_VERSION 6
/* The largest packet we accept from a filter (a body replacement chunk
 * is at most 64 KiB in practice; libmilter's own limit is 64 MiB). */
#define MILTER_PACKET_MAX (1024 * 1024)
/* Body chunks we send (libmilter's MILTER_CHUNK_SIZE). */
#define MILTER_CHUNK_SIZE 65535

/* Commands, MTA to filter. */
#define MILTER_CMD_ABORT 'A'
#define MILTER_CMD_BODY 'B'
#define MILTER_CMD_CONNECT 'C'
#define MILTER_CMD_MACRO 'D'
#define MILTER_CMD_BODYEOB 'E'
#define MILTER_CMD_HELO 'H'
#define MILTER_CMD_QUIT_NC 'K'
#define MILTER_CMD_HEADER 'L'
#define MILTER_CMD_MAIL 'M'
#define MILTER_CMD_EOH 'N'
#define MILTER_CMD_OPTNEG 'O'
#define MILTER_CMD_QUIT 'Q'
#define MILTER_CMD_RCPT 'R'
#define MILTER_CMD_DATA 'T'
#define MILTER_CMD_UNKNOWN 'U'

/* Replies and actions, filter to MTA. */
#define MILTER_REPLY_ADDRCPT '+'
#define MILTER_REPLY_DELRCPT '-'
#define MILTER_REPLY_ADDRCPT_PAR '2'
#define MILTER_REPLY_SHUTDOWN '4'
#define MILTER_REPLY_ACCEPT 'a'
#define MILTER_REPLY_REPLBODY 'b'
#define MILTER_REPLY_CONTINUE 'c'
#define MILTER_REPLY_DISCARD 'd'
#define MILTER_REPLY_CHGFROM 'e'
#define MILTER_REPLY_CONN_FAIL 'f'
#define MILTER_REPLY_ADDHEADER 'h'
#define MILTER_REPLY_INSHEADER 'i'
#define MILTER_REPLY_SETSYMLIST 'l'
#define MILTER_REPLY_CHGHEADER 'm'
#define MILTER_REPLY_OPTNEG 'O'
#define MILTER_REPLY_PROGRESS 'p'
#define MILTER_REPLY_QUARANTINE 'q'
#define MILTER_REPLY_REJECT 'r'
#define MILTER_REPLY_SKIP 's'
#define MILTER_REPLY_TEMPFAIL 't'
#define MILTER_REPLY_REPLYCODE 'y'

/* Actions a filter may take (negotiated, SMFIF_*). */
#define MILTER_ACT_ADDHDRS 0x01
#define MILTER_ACT_CHGBODY 0x02
#define MILTER_ACT_ADDRCPT 0x04
#define MILTER_ACT_DELRCPT 0x08
#define MILTER_ACT_CHGHDRS 0x10
#define MILTER_ACT_QUARANTINE 0x20
#define MILTER_ACT_CHGFROM 0x40
#define MILTER_ACT_ADDRCPT_PAR 0x80
#define MILTER_ACT_SETSYMLIST 0x100
#define MILTER_ACT_ALL 0x1ff

/* Protocol steps (negotiated, SMFIP_*). */
#define MILTER_P_NOCONNECT 0x01
#define MILTER_P_NOHELO 0x02
#define MILTER_P_NOMAIL 0x04
#define MILTER_P_NORCPT 0x08
#define MILTER_P_NOBODY 0x10
#define MILTER_P_NOHDRS 0x20
#define MILTER_P_NOEOH 0x40
#define MILTER_P_NR_HDR 0x80
#define MILTER_P_NOUNKNOWN 0x100
#define MILTER_P_NODATA 0x200
#define MILTER_P_SKIP 0x400
#define MILTER_P_RCPT_REJ 0x800
#define MILTER_P_NR_CONN 0x1000
#define MILTER_P_NR_HELO 0x2000
#define MILTER_P_NR_MAIL 0x4000
#define MILTER_P_NR_RCPT 0x8000
#define MILTER_P_NR_DATA 0x10000
#define MILTER_P_NR_UNKN 0x20000
#define MILTER_P_NR_EOH 0x40000
#define MILTER_P_NR_BODY 0x80000
#define MILTER_P_HDR_LEADSPC 0x100000
/* What postern can do: every step and no-reply flag; not RCPT_REJ
 * (rejected recipients are not shown to filters). */
#define MILTER_P_OFFER 0x1ff7ff

/* Macro stages of SETSYMLIST (SMFIM_*). */
enum milter_stage {
	MILTER_STAGE_CONNECT = 0,
	MILTER_STAGE_HELO,
	MILTER_STAGE_MAIL,
	MILTER_STAGE_RCPT,
	MILTER_STAGE_DATA,
	MILTER_STAGE_EOM,
	MILTER_STAGE_EOH,
	MILTER_STAGE_COUNT
};

/* ---- encoding: each appends one whole packet to out ---- */

/* A packet of command cmd with len bytes of data. */
void milter_encode(struct str *out, char cmd, const void *data, size_t len);
void milter_encode_optneg(struct str *out, uint32_t version,
    uint32_t actions, uint32_t protocol);
/* Connect: host name, family ('4', '6', 'L', 'U'), port, address. */
void milter_encode_connect(struct str *out, const char *name, char family,
    uint16_t port, const char *addr);
/* A NUL-terminated string list: MAIL, RCPT (path then args), HELO. */
void milter_encode_strings(struct str *out, char cmd,
    const char *const *strings, size_t n);
/* Macros for the command stage cmd: names[i] = values[i]. */
void milter_encode_macros(struct str *out, char cmd,
    const char *const *names, const char *const *values, size_t n);
void milter_encode_header(struct str *out, const char *name,
    const char *value);

/* ---- decoding ---- */

/*
 * The length field of a packet header; false if it is 0 or over
 * MILTER_PACKET_MAX (the filter is then misbehaving).
 */
bool milter_decode_length(const unsigned char head[4], uint32_t *len);

/* One decoded reply. Pointers point into the packet given to decode. */
struct milter_reply {
	char cmd;
	/* OPTNEG */
	uint32_t version, actions, protocol;
	const char *symlist[MILTER_STAGE_COUNT];	/* NULL if not set */
	/* REPLYCODE */
	int code;			/* 4xx or 5xx */
	/* the whole reply, possibly multi-line */
	const char *text;
	/* ADDHEADER, INSHEADER, CHGHEADER */
	uint32_t index;
	const char *name, *value;
	/* ADDRCPT(_PAR), DELRCPT, CHGFROM: the address; args or NULL */
	const char *addr, *args;
	/* QUARANTINE: the reason */
	const char *reason;
	/* REPLBODY: the bytes */
	const unsigned char *body;
	size_t body_len;
};

/*
 * Decode one packet (command byte and data, without the length field).
 * false with err for anything malformed: unknown command, missing NUL,
 * a REPLYCODE that is not 4xx/5xx followed by SP or '-', trailing bytes.
 */
bool milter_decode_reply(const unsigned char *packet, size_t len,
    struct milter_reply *r, char *err, size_t errsize);

/*
 * A filter's reply code text as it goes to the client: lines "ddd-..."
 * / "ddd ..." separated by CRLF; checks that every line has the same
 * code and no bare CR or LF is left. Copies the enhanced code of the
 * first line (or "" if none) into enh. false if malformed.
 */
bool milter_reply_text_valid(const char *text, int code, char *enh,
    size_t enhsize);

#endif
