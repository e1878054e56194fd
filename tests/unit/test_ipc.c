/*
 * Unit tests for util/ipc.c: encoding, escaping and decoding of the typed
 * messages between postern processes, through both decoders (ipc_decode
 * on a buffer, ipc_recv over a bio), and every way a message can be
 * malformed: too large, too many attributes, bad names, bad escapes, no
 * type, truncated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bio.h"
#include "ipc.h"
#include "str.h"
#include "unit.h"

/* A bio reading bytes from a memory file: EOF after the last byte. */
static int bytes_fd(const char *data, size_t len)
{
	int fd = memfd_create("test_ipc", 0);
	if (fd < 0 || (len > 0 && write(fd, data, len) != (ssize_t)len) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

static void test_encode_escapes(void)
{
	static const struct {
		const char *value;
		const char *wire;
	} cases[] = {
		{ "plain text", "plain text" },
		{ "", "" },
		{ "100%", "100%25" },
		{ "a\r\nb", "a%0D%0Ab" },
		{ "\x01\x1f\x7f", "%01%1F%7F" },
		{ "tab\there", "tab%09here" },
		{ "caf\xc3\xa9", "caf\xc3\xa9" },	/* 8-bit passes */
		{ "=x=", "=x=" },
		{ "%0A", "%250A" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ipc_msg m;
		struct str out, want;
		ipc_msg_init(&m, "job");
		ipc_add(&m, "v", "%s", cases[i].value);
		str_init(&out, STR_NO_MAX);
		str_init(&want, STR_NO_MAX);
		ipc_encode(&m, &out);
		str_appendf(&want, "type=job\nv=%s\n\n", cases[i].wire);
		CHECK_STR(str_cstr(&out), str_cstr(&want));
		str_free(&out);
		str_free(&want);
		ipc_msg_free(&m);
	}
}

static void test_round_trip(void)
{
	static const char *const values[] = {
		"", "x", "a\nb", "\r", "%", "%%", "%41", "\x7f", "\x01", "\xff",
		"0 D 4.4.1 connect to mx.example.net[192.0.2.4]:25: refused",
		"rfc822;b@example.net", " leading and trailing ",
	};
	struct ipc_msg m, got;
	struct str enc;
	size_t n = sizeof(values) / sizeof(values[0]);

	ipc_msg_init(&m, "type with %, \n and =");
	for (size_t i = 0; i < n; i++)
		ipc_add(&m, i % 2 ? "rcpt" : "a_1", "%s", values[i]);
	str_init(&enc, STR_NO_MAX);
	ipc_encode(&m, &enc);
	/* Twice in a row: the decoder takes exactly one message. */
	size_t one = enc.len;
	ipc_encode(&m, &enc);

	size_t used = 0;
	CHECK_INT(ipc_decode(enc.data, enc.len, &got, &used), IPC_DONE);
	CHECK_INT(used, one);
	CHECK_STR(got.type, m.type);
	CHECK_INT(got.count, n);
	for (size_t i = 0; i < n && i < got.count; i++) {
		CHECK_STR(got.attrs[i].name, m.attrs[i].name);
		CHECK_STR(got.attrs[i].value, values[i]);
	}
	ipc_msg_free(&got);
	CHECK_INT(ipc_decode(enc.data + used, enc.len - used, &got, &used),
	    IPC_DONE);
	CHECK_INT(got.count, n);
	ipc_msg_free(&got);

	/* The same bytes through ipc_recv, both messages, then EOF. */
	int fd = bytes_fd(enc.data, enc.len);
	struct bio b;
	bio_init(&b, fd, 2000);
	for (int k = 0; k < 2; k++) {
		CHECK_INT(ipc_recv(&b, &got), BIO_OK);
		CHECK_STR(got.type, m.type);
		CHECK_INT(got.count, n);
		if (got.count == n)
			CHECK_STR(got.attrs[n - 1].value, values[n - 1]);
		ipc_msg_free(&got);
	}
	CHECK_INT(ipc_recv(&b, &got), BIO_EOF);
	bio_free(&b);
	close(fd);
	str_free(&enc);
	ipc_msg_free(&m);
}

/* Every decoder outcome, through ipc_decode and ipc_recv alike. */
static void test_decode_table(void)
{
	static const struct {
		const char *in;
		enum ipc_decode_result decode;
		enum bio_status recv;
		const char *why;
	} cases[] = {
		{ "type=wakeup\n\n", IPC_DONE, BIO_OK, "minimal" },
		{ "type=\n\n", IPC_DONE, BIO_OK, "empty type value" },
		{ "type=x\na=%41%4a%4A\n\n", IPC_DONE, BIO_OK, "hex case" },
		{ "type=x\na=\n\n", IPC_DONE, BIO_OK, "empty value" },
		{ "type=x\na=1=2\n\n", IPC_DONE, BIO_OK, "= in value" },
		{ "", IPC_NEED_MORE, BIO_EOF, "nothing yet" },
		{ "type=x", IPC_NEED_MORE, BIO_EOF, "truncated line" },
		{ "type=x\n", IPC_NEED_MORE, BIO_EOF, "no empty line" },
		{ "type=x\na=1\n", IPC_NEED_MORE, BIO_EOF, "truncated" },
		{ "\n", IPC_BAD, BIO_TOOLONG, "empty message" },
		{ "\ntype=x\n\n", IPC_BAD, BIO_TOOLONG, "empty first line" },
		{ "a=1\n\n", IPC_BAD, BIO_TOOLONG, "missing type" },
		{ "a=1\ntype=x\n\n", IPC_BAD, BIO_TOOLONG, "type not first" },
		{ "typex\n\n", IPC_BAD, BIO_TOOLONG, "type without =" },
		{ "Type=x\n\n", IPC_BAD, BIO_TOOLONG, "type name case" },
		{ "type=x\nA=1\n\n", IPC_BAD, BIO_TOOLONG, "upper-case name" },
		{ "type=x\na-b=1\n\n", IPC_BAD, BIO_TOOLONG, "- in name" },
		{ "type=x\na b=1\n\n", IPC_BAD, BIO_TOOLONG, "space in name" },
		{ "type=x\n=1\n\n", IPC_BAD, BIO_TOOLONG, "empty name" },
		{ "type=x\nnoequals\n\n", IPC_BAD, BIO_TOOLONG, "no =" },
		{ "type=x\na=%zz\n\n", IPC_BAD, BIO_TOOLONG, "bad hex" },
		{ "type=x\na=%4\n\n", IPC_BAD, BIO_TOOLONG, "short escape" },
		{ "type=x\na=%\n\n", IPC_BAD, BIO_TOOLONG, "lone %" },
		{ "type=x\na=1%\n\n", IPC_BAD, BIO_TOOLONG, "% at the end" },
		{ "type=x\na=%00\n\n", IPC_BAD, BIO_TOOLONG, "escaped NUL" },
		{ "type=x\na=%G0\n\n", IPC_BAD, BIO_TOOLONG, "G is not hex" },
		{ "type=x\na=\x01\n\n", IPC_BAD, BIO_TOOLONG, "raw control" },
		{ "type=x\na=b\rc\n\n", IPC_BAD, BIO_TOOLONG, "raw CR" },
		/* No LF LF yet for the buffer decoder; the line reader
		 * refuses the first line's CR at once. */
		{ "type=x\r\n\r\n", IPC_NEED_MORE, BIO_TOOLONG, "CRLF lines" },
		{ "type=x\r\n\n", IPC_BAD, BIO_TOOLONG, "CR in type" },
		{ "type=%zz\n\n", IPC_BAD, BIO_TOOLONG, "bad escape in type" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = cases[i].in;
		size_t len = strlen(in), used = 0;
		struct ipc_msg m;
		enum ipc_decode_result d = ipc_decode(in, len, &m, &used);
		CHECK_INT(d, cases[i].decode);
		if (d != cases[i].decode)
			printf("# ipc_decode: %s\n", cases[i].why);
		if (d == IPC_DONE) {
			CHECK_INT(used, len);
			ipc_msg_free(&m);
		}

		int fd = bytes_fd(in, len);
		struct bio b;
		bio_init(&b, fd, 2000);
		enum bio_status st = ipc_recv(&b, &m);
		CHECK_INT(st, cases[i].recv);
		if (st != cases[i].recv)
			printf("# ipc_recv: %s\n", cases[i].why);
		if (st == BIO_OK)
			ipc_msg_free(&m);
		bio_free(&b);
		close(fd);
	}

	/* The values that decode, checked. */
	struct ipc_msg m;
	size_t used;
	const char *hex = "type=x\na=%41%4a%4A\nb=1=2\n\n";
	CHECK_INT(ipc_decode(hex, strlen(hex), &m, &used), IPC_DONE);
	CHECK_STR(ipc_get(&m, "a"), "AJJ");
	CHECK_STR(ipc_get(&m, "b"), "1=2");
	ipc_msg_free(&m);
}

/* A message holding count attributes "a=" (3 octets each). */
static char *many_attrs(size_t count, size_t *len)
{
	static const char head[] = "type=x\n";
	*len = sizeof(head) - 1 + count * 3 + 1;
	char *buf = malloc(*len);
	memcpy(buf, head, sizeof(head) - 1);
	for (size_t i = 0; i < count; i++)
		memcpy(buf + sizeof(head) - 1 + i * 3, "a=\n", 3);
	buf[*len - 1] = '\n';
	return buf;
}

static void test_limits(void)
{
	struct ipc_msg m;
	size_t len, used;
	char *buf;

	/* IPC_MAX_ATTRS attributes are fine, one more is malformed. */
	buf = many_attrs(IPC_MAX_ATTRS, &len);
	CHECK_INT(ipc_decode(buf, len, &m, &used), IPC_DONE);
	CHECK_INT(m.count, IPC_MAX_ATTRS);
	ipc_msg_free(&m);
	free(buf);
	buf = many_attrs(IPC_MAX_ATTRS + 1, &len);
	CHECK_INT(ipc_decode(buf, len, &m, &used), IPC_BAD);
	int fd = bytes_fd(buf, len);
	struct bio b;
	bio_init(&b, fd, 2000);
	CHECK_INT(ipc_recv(&b, &m), BIO_TOOLONG);
	bio_free(&b);
	close(fd);
	free(buf);

	/* Larger than IPC_MAX_MESSAGE: malformed, complete or not. */
	len = IPC_MAX_MESSAGE + 64;
	buf = malloc(len);
	memcpy(buf, "type=x\nv=", 9);
	memset(buf + 9, 'y', len - 9);
	CHECK_INT(ipc_decode(buf, len, &m, &used), IPC_BAD);
	CHECK_INT(ipc_decode(buf, IPC_MAX_MESSAGE, &m, &used), IPC_NEED_MORE);
	buf[len - 2] = '\n';
	buf[len - 1] = '\n';
	CHECK_INT(ipc_decode(buf, len, &m, &used), IPC_BAD);
	fd = bytes_fd(buf, len);
	bio_init(&b, fd, 2000);
	CHECK_INT(ipc_recv(&b, &m), BIO_TOOLONG);
	bio_free(&b);
	close(fd);
	free(buf);
}

static void test_get(void)
{
	struct ipc_msg m;
	long long n = -1;

	ipc_msg_init(&m, "result");
	ipc_add(&m, "rcpt", "first");
	ipc_add(&m, "rcpt", "second");
	ipc_add(&m, "count", "%d", 42);
	ipc_add(&m, "neg", "-7");
	ipc_add(&m, "empty", "%s", "");
	ipc_add(&m, "junk", "12x");
	ipc_add(&m, "huge", "99999999999999999999");
	CHECK_STR(m.type, "result");
	CHECK_STR(ipc_get(&m, "rcpt"), "first");
	CHECK(ipc_get(&m, "absent") == NULL);
	CHECK(ipc_get_ll(&m, "count", &n));
	CHECK_INT(n, 42);
	CHECK(ipc_get_ll(&m, "neg", &n));
	CHECK_INT(n, -7);
	n = 5;
	CHECK(!ipc_get_ll(&m, "empty", &n));
	CHECK(!ipc_get_ll(&m, "junk", &n));
	CHECK(!ipc_get_ll(&m, "huge", &n));
	CHECK(!ipc_get_ll(&m, "absent", &n));
	CHECK_INT(n, 5);	/* untouched on failure */
	ipc_msg_free(&m);
}

/* ipc_send writes what ipc_encode makes; ipc_recv reads it back. */
static void test_send_recv(void)
{
	int sv[2];
	if (pipe(sv) != 0)
		abort();
	struct bio w, r;
	struct ipc_msg m, got;
	bio_init(&w, sv[1], 2000);
	bio_init(&r, sv[0], 2000);
	ipc_msg_init(&m, "job");
	ipc_add(&m, "sender", "%s", "");
	ipc_add(&m, "rcpt", "0 SF - b@example.net");
	CHECK(ipc_send(&w, &m));
	close(sv[1]);
	CHECK_INT(ipc_recv(&r, &got), BIO_OK);
	CHECK_STR(got.type, "job");
	CHECK_STR(ipc_get(&got, "sender"), "");
	CHECK_STR(ipc_get(&got, "rcpt"), "0 SF - b@example.net");
	ipc_msg_free(&got);
	CHECK_INT(ipc_recv(&r, &got), BIO_EOF);
	ipc_msg_free(&m);
	bio_free(&w);
	bio_free(&r);
	close(sv[0]);
}

/* ipc_put*() write the bytes ipc_add() and ipc_encode() write. */
static void test_put_matches_encode(void)
{
	static const char *const values[] = {
		"", "plain", "100%", "a\r\nb", "\x01\x7f", "caf\xc3\xa9", "%0A",
	};
	char big[1500];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[700] = '\n';	/* an escape past printf's small buffer */

	struct ipc_msg m;
	struct str want, got;
	ipc_msg_init(&m, "job\n%");
	str_init(&got, STR_NO_MAX);
	ipc_put_type(&got, "job\n%");
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		ipc_add(&m, "v", "%s", values[i]);
		ipc_put(&got, "v", values[i]);
		ipc_add(&m, "f", "%zu %s", i, values[i]);
		ipc_putf(&got, "f", "%zu %s", i, values[i]);
	}
	ipc_add(&m, "big", "%s", big);
	ipc_putf(&got, "big", "%s", big);
	ipc_add(&m, "n", "%lld", -9223372036854775807LL - 1);
	ipc_put_ll(&got, "n", -9223372036854775807LL - 1);
	ipc_add(&m, "z", "%lld", 0LL);
	ipc_put_ll(&got, "z", 0);
	ipc_add(&m, "p", "%lld", 4096LL);
	ipc_put_ll(&got, "p", 4096);
	ipc_put_end(&got);
	str_init(&want, STR_NO_MAX);
	ipc_encode(&m, &want);
	CHECK_INT(got.len, want.len);
	CHECK(got.len == want.len && memcmp(got.data, want.data, got.len) == 0);
	str_free(&want);
	str_free(&got);
	ipc_msg_free(&m);
}

int main(void)
{
	RUN(test_encode_escapes);
	RUN(test_round_trip);
	RUN(test_decode_table);
	RUN(test_limits);
	RUN(test_get);
	RUN(test_send_recv);
	RUN(test_put_matches_encode);
	return unit_done();
}
