/* Lowercase the member names of printJson() output in one pass over the text.
 *
 * Optional: condor_restd.condor falls back to the same transformation in Python when this
 * module is not built (no compiler) or the text is not pure ASCII. Both must give the same
 * answer; tests/test_speedups.py checks that they do.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* A JSON integer starting at s[i] and ending before ',', '}' or whitespace; -1 if it isn't one. */
static long long plain_int(const char *s, Py_ssize_t i, Py_ssize_t n)
{
    long long value = 0;
    Py_ssize_t digits = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (digits >= 15) return -1;
        value = value * 10 + (s[i] - '0');
    }
    if (digits == 0 || (i < n && s[i] != ',' && s[i] != '}' && !is_space(s[i]))) return -1;
    return value;
}

/* Lowercase every member name of printJson() text `s` (ASCII) in `o`, a copy of it. printJson
 * writes one member or element a line and a JSON string never holds a raw line break, so a
 * name is a line's first token: a string followed by ':'. Returns how many names there were. */
static Py_ssize_t lower_into(const char *s, char *o, Py_ssize_t n)
{
    Py_ssize_t names = 0, i = 0;
    const char *q;
    while (i < n && (q = memchr(s + i, '\n', (size_t)(n - i))) != NULL) {
        i = (q - s) + 1;
        while (i < n && s[i] == ' ') i++;
        if (i >= n || s[i] != '"') continue;
        Py_ssize_t start = ++i;
        for (;;) {  /* the closing quote: one not escaped by an odd run of backslashes */
            q = i < n ? memchr(s + i, '"', (size_t)(n - i)) : NULL;
            if (q == NULL) return names;
            i = q - s;
            Py_ssize_t b = i;
            while (b > start && s[b - 1] == '\\') b--;
            if ((i - b) % 2 == 0) break;
            i++;
        }
        Py_ssize_t end = i++;
        if (i >= n || s[i] != ':') continue;  /* a string element of a list */
        names++;
        for (Py_ssize_t k = start; k < end; k++)
            if (o[k] >= 'A' && o[k] <= 'Z') o[k] = (char)(o[k] + 32);
    }
    return names;
}

/* The value of a top-level attribute as printJson() writes it ("\n  \"Name\": 123,") when it
 * is a plain non-negative integer; -1 otherwise (absent, another spelling, not an integer). */
static long long top_int(const char *s, Py_ssize_t n, const char *line, size_t len)
{
    const char *at = memmem(s, (size_t)n, line, len);
    if (at == NULL) return -1;
    return plain_int(s, (at - s) + (Py_ssize_t)len, n);
}

static PyObject *lower_names(PyObject *self, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "expected str");
        return NULL;
    }
    if (PyUnicode_READY(text) < 0) return NULL;
    if (!PyUnicode_IS_ASCII(text)) Py_RETURN_NONE;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const char *s = (const char *)PyUnicode_DATA(text);
    PyObject *out = PyUnicode_New(n, 127);
    if (out == NULL) return NULL;
    char *o = (char *)PyUnicode_DATA(out);
    memcpy(o, s, (size_t)n);
    if (lower_into(s, o, n) == 0) {
        Py_DECREF(out);
        return PyUnicode_FromString("{}");
    }
    return out;
}

/* printJson() of `ad`, with its ClusterId and ProcId read from the text (-1 where they are not
 * plain integers written as printJson() writes them). A new reference; Py_None (new) when the
 * text is not ASCII (the caller takes the Python path); NULL with an exception set on failure. */
static PyObject *ad_text(PyObject *ad, long long *cluster, long long *proc)
{
    PyObject *text = PyObject_CallMethod(ad, "printJson", NULL);
    if (text == NULL) return NULL;
    if (!PyUnicode_Check(text) || PyUnicode_READY(text) < 0 || !PyUnicode_IS_ASCII(text)) {
        Py_DECREF(text);
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const char *s = (const char *)PyUnicode_DATA(text);
    *cluster = top_int(s, n, "\n  \"ClusterId\": ", 16);
    *proc = top_int(s, n, "\n  \"ProcId\": ", 13);
    return text;
}

/* The start of a job record, {"jobid": "<c>.<p>", "classad": , into `head`; its length. */
static int record_head(char *head, size_t size, long long cluster, long long proc)
{
    return snprintf(head, size, "{\"jobid\": \"%lld.%lld\", \"classad\": ", cluster, proc);
}

/* The API's job record for one ad, in UTF-8: ((cluster, proc), b'{"jobid": "<c>.<p>",
 * "classad": <printJson() lowercased>}'); None when the ad needs the Python path (text not
 * ASCII, ids not plain integers or spelt otherwise, an empty ad). */
static PyObject *one_record(PyObject *ad)
{
    long long cluster = -1, proc = -1;
    PyObject *text = ad_text(ad, &cluster, &proc);
    if (text == NULL || text == Py_None) return text;
    if (cluster < 0 || proc < 0) {
        Py_DECREF(text);
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const char *s = (const char *)PyUnicode_DATA(text);
    char head[96];
    int m = record_head(head, sizeof head, cluster, proc);
    PyObject *record = PyBytes_FromStringAndSize(NULL, m + n + 1);
    if (record == NULL) { Py_DECREF(text); return NULL; }
    char *r = PyBytes_AS_STRING(record);
    memcpy(r, head, (size_t)m);
    memcpy(r + m, s, (size_t)n);
    r[m + n] = '}';
    lower_into(s, r + m, n);
    Py_DECREF(text);
    return Py_BuildValue("((LL)N)", cluster, proc, record);
}

/* A list of fn(ad) for each ad of a sequence; NULL (an exception set) if fn fails for one. */
static PyObject *map_ads(PyObject *ads, PyObject *(*fn)(PyObject *))
{
    PyObject *seq = PySequence_Fast(ads, "expected a sequence of ads");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(count);
    if (out == NULL) { Py_DECREF(seq); return NULL; }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = fn(PySequence_Fast_GET_ITEM(seq, i));
        if (item == NULL) { Py_DECREF(out); Py_DECREF(seq); return NULL; }
        PyList_SET_ITEM(out, i, item);
    }
    Py_DECREF(seq);
    return out;
}

static PyObject *job_records(PyObject *self, PyObject *ads) { return map_ads(ads, one_record); }

/* (cluster, proc) of one ad, from printJson(); None when they are not plain integers written
 * as printJson() writes them (the caller looks those up). */
static PyObject *one_id(PyObject *ad)
{
    long long cluster = -1, proc = -1;
    PyObject *text = ad_text(ad, &cluster, &proc);
    if (text == NULL || text == Py_None) return text;
    Py_DECREF(text);
    if (cluster < 0 || proc < 0) Py_RETURN_NONE;
    return Py_BuildValue("(LL)", cluster, proc);
}

static PyObject *job_ids(PyObject *self, PyObject *ads) { return map_ads(ads, one_id); }

typedef struct { long long cluster, proc; Py_ssize_t index, head; } Entry;

static int by_id(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    if (x->cluster != y->cluster) return x->cluster < y->cluster ? -1 : 1;
    if (x->proc != y->proc) return x->proc < y->proc ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

/* job_listing(ads, sort, cap) -> (body, ends, count) | None: the whole JSON array of job records
 * written once into one buffer (sorted by id with `sort`, the first `cap` when cap > 0);
 * `ends` holds each record's end offset in `body` as native int64. None when any ad needs the
 * Python path. */
static PyObject *job_listing(PyObject *self, PyObject *args)
{
    PyObject *ads;
    int sort;
    Py_ssize_t cap;
    if (!PyArg_ParseTuple(args, "Opn", &ads, &sort, &cap)) return NULL;
    PyObject *seq = PySequence_Fast(ads, "expected a sequence of ads");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **texts = PyMem_Calloc((size_t)(count ? count : 1), sizeof(PyObject *));
    Entry *entries = PyMem_Calloc((size_t)(count ? count : 1), sizeof(Entry));
    PyObject *result = NULL, *body = NULL, *ends = NULL;
    if (texts == NULL || entries == NULL) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = ad_text(PySequence_Fast_GET_ITEM(seq, i), &entries[i].cluster,
                                 &entries[i].proc);
        if (text == NULL) goto done;
        texts[i] = text;
        if (text == Py_None) {
            result = Py_None; Py_INCREF(result);
            goto done;
        }
        entries[i].index = i;
        if (entries[i].cluster < 0 || entries[i].proc < 0 || PyUnicode_GET_LENGTH(text) < 4) {
            result = Py_None; Py_INCREF(result);
            goto done;
        }
    }
    if (sort) qsort(entries, (size_t)count, sizeof(Entry), by_id);
    Py_ssize_t kept = (cap > 0 && cap < count) ? cap : count;
    char head[96];
    Py_ssize_t total = 4;  /* "[\n" and "\n]" */
    for (Py_ssize_t k = 0; k < kept; k++) {
        Entry *e = &entries[k];
        e->head = record_head(head, sizeof head, e->cluster, e->proc);
        total += e->head + PyUnicode_GET_LENGTH(texts[e->index]) + 1 + (k ? 2 : 0);
    }
    if (kept == 0) total = 2;  /* "[]" */
    body = PyBytes_FromStringAndSize(NULL, total + 1);
    ends = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(sizeof(int64_t) * (size_t)(kept ? kept : 1)));
    if (body == NULL || ends == NULL) goto done;
    char *w = PyBytes_AS_STRING(body);
    int64_t *end_at = (int64_t *)PyBytes_AS_STRING(ends);
    if (kept == 0) {
        memcpy(w, "[]\n", 3);
    } else {
        char *start = w;
        memcpy(w, "[\n", 2); w += 2;
        for (Py_ssize_t k = 0; k < kept; k++) {
            Entry *e = &entries[k];
            PyObject *text = texts[e->index];
            Py_ssize_t n = PyUnicode_GET_LENGTH(text);
            const char *s = (const char *)PyUnicode_DATA(text);
            if (k) { memcpy(w, ",\n", 2); w += 2; }
            record_head(head, sizeof head, e->cluster, e->proc);
            memcpy(w, head, (size_t)e->head); w += e->head;
            memcpy(w, s, (size_t)n);
            lower_into(s, w, n);
            w += n;
            *w++ = '}';
            end_at[k] = (int64_t)(w - start);
        }
        memcpy(w, "\n]\n", 3);
    }
    result = Py_BuildValue("(OOn)", body, ends, kept);
done:
    if (texts != NULL)
        for (Py_ssize_t i = 0; i < count; i++) Py_XDECREF(texts[i]);
    PyMem_Free(texts);
    PyMem_Free(entries);
    Py_XDECREF(body);
    Py_XDECREF(ends);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef methods[] = {
    {"lower_names", lower_names, METH_O,
     "lower_names(text) -> str | None: printJson text with member names lowercased "
     "(None when the text is not ASCII)."},
    {"job_records", job_records, METH_O,
     "job_records(ads) -> list: for each ad, ((cluster, proc), record) with the API's job record "
     "{\"jobid\": ..., \"classad\": lower_names(ad.printJson())} as UTF-8 bytes, or None "
     "where the Python path must do it."},
    {"job_ids", job_ids, METH_O,
     "job_ids(ads) -> list: (cluster, proc) of each ad, read from printJson(); None for an ad "
     "whose ids are not plain integers there."},
    {"job_listing", job_listing, METH_VARARGS,
     "job_listing(ads, sort, cap) -> (body, ends, count) | None: the JSON array of the first "
     "`cap` (0: all) job records, sorted by id with `sort`, written once; `ends` holds each "
     "record's end offset (native int64). None where the Python path must do it."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "condor_restd._speedups",
    "Compiled helpers for condor_restd.condor (optional).", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
