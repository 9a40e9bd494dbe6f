/*
 * json.h - the one JSON string escape of kit's network programs (the server
 * driver and the load generator each print their one-line messages with it).
 */
#ifndef KIT_NET_JSON_H
#define KIT_NET_JSON_H

#include <stddef.h>
#include <stdio.h>

/* msg as the inside of a JSON string, cut to fit size (with its NUL). */
static inline void json_escape(char *out, size_t size, const char *msg)
{
	size_t k = 0;

	for (const unsigned char *p = (const unsigned char *)msg; *p && k + 7 < size; p++) {
		if (*p == '"' || *p == '\\') {
			out[k++] = '\\';
			out[k++] = (char)*p;
		} else if (*p < 0x20) {
			k += (size_t)snprintf(out + k, size - k, "\\u%04x", *p);
		} else {
			out[k++] = (char)*p;
		}
	}
	out[k] = '\0';
}

#endif
