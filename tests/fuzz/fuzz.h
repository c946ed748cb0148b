/*
 * fuzz.h - the fuzz targets under tests/fuzz/.
 *
 * Each fuzz_<module>.c is one target: fuzz_<module>() runs one input
 * through the module and abort()s when an invariant breaks, and
 * LLVMFuzzerTestOneInput() (libFuzzer's entry point) calls it.  A target
 * is linked either with clang -fsanitize=fuzzer (./configure
 * --enable-fuzzing, which supplies main()) or with fuzz_main.c, a plain
 * driver that runs files once; unit tests call fuzz_<module>() on their
 * own tables.  See README.
 */
#ifndef FERRY_FUZZ_H
#define FERRY_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point: returns 0; abort()s on a broken invariant. */
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_smtp_parse.c: relay/smtp_parse.c's command parser and DATA machine */
int	fuzz_smtp_parse(const uint8_t *data, size_t size);
/* fuzz_imap_parse.c: syncd/imap_parse.c, whole, chunked and paused */
int	fuzz_imap_parse(const uint8_t *data, size_t size);
/* fuzz_msgid.c: common/msgid.c and common/rfc5322.c */
int	fuzz_msgid(const uint8_t *data, size_t size);
/* fuzz_config.c: common/config.c, mailferry.conf */
int	fuzz_config(const uint8_t *data, size_t size);
/* fuzz_srs.c: relay/srs.c, forward, parse and reverse */
int	fuzz_srs(const uint8_t *data, size_t size);
/* fuzz_imap_session.c: syncd's IMAP client against a hostile server */
int	fuzz_imap_session(const uint8_t *data, size_t size);
/* fuzz_authres.c: relay/authres.c, the filter and our own field */
int	fuzz_authres(const uint8_t *data, size_t size);

#endif
