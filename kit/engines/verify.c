/*
 * verify.c - stamping and checking kit's pattern (see verify.h), and the
 * crc32c it uses (SSE4.2 when the CPU has it, a table otherwise).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "verify.h"

#define FILL_CHUNK (1u << 20)

/* ---- crc32c (Castagnoli, reflected 0x82F63B78) --------------------------- */

static uint32_t crc_table[256];

static void crc_table_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		for (c = i, j = 0; j < 8; j++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		crc_table[i] = c;
	}
}

static uint32_t crc32c_table(uint32_t crc, const unsigned char *p, uint64_t len)
{
	if (!crc_table[1])
		crc_table_init();
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const unsigned char *p, uint64_t len)
{
	uint64_t c = crc;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		c = __builtin_ia32_crc32di(c, w);
	}
	crc = (uint32_t)c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}
#endif

uint32_t kit_crc32c(uint32_t crc, const void *buf, uint64_t len)
{
	static int hw = -1;

	crc = ~crc;
#if defined(__x86_64__)
	if (hw < 0)
		hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
	if (hw)
		return ~crc32c_sse42(crc, buf, len);
#else
	(void)hw;
#endif
	return ~crc32c_table(crc, buf, len);
}

/* ---- the pattern --------------------------------------------------------- */

static inline uint64_t splitmix_next(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void fill_payload(unsigned char *unit, uint64_t offset, uint64_t seed)
{
	uint64_t state = offset ^ seed, w;
	size_t i;

	for (i = sizeof(struct kit_unit_header); i < KIT_VERIFY_UNIT; i += 8) {
		w = splitmix_next(&state);
		memcpy(unit + i, &w, 8);
	}
}

static uint32_t unit_crc(const unsigned char *unit)
{
	static const uint32_t zero;
	const size_t at = offsetof(struct kit_unit_header, crc);
	uint32_t c;

	c = kit_crc32c(0, unit, at);
	c = kit_crc32c(c, &zero, sizeof(zero));
	return kit_crc32c(c, unit + at + 4, KIT_VERIFY_UNIT - at - 4);
}

static void stamp_unit(unsigned char *unit, uint64_t offset, uint64_t seed)
{
	struct kit_unit_header h = { KIT_VERIFY_MAGIC, offset, seed, 0, 0 };

	memcpy(unit, &h, sizeof(h));
	fill_payload(unit, offset, seed);
	h.crc = unit_crc(unit);
	memcpy(unit, &h, sizeof(h));
}

void kit_stamp_buffer(void *buf, uint64_t len, uint64_t offset, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t i;

	for (i = 0; i + KIT_VERIFY_UNIT <= len; i += KIT_VERIFY_UNIT)
		stamp_unit(p + i, offset + i, seed);
}

/* Payload words (of the 60 after the header) that match (offset, seed). */
static unsigned agreeing_words(const unsigned char *unit, uint64_t offset, uint64_t seed)
{
	uint64_t state = offset ^ seed, w;
	unsigned agree = 0;
	size_t i;

	for (i = sizeof(struct kit_unit_header); i < KIT_VERIFY_UNIT; i += 8) {
		w = splitmix_next(&state);
		agree += memcmp(unit + i, &w, 8) == 0;
	}
	return agree;
}

#define PAYLOAD_WORDS ((KIT_VERIFY_UNIT - sizeof(struct kit_unit_header)) / 8)

/* The seed a damaged unit was written with: its header's when the payload
 * agrees with it, else the one a single changed byte of the seed field
 * gives. Returns 0 when no seed explains the payload. */
static int writer_seed(const unsigned char *unit, uint64_t offset, uint64_t *seed)
{
	struct kit_unit_header h;
	unsigned b, v;

	memcpy(&h, unit, sizeof(h));
	if (agreeing_words(unit, offset, h.seed) * 2 >= PAYLOAD_WORDS) {
		*seed = h.seed;
		return 1;
	}
	for (b = 0; b < 8; b++)
		for (v = 0; v < 256; v++) {
			uint64_t s = (h.seed & ~(0xffull << (8 * b))) | ((uint64_t)v << (8 * b));

			if (agreeing_words(unit, offset, s) * 2 >= PAYLOAD_WORDS) {
				*seed = s;
				return 1;
			}
		}
	return 0;
}

__attribute__((format(printf, 3, 4)))
static int report(struct kit_verify_report *r, uint64_t at, const char *fmt, ...)
{
	va_list ap;

	r->bad = 1;
	r->bad_offset = at;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	return 1;
}

/* A unit whose magic or checksum is wrong: rebuilt from its offset and its
 * writer's seed, the first byte that differs is named exactly, header bytes
 * included. */
static int report_damage(const unsigned char *unit, uint64_t at, struct kit_verify_report *r)
{
	unsigned char want[KIT_VERIFY_UNIT];
	uint64_t seed;
	size_t i;

	if (!writer_seed(unit, at, &seed)) {
		struct kit_unit_header h;

		memcpy(&h, unit, sizeof(h));
		if (h.magic != KIT_VERIFY_MAGIC)
			return report(r, at, "verify: no kit data in the unit at offset %llu "
				      "(not written by kit, or overwritten)", (unsigned long long)at);
		return report(r, at, "verify: crc32c mismatch in the unit at offset %llu: "
			      "its payload matches no seed (overwritten)", (unsigned long long)at);
	}
	stamp_unit(want, at, seed);
	for (i = 0; i < KIT_VERIFY_UNIT; i++)
		if (want[i] != unit[i])
			break;
	if (i == KIT_VERIFY_UNIT)	/* cannot happen: the unit failed a check */
		i = offsetof(struct kit_unit_header, crc);
	return report(r, at + i, "verify: wrong byte at offset %llu (in the unit at offset %llu)",
		      (unsigned long long)(at + i), (unsigned long long)at);
}

int kit_verify_buffer(const void *buf, uint64_t len, uint64_t offset,
		      struct kit_verify_report *r)
{
	const unsigned char *p = buf;
	uint64_t i;

	for (i = 0; i + KIT_VERIFY_UNIT <= len; i += KIT_VERIFY_UNIT) {
		const unsigned char *unit = p + i;
		struct kit_unit_header h;
		uint64_t at = offset + i;

		memcpy(&h, unit, sizeof(h));
		if (h.magic != KIT_VERIFY_MAGIC || unit_crc(unit) != h.crc)
			return report_damage(unit, at, r);
		/* whole and checksummed, but another offset's: a misplaced write */
		if (h.offset != at)
			return report(r, at, "verify: the unit at offset %llu holds the data of offset %llu "
				      "(misplaced write or read)", (unsigned long long)at,
				      (unsigned long long)h.offset);
		r->checked_bytes += KIT_VERIFY_UNIT;
	}
	return 0;
}

/* ---- whole-file helpers (pre-fill, read-back) ---------------------------- */

int kit_prefill(int fd, uint64_t offset, uint64_t len, uint64_t seed,
		uint64_t *progress)
{
	unsigned char *buf;
	int err = 0;

	if (posix_memalign((void **)&buf, 4096, FILL_CHUNK))
		return -ENOMEM;
	while (len && !err) {
		uint64_t n = len < FILL_CHUNK ? len : FILL_CHUNK, done = 0;

		kit_stamp_buffer(buf, n, offset, seed);
		while (done < n) {
			ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(offset + done));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				err = w < 0 ? -errno : -EIO;
				break;
			}
			done += (uint64_t)w;
		}
		offset += n;
		len -= n;
		if (progress)
			__atomic_add_fetch(progress, n, __ATOMIC_RELAXED);
	}
	free(buf);
	return err;
}

int kit_verify_range(int fd, uint64_t offset, uint64_t len,
		     struct kit_verify_report *r)
{
	unsigned char *buf;
	int err = 0;

	if (posix_memalign((void **)&buf, 4096, FILL_CHUNK))
		return -ENOMEM;
	while (len && !err && !r->bad) {
		uint64_t n = len < FILL_CHUNK ? len : FILL_CHUNK, got = 0;

		while (got < n) {
			ssize_t g = pread(fd, buf + got, n - got, (off_t)(offset + got));

			if (g < 0 && errno == EINTR)
				continue;
			if (g <= 0) {
				err = g < 0 ? -errno : -ENODATA;
				break;
			}
			got += (uint64_t)g;
		}
		if (!err)
			kit_verify_buffer(buf, n, offset, r);
		offset += n;
		len -= n;
	}
	free(buf);
	return err ? err : (r->bad ? 1 : 0);
}
