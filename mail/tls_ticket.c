/*
 * tls_ticket.c - TLS session ticket keys shared through a memfd (see
 * tls_ticket.h).
 *
 * The memfd holds one struct ticket_block, rewritten whole by master at
 * each rotation. Readers (smtpd, at each ticket made or opened) map it
 * read-only once and keep a copy they have checked: a ticket costs no
 * system call and no digest while the block's seq is the copy's. A new
 * seq means a rotation: the block is copied again and its SHA-256 digest
 * checked, so a block caught in the middle of a rewrite is read again,
 * never used (seq leads the block, and master writes it whole; a reader
 * that still sees the old seq uses the old keys, which stay valid as the
 * previous ones).
 * Tickets are AES-256-CBC with HMAC-SHA256, as OpenSSL's own.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "tls_ticket.h"

struct ticket_key {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
};

struct ticket_block {
	uint64_t seq;		/* 1, then one more per rotation */
	int64_t made;		/* when current was made (time(NULL)) */
	struct ticket_key current;
	struct ticket_key previous;	/* all zero until the first rotation */
	unsigned char digest[32];	/* SHA-256 of everything above */
};

static int ticket_fd = -1;
static const struct ticket_block *shared;	/* the memfd, mapped read-only */
static struct ticket_block checked;	/* last copy whose digest matched */
static bool have_checked;
static EVP_CIPHER *ticket_cipher;	/* AES-256-CBC, fetched once */

static bool key_fresh(struct ticket_key *k)
{
	return RAND_priv_bytes(k->name, sizeof(k->name)) == 1 &&
	    RAND_priv_bytes(k->hmac, sizeof(k->hmac)) == 1 &&
	    RAND_priv_bytes(k->aes, sizeof(k->aes)) == 1;
}

static void block_digest(const struct ticket_block *b, unsigned char out[32])
{
	unsigned int len = 0;
	EVP_Digest(b, offsetof(struct ticket_block, digest), out, &len,
	    EVP_sha256(), NULL);
}

static bool block_write(int fd, struct ticket_block *b)
{
	block_digest(b, b->digest);
	return pwrite(fd, b, sizeof(*b), 0) == (ssize_t)sizeof(*b);
}

static bool block_read(int fd, struct ticket_block *b)
{
	unsigned char digest[32];
	for (int tries = 0; tries < 100; tries++) {
		if (pread(fd, b, sizeof(*b), 0) != (ssize_t)sizeof(*b))
			return false;
		block_digest(b, digest);
		if (memcmp(digest, b->digest, sizeof(digest)) == 0)
			return true;
	}
	return false;
}

/* The keys now in force: from the checked copy while seq has not moved. */
static bool keys_current(struct ticket_block *b)
{
	if (shared == NULL)
		return block_read(ticket_fd, b);
	uint64_t seq = __atomic_load_n(&shared->seq, __ATOMIC_ACQUIRE);
	if (have_checked && seq == checked.seq) {
		*b = checked;
		return true;
	}
	unsigned char digest[32];
	for (int tries = 0; tries < 100; tries++) {
		memcpy(b, (const void *)shared, sizeof(*b));
		block_digest(b, digest);
		if (memcmp(digest, b->digest, sizeof(digest)) == 0) {
			checked = *b;
			have_checked = true;
			return true;
		}
	}
	return false;
}

int tls_ticket_keys_create(void)
{
	int fd = memfd_create("postern-tls-tickets", MFD_CLOEXEC);
	if (fd < 0) {
		log_warning("memfd_create: %m: no TLS session tickets");
		return -1;
	}
	struct ticket_block b = { .seq = 1, .made = time(NULL) };
	if (!key_fresh(&b.current) || !block_write(fd, &b)) {
		log_warning("cannot make TLS session ticket keys: no TLS "
		    "session tickets");
		explicit_bzero(&b, sizeof(b));
		close(fd);
		return -1;
	}
	explicit_bzero(&b, sizeof(b));
	return fd;
}

void tls_ticket_keys_rotate_due(int fd, time_t every)
{
	struct ticket_block b;
	if (fd < 0 || every <= 0 || !block_read(fd, &b))
		return;
	time_t now = time(NULL);
	if (now - b.made >= every || now < b.made) {
		b.previous = b.current;
		if (key_fresh(&b.current)) {
			b.made = now;
			b.seq++;
			if (!block_write(fd, &b))
				log_warning("cannot rotate the TLS session ticket "
				    "keys: %m");
		}
	}
	explicit_bzero(&b, sizeof(b));
}

/* Set up cipher and MAC for key k (RFC 5077 4's recommended format). */
static bool ticket_crypto(const struct ticket_key *k, unsigned char *iv,
    EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
		    (void *)k->hmac, sizeof(k->hmac)),
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
		    (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	if (EVP_MAC_CTX_set_params(hctx, params) != 1)
		return false;
	return enc ? EVP_EncryptInit_ex(cctx, ticket_cipher, NULL, k->aes,
	    iv) == 1 : EVP_DecryptInit_ex(cctx, ticket_cipher, NULL, k->aes,
	    iv) == 1;
}

/* OpenSSL's ticket callback: 1 done, 2 done and renew, 0 no ticket. */
static int ticket_cb(SSL *ssl, unsigned char key_name[16],
    unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_block b;
	int r = 0;
	if (!keys_current(&b))
		return enc ? -1 : 0;
	if (enc) {
		memcpy(key_name, b.current.name, 16);
		r = RAND_bytes(iv, EVP_CIPHER_get_iv_length(ticket_cipher))
		    == 1 && ticket_crypto(&b.current, iv, cctx, hctx, 1) ? 1 :
		    -1;
	} else if (memcmp(key_name, b.current.name, 16) == 0) {
		/*
		 * 2, renew: a TLS 1.3 client uses each ticket once (RFC 8446
		 * C.4), and OpenSSL sends a resumed client a new ticket only
		 * when asked to renew; with 1 every other connection of a
		 * sender would pay a full handshake.
		 */
		r = ticket_crypto(&b.current, iv, cctx, hctx, 0) ? 2 : 0;
	} else if (b.seq > 1 && memcmp(key_name, b.previous.name, 16) == 0) {
		/* The previous key: accept, and give a ticket of the new one. */
		r = ticket_crypto(&b.previous, iv, cctx, hctx, 0) ? 2 : 0;
	}
	explicit_bzero(&b, sizeof(b));
	return r;
}

bool tls_ticket_keys_use(SSL_CTX *ctx, int fd)
{
	struct ticket_block b;
	if (fd < 0 || !block_read(fd, &b))
		return false;
	explicit_bzero(&b, sizeof(b));
	if (ticket_cipher == NULL)
		ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (ticket_cipher == NULL)
		return false;
	ticket_fd = fd;
	/* Without a mapping every ticket reads the block (block_read). */
	void *map = mmap(NULL, sizeof(struct ticket_block), PROT_READ,
	    MAP_SHARED, fd, 0);
	shared = map == MAP_FAILED ? NULL : map;
	SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 1);
	return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) == 1;
}
