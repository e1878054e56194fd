/*
 * fuzz_cfg.c - libFuzzer harness for the postern.conf parser (mail/cfg.c
 * through cfg_load_text, the code cfg_load runs on the file's bytes):
 * continuation lines, comments, $name and ${name} expansion, and every
 * typed value and semantic check behind them. Built by `make fuzz`, run
 * briefly by `make fuzz-smoke`.
 *
 * The file is trusted (root-owned) but may be wrong, and `postern check`
 * exists to say how. So, for any bytes: no crash, leak or unbounded
 * expansion; a refused text gets a message that names the file; an
 * accepted one leaves every key with a printable effective value that
 * cfg_value_text returns whole.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {
#define KEY_NAME(type, name, def) #name,
	CFG_KEYS(KEY_NAME)
#undef KEY_NAME
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";

	if (!cfg_load_text("/etc/postern", "postern.conf", (const char *)data,
	    size, err, sizeof(err))) {
		if (strncmp(err, "postern.conf", 12) != 0) {
			fprintf(stderr, "fuzz_cfg: error without the file "
			    "name: \"%s\"\n", err);
			abort();
		}
		return 0;
	}
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char value[70000];
		if (!cfg_value_text(keys[i], value, sizeof(value))) {
			fprintf(stderr, "fuzz_cfg: %s has no value\n", keys[i]);
			abort();
		}
		if (strchr(value, '\n') != NULL) {
			fprintf(stderr, "fuzz_cfg: %s holds a newline\n",
			    keys[i]);
			abort();
		}
	}
	return 0;
}
