/*
 * logs.c - fio's log lines, formatted in C: a per-I/O log of a fast job has
 * millions of lines, which Python formats at about a microsecond each.
 */
#include <stdint.h>

#include "kit.h"

static char *put_i64(char *p, int64_t v)
{
	char digits[24];
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	int n = 0;

	if (v < 0)
		*p++ = '-';
	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (n)
		*p++ = digits[--n];
	return p;
}

int64_t kit_format_log(const int64_t *times, const int64_t *values, const int64_t *ddirs,
		       const int64_t *sizes, const int64_t *offsets, uint64_t n, char *buf, uint64_t cap)
{
	char *p = buf;
	uint64_t i;

	if (cap < n * KIT_LOG_LINE_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		p = put_i64(p, times[i]);
		*p++ = ',';
		*p++ = ' ';
		p = put_i64(p, values[i]);
		*p++ = ',';
		*p++ = ' ';
		p = put_i64(p, ddirs[i]);
		*p++ = ',';
		*p++ = ' ';
		p = put_i64(p, sizes[i]);
		*p++ = ',';
		*p++ = ' ';
		if (offsets) {
			p = put_i64(p, offsets[i]);
			*p++ = ',';
			*p++ = ' ';
		}
		*p++ = '0';             /* prio */
		*p++ = '\n';
	}
	return p - buf;
}
