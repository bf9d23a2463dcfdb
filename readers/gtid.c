/* SPDX-License-Identifier: Apache-2.0 */
/* GTID sets (MySQL) and GTID positions (MariaDB); see gtid.h. */
#include "readers/gtid.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/th_buf.h"
#include "common/th_bytes.h"
#include "common/th_error.h"

/* One uuid and its intervals [start, end), sorted, disjoint, non-adjacent. */
struct gtid_sid {
	uint8_t uuid[16];
	uint32_t n, cap;
	struct gtid_iv { uint64_t start, end; } *iv;
};

struct th_gtid_set {
	uint32_t n, cap;          /* sids sorted by uuid bytes */
	struct gtid_sid *sids;
};

static void why_at(char *why, size_t why_len, const char *text, const char *at, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void why_at(char *why, size_t why_len, const char *text, const char *at, const char *fmt, ...)
{
	if (!why || !why_len)
		return;
	char msg[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(why, why_len, "%s at offset %zu near \"%.20s\"", msg, (size_t)(at - text), at);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static const char *skip_space(const char *p)
{
	while (is_space(*p))
		p++;
	return p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int th_gtid_uuid_parse(const char *text, size_t len, uint8_t uuid[16])
{
	bool hyphens;
	if (len == 36)
		hyphens = true;
	else if (len == 32)
		hyphens = false;
	else
		return -TH_EGTID;
	size_t j = 0;
	for (size_t i = 0; i < 16; i++) {
		if (hyphens && (i == 4 || i == 6 || i == 8 || i == 10)) {
			if (text[j] != '-')
				return -TH_EGTID;
			j++;
		}
		int hi = hexval(text[j]), lo = hexval(text[j + 1]);
		if (hi < 0 || lo < 0)
			return -TH_EGTID;
		uuid[i] = (uint8_t)(hi << 4 | lo);
		j += 2;
	}
	return 0;
}

void th_gtid_uuid_format(const uint8_t uuid[16], char out[TH_GTID_UUID_TEXT_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t j = 0;
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[uuid[i] >> 4];
		out[j++] = hex[uuid[i] & 15];
	}
	out[j] = '\0';
}

/* ---- sets ------------------------------------------------------------------ */

int th_gtid_set_new(struct th_gtid_set **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

void th_gtid_set_clear(struct th_gtid_set *set)
{
	for (uint32_t i = 0; i < set->n; i++)
		free(set->sids[i].iv);
	set->n = 0;
}

void th_gtid_set_free(struct th_gtid_set *set)
{
	if (!set)
		return;
	th_gtid_set_clear(set);
	free(set->sids);
	free(set);
}

/* Index of uuid, or of where it would go (*found false). */
static uint32_t sid_find(const struct th_gtid_set *set, const uint8_t uuid[16], bool *found)
{
	uint32_t lo = 0, hi = set->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = memcmp(set->sids[mid].uuid, uuid, 16);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct gtid_sid *sid_get(struct th_gtid_set *set, const uint8_t uuid[16])
{
	bool found;
	uint32_t i = sid_find(set, uuid, &found);
	if (found)
		return &set->sids[i];
	if (th_grow32((void **)&set->sids, &set->cap, (size_t)set->n + 1, sizeof *set->sids))
		return NULL;
	memmove(&set->sids[i + 1], &set->sids[i], (set->n - i) * sizeof *set->sids);
	memset(&set->sids[i], 0, sizeof set->sids[i]);
	memcpy(set->sids[i].uuid, uuid, 16);
	set->n++;
	return &set->sids[i];
}

/* Adds [start, end) to a sid, merging what overlaps or touches it. */
static int sid_add(struct gtid_sid *s, uint64_t start, uint64_t end)
{
	/* First interval that ends at or after start: everything before stays. */
	uint32_t lo = 0, hi = s->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->iv[mid].end < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint32_t first = lo, last = lo; /* [first, last) merge with the new one */
	while (last < s->n && s->iv[last].start <= end)
		last++;
	if (first < last) {
		if (s->iv[first].start < start)
			start = s->iv[first].start;
		if (s->iv[last - 1].end > end)
			end = s->iv[last - 1].end;
		s->iv[first].start = start;
		s->iv[first].end = end;
		memmove(&s->iv[first + 1], &s->iv[last], (s->n - last) * sizeof *s->iv);
		s->n -= last - first - 1;
		return 0;
	}
	if (th_grow32((void **)&s->iv, &s->cap, (size_t)s->n + 1, sizeof *s->iv))
		return -ENOMEM;
	memmove(&s->iv[first + 1], &s->iv[first], (s->n - first) * sizeof *s->iv);
	s->iv[first].start = start;
	s->iv[first].end = end;
	s->n++;
	return 0;
}

/*
 * Adding to a set can fail half-way only on allocation. Callers that must
 * leave the set unchanged work on a copy and swap; th_gtid_set_add_range
 * touches a single sid, where a failed sid_add changes nothing, and it never
 * leaves an empty sid behind.
 */
int th_gtid_set_add_range(struct th_gtid_set *set, const uint8_t uuid[16], uint64_t first, uint64_t last)
{
	if (first == 0 || last < first || last > TH_GTID_GNO_MAX)
		return -TH_EGTID;
	bool existed;
	sid_find(set, uuid, &existed);
	struct gtid_sid *s = sid_get(set, uuid);
	if (!s)
		return -ENOMEM;
	int rc = sid_add(s, first, last + 1);
	if (rc < 0 && !existed) {
		bool found;
		uint32_t i = sid_find(set, uuid, &found);
		memmove(&set->sids[i], &set->sids[i + 1], (set->n - i - 1) * sizeof *set->sids);
		set->n--;
	}
	return rc;
}

int th_gtid_set_add(struct th_gtid_set *set, const uint8_t uuid[16], uint64_t gno)
{
	return th_gtid_set_add_range(set, uuid, gno, gno);
}

int th_gtid_set_copy(struct th_gtid_set *dst, const struct th_gtid_set *src)
{
	if (dst == src)
		return 0;
	struct gtid_sid *sids = src->n ? calloc(src->n, sizeof *sids) : NULL;
	if (src->n && !sids)
		return -ENOMEM;
	for (uint32_t i = 0; i < src->n; i++) {
		sids[i] = src->sids[i];
		sids[i].cap = src->sids[i].n;
		sids[i].iv = malloc(src->sids[i].n * sizeof *sids[i].iv);
		if (!sids[i].iv) {
			while (i-- > 0)
				free(sids[i].iv);
			free(sids);
			return -ENOMEM;
		}
		memcpy(sids[i].iv, src->sids[i].iv, src->sids[i].n * sizeof *sids[i].iv);
	}
	th_gtid_set_clear(dst);
	free(dst->sids);
	dst->sids = sids;
	dst->n = dst->cap = src->n;
	return 0;
}

/* Swaps contents: the all-or-nothing idiom (work on a copy, swap on success). */
static void set_swap(struct th_gtid_set *a, struct th_gtid_set *b)
{
	struct th_gtid_set t = *a;
	*a = *b;
	*b = t;
}

static int set_union_into(struct th_gtid_set *dst, const struct th_gtid_set *src)
{
	for (uint32_t i = 0; i < src->n; i++) {
		struct gtid_sid *d = sid_get(dst, src->sids[i].uuid);
		if (!d)
			return -ENOMEM;
		for (uint32_t k = 0; k < src->sids[i].n; k++) {
			int rc = sid_add(d, src->sids[i].iv[k].start, src->sids[i].iv[k].end);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

int th_gtid_set_union(struct th_gtid_set *dst, const struct th_gtid_set *src)
{
	if (dst == src || src->n == 0)
		return 0;
	struct th_gtid_set tmp = { 0 };
	int rc = th_gtid_set_copy(&tmp, dst);
	if (rc == 0)
		rc = set_union_into(&tmp, src);
	if (rc == 0)
		set_swap(dst, &tmp);
	th_gtid_set_clear(&tmp);
	free(tmp.sids);
	return rc;
}

bool th_gtid_set_is_empty(const struct th_gtid_set *set)
{
	return set->n == 0;
}

static bool sid_contains(const struct gtid_sid *s, uint64_t start, uint64_t end)
{
	uint32_t lo = 0, hi = s->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->iv[mid].end <= start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->n && s->iv[lo].start <= start && end <= s->iv[lo].end;
}

bool th_gtid_set_contains_gtid(const struct th_gtid_set *set, const uint8_t uuid[16], uint64_t gno)
{
	bool found;
	uint32_t i = sid_find(set, uuid, &found);
	return found && gno >= 1 && gno <= TH_GTID_GNO_MAX && sid_contains(&set->sids[i], gno, gno + 1);
}

bool th_gtid_set_contains(const struct th_gtid_set *set, const struct th_gtid_set *sub)
{
	for (uint32_t i = 0; i < sub->n; i++) {
		bool found;
		uint32_t j = sid_find(set, sub->sids[i].uuid, &found);
		if (!found)
			return false;
		/* Intervals are canonical, so each of sub's lies inside one of set's. */
		for (uint32_t k = 0; k < sub->sids[i].n; k++)
			if (!sid_contains(&set->sids[j], sub->sids[i].iv[k].start, sub->sids[i].iv[k].end))
				return false;
	}
	return true;
}

bool th_gtid_set_equal(const struct th_gtid_set *a, const struct th_gtid_set *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++) {
		const struct gtid_sid *x = &a->sids[i], *y = &b->sids[i];
		if (memcmp(x->uuid, y->uuid, 16) != 0 || x->n != y->n ||
		    memcmp(x->iv, y->iv, x->n * sizeof *x->iv) != 0)
			return false;
	}
	return true;
}

uint64_t th_gtid_set_count(const struct th_gtid_set *set)
{
	uint64_t total = 0;
	for (uint32_t i = 0; i < set->n; i++)
		for (uint32_t k = 0; k < set->sids[i].n; k++) {
			uint64_t d = set->sids[i].iv[k].end - set->sids[i].iv[k].start;
			total = total + d < total ? UINT64_MAX : total + d;
		}
	return total;
}

int th_gtid_set_format(const struct th_gtid_set *set, struct th_buf *out)
{
	for (uint32_t i = 0; i < set->n; i++) {
		char u[TH_GTID_UUID_TEXT_LEN + 1];
		th_gtid_uuid_format(set->sids[i].uuid, u);
		if (i)
			th_buf_putc(out, ',');
		th_buf_puts(out, u);
		for (uint32_t k = 0; k < set->sids[i].n; k++) {
			const struct gtid_iv *iv = &set->sids[i].iv[k];
			if (iv->end - iv->start == 1)
				th_buf_printf(out, ":%llu", (unsigned long long)iv->start);
			else
				th_buf_printf(out, ":%llu-%llu", (unsigned long long)iv->start,
					      (unsigned long long)(iv->end - 1));
		}
	}
	th_buf_cstr(out);
	return th_buf_failed(out) ? -ENOMEM : 0;
}

/* Reads a decimal number; NULL when there are no digits or it overflows u64. */
static const char *parse_u64(const char *p, uint64_t *v)
{
	if (*p < '0' || *p > '9')
		return NULL;
	uint64_t x = 0;
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return NULL;
		x = x * 10 + d;
		p++;
	}
	*v = x;
	return p;
}

static bool is_hex_or_hyphen(char c)
{
	return hexval(c) >= 0 || c == '-';
}

/* Parses text into tmp (empty on entry). */
static int set_parse_into(struct th_gtid_set *tmp, const char *text, char *why, size_t why_len)
{
	const char *p = skip_space(text);
	for (;;) {
		/* Empty entries between commas are allowed, as in MySQL. */
		while (*p == ',')
			p = skip_space(p + 1);
		if (*p == '\0')
			return 0;
		const char *u = p;
		while (is_hex_or_hyphen(*p))
			p++;
		uint8_t uuid[16];
		if (th_gtid_uuid_parse(u, (size_t)(p - u), uuid) != 0) {
			why_at(why, why_len, text, u, "GTID set: malformed uuid");
			return -TH_EGTID;
		}
		p = skip_space(p);
		if (*p != ':') {
			why_at(why, why_len, text, p, "GTID set: expected ':' and an interval after the uuid");
			return -TH_EGTID;
		}
		while (*p == ':') {
			p = skip_space(p + 1);
			uint64_t a, b;
			const char *n = parse_u64(p, &a);
			if (!n) {
				if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')
					why_at(why, why_len, text, p,
					       "GTID set: tagged GTIDs (MySQL 8.3+) are not supported");
				else
					why_at(why, why_len, text, p, "GTID set: expected a transaction number");
				return -TH_EGTID;
			}
			const char *start = p;
			p = skip_space(n);
			b = a;
			if (*p == '-') {
				p = skip_space(p + 1);
				n = parse_u64(p, &b);
				if (!n) {
					why_at(why, why_len, text, p, "GTID set: expected the end of the interval");
					return -TH_EGTID;
				}
				p = skip_space(n);
			}
			if (a == 0 || b > TH_GTID_GNO_MAX || b < a) {
				why_at(why, why_len, text, start,
				       a == 0 ? "GTID set: transaction numbers start at 1"
				       : b < a ? "GTID set: interval ends before it starts"
					       : "GTID set: transaction number above 2^63-2");
				return -TH_EGTID;
			}
			int rc = th_gtid_set_add_range(tmp, uuid, a, b);
			if (rc < 0)
				return rc;
		}
		if (*p != ',' && *p != '\0') {
			why_at(why, why_len, text, p, "GTID set: expected ',' or ':'");
			return -TH_EGTID;
		}
	}
}

int th_gtid_set_parse(struct th_gtid_set *set, const char *text, char *why, size_t why_len)
{
	struct th_gtid_set tmp = { 0 };
	int rc = set_parse_into(&tmp, text, why, why_len);
	if (rc == 0)
		rc = th_gtid_set_union(set, &tmp);
	th_gtid_set_clear(&tmp);
	free(tmp.sids);
	return rc;
}

size_t th_gtid_set_encoded_size(const struct th_gtid_set *set)
{
	size_t n = 8;
	for (uint32_t i = 0; i < set->n; i++)
		n += 16 + 8 + (size_t)set->sids[i].n * 16;
	return n;
}

int th_gtid_set_encode(const struct th_gtid_set *set, struct th_buf *out)
{
	if (th_buf_reserve(out, th_gtid_set_encoded_size(set)) != 0)
		return -ENOMEM;
	uint8_t b[16];
	th_put_le64(b, set->n);
	th_buf_append(out, b, 8);
	for (uint32_t i = 0; i < set->n; i++) {
		th_buf_append(out, set->sids[i].uuid, 16);
		th_put_le64(b, set->sids[i].n);
		th_buf_append(out, b, 8);
		for (uint32_t k = 0; k < set->sids[i].n; k++) {
			th_put_le64(b, set->sids[i].iv[k].start);
			th_put_le64(b + 8, set->sids[i].iv[k].end);
			th_buf_append(out, b, 16);
		}
	}
	return th_buf_failed(out) ? -ENOMEM : 0;
}

int th_gtid_set_decode(struct th_gtid_set *set, const uint8_t *p, size_t len, size_t *used)
{
	if (len < 8)
		return -TH_EGTID;
	uint64_t n_sids = th_le64(p);
	/* MySQL 8.3+ marks the tagged format in the top byte; no real set has
	 * 2^56 uuids. */
	if (n_sids >> 56)
		return -TH_EGTID;
	if (n_sids > (len - 8) / 24)
		return -TH_EGTID;
	struct th_gtid_set tmp = { 0 };
	size_t off = 8;
	int rc = 0;
	for (uint64_t i = 0; i < n_sids && rc == 0; i++) {
		if (len - off < 24) {
			rc = -TH_EGTID;
			break;
		}
		const uint8_t *uuid = p + off;
		uint64_t n_iv = th_le64(p + off + 16);
		off += 24;
		if (n_iv > (len - off) / 16) {
			rc = -TH_EGTID;
			break;
		}
		for (uint64_t k = 0; k < n_iv && rc == 0; k++) {
			uint64_t start = th_le64(p + off), end = th_le64(p + off + 8);
			off += 16;
			if (start == 0 || end <= start || end - 1 > TH_GTID_GNO_MAX)
				rc = -TH_EGTID;
			else
				rc = th_gtid_set_add_range(&tmp, uuid, start, end - 1);
		}
	}
	if (rc == 0)
		rc = th_gtid_set_union(set, &tmp);
	if (rc == 0 && used)
		*used = off;
	th_gtid_set_clear(&tmp);
	free(tmp.sids);
	return rc;
}

/* ---- MariaDB positions ---------------------------------------------------- */

struct th_gtid_pos {
	uint32_t n, cap;          /* sorted by domain, one entry per domain */
	struct th_maria_gtid *g;
};

int th_gtid_pos_new(struct th_gtid_pos **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? 0 : -ENOMEM;
}

void th_gtid_pos_free(struct th_gtid_pos *pos)
{
	if (!pos)
		return;
	free(pos->g);
	free(pos);
}

void th_gtid_pos_clear(struct th_gtid_pos *pos)
{
	pos->n = 0;
}

static int pos_reserve(struct th_gtid_pos *pos, uint32_t n)
{
	return th_grow32((void **)&pos->g, &pos->cap, n, sizeof *pos->g);
}

int th_gtid_pos_copy(struct th_gtid_pos *dst, const struct th_gtid_pos *src)
{
	if (dst == src)
		return 0;
	if (pos_reserve(dst, src->n) != 0)
		return -ENOMEM;
	if (src->n)
		memcpy(dst->g, src->g, src->n * sizeof *src->g);
	dst->n = src->n;
	return 0;
}

static uint32_t pos_find(const struct th_gtid_pos *pos, uint32_t domain, bool *found)
{
	uint32_t lo = 0, hi = pos->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (pos->g[mid].domain_id == domain) {
			*found = true;
			return mid;
		}
		if (pos->g[mid].domain_id < domain)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

int th_gtid_pos_update(struct th_gtid_pos *pos, const struct th_maria_gtid *g)
{
	bool found;
	uint32_t i = pos_find(pos, g->domain_id, &found);
	if (!found) {
		if (pos_reserve(pos, pos->n + 1) != 0)
			return -ENOMEM;
		memmove(&pos->g[i + 1], &pos->g[i], (pos->n - i) * sizeof *pos->g);
		pos->n++;
	}
	pos->g[i] = *g;
	return 0;
}

bool th_gtid_pos_get(const struct th_gtid_pos *pos, uint32_t domain_id, struct th_maria_gtid *out)
{
	bool found;
	uint32_t i = pos_find(pos, domain_id, &found);
	if (found && out)
		*out = pos->g[i];
	return found;
}

bool th_gtid_pos_contains(const struct th_gtid_pos *pos, const struct th_maria_gtid *g)
{
	struct th_maria_gtid have;
	return th_gtid_pos_get(pos, g->domain_id, &have) && have.seq_no >= g->seq_no;
}

size_t th_gtid_pos_count(const struct th_gtid_pos *pos)
{
	return pos->n;
}

bool th_gtid_pos_equal(const struct th_gtid_pos *a, const struct th_gtid_pos *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++)
		if (a->g[i].domain_id != b->g[i].domain_id || a->g[i].server_id != b->g[i].server_id ||
		    a->g[i].seq_no != b->g[i].seq_no)
			return false;
	return true;
}

int th_gtid_pos_format(const struct th_gtid_pos *pos, struct th_buf *out)
{
	for (uint32_t i = 0; i < pos->n; i++)
		th_buf_printf(out, "%s%u-%u-%llu", i ? "," : "", pos->g[i].domain_id, pos->g[i].server_id,
			      (unsigned long long)pos->g[i].seq_no);
	th_buf_cstr(out);
	return th_buf_failed(out) ? -ENOMEM : 0;
}

/* Reads "D-S-N" at p; returns the end, or NULL with *what saying what is wrong. */
static const char *maria_gtid_read(const char *p, struct th_maria_gtid *g, const char **what, const char **at)
{
	uint64_t d, s, n;
	const char *q;
	*at = p;
	if (!(q = parse_u64(p, &d)) || d > UINT32_MAX) {
		*what = "MariaDB GTID: expected a domain id (0 .. 4294967295)";
		return NULL;
	}
	if (*q != '-') {
		*what = "MariaDB GTID: expected '-' after the domain id";
		*at = q;
		return NULL;
	}
	*at = ++q;
	if (!(q = parse_u64(q, &s)) || s > UINT32_MAX) {
		*what = "MariaDB GTID: expected a server id (0 .. 4294967295)";
		return NULL;
	}
	if (*q != '-') {
		*what = "MariaDB GTID: expected '-' after the server id";
		*at = q;
		return NULL;
	}
	*at = ++q;
	if (!(q = parse_u64(q, &n))) {
		*what = "MariaDB GTID: expected a sequence number (0 .. 2^64-1)";
		return NULL;
	}
	g->domain_id = (uint32_t)d;
	g->server_id = (uint32_t)s;
	g->seq_no = n;
	return q;
}

int th_maria_gtid_parse(const char *text, struct th_maria_gtid *out)
{
	const char *what, *at;
	const char *p = maria_gtid_read(skip_space(text), out, &what, &at);
	return p && *skip_space(p) == '\0' ? 0 : -TH_EGTID;
}

int th_gtid_pos_parse(struct th_gtid_pos *pos, const char *text, char *why, size_t why_len)
{
	struct th_gtid_pos tmp = { 0 };
	const char *p = skip_space(text);
	int rc = 0;
	while (*p) {
		struct th_maria_gtid g;
		const char *what, *at;
		const char *q = maria_gtid_read(p, &g, &what, &at);
		if (!q) {
			why_at(why, why_len, text, at, "%s", what);
			rc = -TH_EGTID;
			break;
		}
		if (th_gtid_pos_get(&tmp, g.domain_id, NULL)) {
			why_at(why, why_len, text, p, "MariaDB GTID position: domain %u appears twice", g.domain_id);
			rc = -TH_EGTID;
			break;
		}
		if ((rc = th_gtid_pos_update(&tmp, &g)) < 0)
			break;
		p = skip_space(q);
		if (*p == ',') {
			p = skip_space(p + 1);
			if (*p == '\0') {
				why_at(why, why_len, text, p, "MariaDB GTID position: nothing after ','");
				rc = -TH_EGTID;
				break;
			}
		} else if (*p != '\0') {
			why_at(why, why_len, text, p, "MariaDB GTID position: expected ','");
			rc = -TH_EGTID;
			break;
		}
	}
	if (rc == 0) {
		struct th_gtid_pos t = *pos;
		*pos = tmp;
		tmp = t;
	}
	free(tmp.g);
	return rc;
}
