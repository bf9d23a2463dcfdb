/* SPDX-License-Identifier: Apache-2.0 */
#include "common/th_error.h"

#include <errno.h>
#include <string.h>

const char *th_strerror(int code)
{
	if (code < 0)
		code = -code;
	switch (code) {
#define TH__ERROR_MSG(name, value, msg) case value: return msg;
	TH_ERROR_TABLE(TH__ERROR_MSG)
#undef TH__ERROR_MSG
	case 0:
		return "success";
	}
	/* strerrordesc_np is thread-safe and does not touch errno (glibc >= 2.32). */
	const char *s = strerrordesc_np(code);
	return s ? s : "unknown error";
}

const char *th_errname(int code)
{
	if (code < 0)
		code = -code;
	switch (code) {
#define TH__ERROR_NAME(name, value, msg) case value: return #name;
	TH_ERROR_TABLE(TH__ERROR_NAME)
#undef TH__ERROR_NAME
	case 0:
		return "OK";
	}
	const char *s = strerrorname_np(code);
	return s ? s : "EUNKNOWN";
}
