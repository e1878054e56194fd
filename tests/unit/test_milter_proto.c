/* Unit tests for mail/milter_proto.c: packets encoded, replies decoded. */
#include <string.h>

#include "milter_proto.h"
#include "unit.h"

/* A reply packet (command and data, no length) given as bytes. */
struct reply_case {
	const char *bytes;
	size_t len;
	bool ok;
	char cmd;
	int code;		/* REPLYCODE */
	const char *field;	/* text, name, addr or reason */
	const char *field2;	/* value or args */
};

#define B(s) s, sizeof(s) - 1

static const struct reply_case reply_cases[] = {
	{ B("c"), true, 'c', 0, NULL, NULL },
	{ B("a"), true, 'a', 0, NULL, NULL },
	{ B("r"), true, 'r', 0, NULL, NULL },
	{ B("t"), true, 't', 0, NULL, NULL },
	{ B("d"), true, 'd', 0, NULL, NULL },
	{ B("p"), true, 'p', 0, NULL, NULL },
	{ B("s"), true, 's', 0, NULL, NULL },
	{ B("cxx"), false, 'c', 0, NULL, NULL },
	{ B("y550 5.7.1 no\0"), true, 'y', 550, "550 5.7.1 no", NULL },
	{ B("y451-4.7.1 a\r\n451 4.7.1 b\0"), true, 'y', 451,
	    "451-4.7.1 a\r\n451 4.7.1 b", NULL },
	/* not 4xx/5xx, mixed codes, a bare LF, no NUL, "-" on the last */
	{ B("y250 ok\0"), false, 'y', 0, NULL, NULL },
	{ B("y550-a\r\n451 b\0"), false, 'y', 0, NULL, NULL },
	{ B("y550 a\nb\0"), false, 'y', 0, NULL, NULL },
	{ B("y550 no"), false, 'y', 0, NULL, NULL },
	{ B("y550-last\0"), false, 'y', 0, NULL, NULL },
	{ B("y55\0"), false, 'y', 0, NULL, NULL },
	{ B("hX-Spam\0yes\0"), true, 'h', 0, "X-Spam", "yes" },
	{ B("hX Spam\0yes\0"), false, 'h', 0, NULL, NULL },
	{ B("hX:S\0yes\0"), false, 'h', 0, NULL, NULL },
	{ B("h\0yes\0"), false, 'h', 0, NULL, NULL },
	{ B("hX-Spam\0yes"), false, 'h', 0, NULL, NULL },
	{ B("m\0\0\0\1Subject\0new\0"), true, 'm', 0, "Subject", "new" },
	{ B("i\0\0\0\0X-Top\0v\0"), true, 'i', 0, "X-Top", "v" },
	{ B("m\0\0"), false, 'm', 0, NULL, NULL },
	{ B("+<a@b>\0"), true, '+', 0, "<a@b>", NULL },
	{ B("2<a@b>\0NOTIFY=NEVER\0"), true, '2', 0, "<a@b>", "NOTIFY=NEVER" },
	{ B("-<a@b>\0"), true, '-', 0, "<a@b>", NULL },
	{ B("-<a@b>\0x\0"), false, '-', 0, NULL, NULL },
	{ B("e<s@b>\0"), true, 'e', 0, "<s@b>", NULL },
	{ B("qspam\0"), true, 'q', 0, "spam", NULL },
	{ B("q"), false, 'q', 0, NULL, NULL },
	{ B("bnew body"), true, 'b', 0, NULL, NULL },
	{ B("Z"), false, 'Z', 0, NULL, NULL },
	{ B(""), false, 0, 0, NULL, NULL },
};

static void test_replies(void)
{
	char err[200];
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]);
	    i++) {
		const struct reply_case *c = &reply_cases[i];
		struct milter_reply r;
		bool ok = milter_decode_reply((const unsigned char *)c->bytes,
		    c->len, &r, err, sizeof(err));
		CHECK_INT(ok, c->ok);
		if (!ok || !c->ok)
			continue;
		CHECK_INT(r.cmd, c->cmd);
		if (c->cmd == 'y') {
			CHECK_INT(r.code, c->code);
			CHECK_STR(r.text, c->field);
		} else if (c->cmd == 'h' || c->cmd == 'm' || c->cmd == 'i') {
			CHECK_STR(r.name, c->field);
			CHECK_STR(r.value, c->field2);
		} else if (c->cmd == '+' || c->cmd == '2' || c->cmd == '-' ||
		    c->cmd == 'e') {
			CHECK_STR(r.addr, c->field);
			if (c->field2 != NULL)
				CHECK_STR(r.args, c->field2);
			else
				CHECK(r.args == NULL);
		} else if (c->cmd == 'q') {
			CHECK_STR(r.reason, c->field);
		}
	}
	struct milter_reply r;
	CHECK(milter_decode_reply((const unsigned char *)"m\0\0\0\2X\0v\0", 9,
	    &r, err, sizeof(err)));
	CHECK_INT(r.index, 2);
	CHECK(milter_decode_reply((const unsigned char *)"bnew body", 9, &r,
	    err, sizeof(err)));
	CHECK_INT(r.body_len, 8);
	CHECK(memcmp(r.body, "new body", 8) == 0);
}

static void test_optneg(void)
{
	char err[200];
	struct milter_reply r;
	static const unsigned char plain[] = { 'O', 0, 0, 0, 6, 0, 0, 1, 0xff,
		0, 0, 0, 0x10 };
	CHECK(milter_decode_reply(plain, sizeof(plain), &r, err, sizeof(err)));
	CHECK_INT(r.version, 6);
	CHECK_INT(r.actions, 0x1ff);
	CHECK_INT(r.protocol, MILTER_P_NOBODY);
	CHECK(r.symlist[MILTER_STAGE_MAIL] == NULL);
	/* SETSYMLIST: stage 2 (MAIL) gets its own list */
	static const unsigned char sym[] = { 'O', 0, 0, 0, 6, 0, 0, 1, 0,
		0, 0, 0, 0, 0, 0, 0, 2, '{', 'a', '}', ' ', 'i', 0 };
	CHECK(milter_decode_reply(sym, sizeof(sym), &r, err, sizeof(err)));
	CHECK_STR(r.symlist[MILTER_STAGE_MAIL], "{a} i");
	static const unsigned char badstage[] = { 'O', 0, 0, 0, 6, 0, 0, 1, 0,
		0, 0, 0, 0, 0, 0, 0, 9, 'i', 0 };
	CHECK(!milter_decode_reply(badstage, sizeof(badstage), &r, err,
	    sizeof(err)));
	CHECK(!milter_decode_reply(plain, 9, &r, err, sizeof(err)));
}

static void test_encode(void)
{
	struct str s;
	str_init(&s, STR_NO_MAX);
	milter_encode_optneg(&s, 6, 0x1ff, 0x10);
	CHECK_INT(s.len, 17);
	CHECK(memcmp(s.data, "\0\0\0\15O\0\0\0\6\0\0\1\377\0\0\0\20", 17) == 0);
	str_clear(&s);
	milter_encode_connect(&s, "mx", '4', 25, "192.0.2.1");
	CHECK_INT(s.len, 4 + 1 + 3 + 1 + 2 + 10);
	CHECK(memcmp(s.data, "\0\0\0\21Cmx\0004\0\03119", 13) == 0);
	str_clear(&s);
	const char *strs[] = { "<a@b>", "SIZE=10" };
	milter_encode_strings(&s, 'M', strs, 2);
	CHECK(memcmp(s.data, "\0\0\0\17M<a@b>\0SIZE=10\0", 19) == 0);
	str_clear(&s);
	const char *n[] = { "i" }, *v[] = { "ID1" };
	milter_encode_macros(&s, 'T', n, v, 1);
	CHECK(memcmp(s.data, "\0\0\0\10DTi\0ID1\0", 12) == 0);
	str_clear(&s);
	milter_encode_header(&s, "Subject", "hi");
	CHECK(memcmp(s.data, "\0\0\0\14LSubject\0hi\0", 16) == 0);
	str_clear(&s);
	milter_encode(&s, 'E', NULL, 0);
	CHECK(memcmp(s.data, "\0\0\0\1E", 5) == 0);
	unsigned char head[4] = { 0, 0, 0, 0 };
	uint32_t len;
	CHECK(!milter_decode_length(head, &len));
	head[3] = 1;
	CHECK(milter_decode_length(head, &len));
	head[0] = 0x7f;
	CHECK(!milter_decode_length(head, &len));
	str_free(&s);
}

int main(void)
{
	RUN(test_replies);
	RUN(test_optneg);
	RUN(test_encode);
	return unit_done();
}
