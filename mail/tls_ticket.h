/*
 * tls_ticket.h - TLS session ticket keys shared by every smtpd process,
 * so that a client resumes its session whichever pre-forked process
 * takes its next connection (RFC 5077, RFC 8446 4.6.1).
 *
 * master makes the keys (random, from OpenSSL's generator) in an
 * anonymous memory file (memfd: never on disk, no name anyone can open),
 * hands its descriptor to smtpd processes (POSTERN_TLS_TICKET_FD), and
 * rotates them every tls_ticket_rotation: the new key encrypts tickets,
 * the previous one still decrypts (and its tickets are renewed), so a
 * ticket lives at most twice that long. Trusts master and the memfd's
 * contents; a ticket is the client's, judged by OpenSSL with our HMAC.
 */
#ifndef POSTERN_TLS_TICKET_H
#define POSTERN_TLS_TICKET_H

#include <stdbool.h>
#include <time.h>

#include <openssl/ssl.h>

/* master: a memfd with fresh keys, or -1 (logged: no resumption). */
int tls_ticket_keys_create(void);
/* master: rotate when the current key is older than every seconds. */
void tls_ticket_keys_rotate_due(int fd, time_t every);

/* smtpd: issue and accept tickets with the keys in fd. */
bool tls_ticket_keys_use(SSL_CTX *ctx, int fd);

#endif
