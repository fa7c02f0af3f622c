/*
 * s3_xml.c - reads S3's XML answers with expat: every element end is handed
 * to a callback with its path and text, which is all S3's flat documents
 * need (see s3_impl.h).
 *
 * Must stay true: nesting and text are bounded (S3_XML_MAX_DEPTH, the
 * caller's body limit), so a hostile answer costs memory in proportion to
 * its size and no more; expat's own guard stops entity expansion attacks.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <expat.h>

#include "err.h"
#include "s3_impl.h"

#define S3_XML_MAX_DEPTH 16

struct xml_state {
	XML_Parser parser;
	s3_xml_fn fn;
	void *arg;
	struct buf path;
	size_t mark[S3_XML_MAX_DEPTH + 1];	/* path length before each level */
	int depth;
	struct buf text;
	int too_deep;
};

static void XMLCALL xml_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
	struct xml_state *st = data;

	(void)attrs;
	if (st->depth >= S3_XML_MAX_DEPTH) {
		st->too_deep = 1;
		XML_StopParser(st->parser, XML_FALSE);
		return;
	}
	st->mark[st->depth++] = st->path.len;
	if (st->path.len)
		buf_addc(&st->path, '/');
	buf_adds(&st->path, name);
	buf_reset(&st->text);
}

static void XMLCALL xml_end(void *data, const XML_Char *name)
{
	struct xml_state *st = data;

	(void)name;
	if (st->depth <= 0)
		return;
	st->fn(st->arg, buf_str(&st->path), buf_str(&st->text));
	buf_reset(&st->text);
	buf_setlen(&st->path, st->mark[--st->depth]);
}

static void XMLCALL xml_text(void *data, const XML_Char *s, int len)
{
	struct xml_state *st = data;

	if (len > 0)
		buf_add(&st->text, s, (size_t)len);
}

/* Parses without touching the error line; on failure writes why into
 * why[why_size] and returns -EBADMSG. */
static int xml_parse(const void *data, size_t len, s3_xml_fn fn, void *arg,
		     char *why, size_t why_size)
{
	struct xml_state st;
	int rc = 0;

	memset(&st, 0, sizeof(st));
	if (len > (size_t)INT_MAX) {
		snprintf(why, why_size, "%zu bytes is too large", len);
		return -EBADMSG;
	}
	st.parser = XML_ParserCreate("UTF-8");
	if (!st.parser) {
		snprintf(why, why_size, "cannot create an XML parser");
		return -ENOMEM;
	}
	st.fn = fn;
	st.arg = arg;
	XML_SetUserData(st.parser, &st);
	XML_SetElementHandler(st.parser, xml_start, xml_end);
	XML_SetCharacterDataHandler(st.parser, xml_text);
	if (XML_Parse(st.parser, data, (int)len, XML_TRUE) != XML_STATUS_OK || st.too_deep) {
		snprintf(why, why_size, "%s, line %lu",
			 st.too_deep ? "nested too deep" :
			 XML_ErrorString(XML_GetErrorCode(st.parser)),
			 (unsigned long)XML_GetCurrentLineNumber(st.parser));
		rc = -EBADMSG;
	}
	XML_ParserFree(st.parser);
	buf_free(&st.path);
	buf_free(&st.text);
	return rc;
}

int s3_xml_parse(const void *data, size_t len, s3_xml_fn fn, void *arg)
{
	char why[128];
	int rc = xml_parse(data, len, fn, arg, why, sizeof(why));

	if (rc < 0)
		return err_set(rc, "S3 answer is not well-formed XML (%s)", why);
	return 0;
}

struct err_fields {
	char *code, *message;
	size_t code_size, message_size;
	int is_error;
};

static void copy_field(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (!size)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	/* One line per message: no control characters from the store. */
	for (char *p = dst; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

static void err_field(void *arg, const char *path, const char *text)
{
	struct err_fields *f = arg;

	if (!strcmp(path, "Error"))
		f->is_error = 1;
	else if (!strcmp(path, "Error/Code"))
		copy_field(f->code, f->code_size, text);
	else if (!strcmp(path, "Error/Message"))
		copy_field(f->message, f->message_size, text);
}

int s3_xml_error(const void *data, size_t len, char *code, size_t code_size,
		 char *message, size_t message_size)
{
	struct err_fields f = { code, message, code_size, message_size, 0 };
	char why[128];

	if (code_size)
		code[0] = '\0';
	if (message_size)
		message[0] = '\0';
	if (!len)
		return 0;
	if (xml_parse(data, len, err_field, &f, why, sizeof(why)) < 0) {
		/* Not XML (a proxy's HTML page, say): no code. */
		if (code_size)
			code[0] = '\0';
		return 0;
	}
	return f.is_error;
}

void s3_xml_escape(struct buf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_adds(out, "&amp;"); break;
		case '<': buf_adds(out, "&lt;"); break;
		case '>': buf_adds(out, "&gt;"); break;
		case '"': buf_adds(out, "&quot;"); break;
		case '\'': buf_adds(out, "&apos;"); break;
		default: buf_addc(out, *s); break;
		}
	}
}
