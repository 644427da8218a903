/* Compressed COCO RLE strings: validation, pixel counts and exact pairwise intersections.
 *
 * Written for visrepro (no code taken from pycocotools). The string format (pycocotools'
 * ``rleToString``/``rleFrString``): runs alternate background/foreground, starting with background,
 * in column-major order; each run is a signed number written in 5-bit groups, least significant
 * first, one character per group (char - 48), bit 0x20 = "more groups follow", bit 0x10 of the last
 * group = sign. From the fourth run on (index > 2), the stored number is the difference to the run
 * two places back.
 *
 * Functions (all take a list of str/bytes and return ``bytes`` buffers that Python wraps with
 * ``np.frombuffer``):
 *
 *   scan(strings, totals) -> (codes int8[n], areas int64[n], first int64[n], end int64[n])
 *       Decodes every string once. ``totals`` (int64[n] buffer) is each mask's pixel count h*w.
 *       codes: 0 ok, 1 empty, 2 character outside '0'..'o' (or non-ASCII), 3 ends in the middle of a
 *       number, 4 a run decodes negative, 5 the runs do not sum to the total. The first problem in
 *       decoding order is reported (like ``benchmark.data.results.rle_counts_ok``). areas: foreground
 *       pixel count (valid strings only, else 0); first/end: first foreground pixel and one past the
 *       last (0/0 when empty). Split over two threads, without the GIL.
 *
 *   intersect(a_strings, b_strings, ia, ib, limit) -> int64[p]
 *       |A[ia[k]] & B[ib[k]]| for each pair k, by merging the run streams (O(runs) per pair), stopping
 *       at pixel limit[k] (pass min of the two ``end``s, or the total). Every string used must be
 *       valid (scan code 0) and both masks of a pair must have the same total. The pairs are split
 *       over two threads, without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

enum { RLE_OK = 0, RLE_EMPTY = 1, RLE_BADCHAR = 2, RLE_TRUNCATED = 3, RLE_NEGATIVE = 4, RLE_TOTAL = 5 };

/* Runs larger than this are reported as RLE_TOTAL (no mask is that big); keeps int64 exact. */
#define RUN_LIMIT ((int64_t)1 << 50)

typedef struct {
    const unsigned char *s;
    Py_ssize_t n;
    Py_ssize_t p;
    Py_ssize_t m;  /* runs decoded so far */
    int64_t back1; /* previous run */
    int64_t back2; /* run two places back */
} Decoder;

/* Next run into *out. Returns 1 on a run, 0 at the end of the string, -code on an error. */
static inline int dec_next(Decoder *d, int64_t *out) {
    if (d->p >= d->n) return 0;
    int64_t x = 0;
    int k = 0;
    int c = (int)d->s[d->p] - 48;
    if ((unsigned)c < 32) { /* fast path: a one-character number */
        d->p++;
        x = (int64_t)((c ^ 16) - 16);
        if (d->m > 2) x += d->back2;
        if (x < 0) return -RLE_NEGATIVE;
        d->back2 = d->back1;
        d->back1 = x;
        d->m++;
        *out = x;
        return 1;
    }
    for (;;) {
        if (d->p >= d->n) return -RLE_TRUNCATED;
        c = (int)d->s[d->p] - 48;
        if (c < 0 || c > 63) return -RLE_BADCHAR;
        d->p++;
        if (k > 11) return -RLE_TOTAL; /* a number of > 60 bits: far beyond any mask */
        x |= (int64_t)(c & 0x1f) << (5 * k);
        k++;
        if (!(c & 0x20)) break;
    }
    if (c & 0x10) x |= (int64_t)(-1) * ((int64_t)1 << (5 * k)); /* sign-extend */
    if (d->m > 2) x += d->back2;
    if (x < 0) return -RLE_NEGATIVE;
    if (x > RUN_LIMIT) return -RLE_TOTAL;
    d->back2 = d->back1;
    d->back1 = x;
    d->m++;
    *out = x;
    return 1;
}

/* Borrowed pointer/length of the characters of a str (ASCII only) or bytes; 0 when neither. */
static int get_chars(PyObject *o, const unsigned char **s, Py_ssize_t *n) {
    if (PyUnicode_Check(o)) {
        if (!PyUnicode_IS_ASCII(o)) {
            *s = NULL;
            *n = -1; /* non-ASCII: a bad character */
            return 1;
        }
        *s = (const unsigned char *)PyUnicode_DATA(o);
        *n = PyUnicode_GET_LENGTH(o);
        return 1;
    }
    if (PyBytes_Check(o)) {
        *s = (const unsigned char *)PyBytes_AS_STRING(o);
        *n = PyBytes_GET_SIZE(o);
        return 1;
    }
    return 0;
}

static int scan_one(const unsigned char *s, Py_ssize_t n, int64_t total, int64_t *area, int64_t *first,
                    int64_t *end) {
    *area = 0;
    *first = 0;
    *end = 0;
    if (n < 0) return RLE_BADCHAR;
    if (n == 0) return RLE_EMPTY;
    Decoder d = {s, n, 0, 0, 0, 0};
    int64_t pos = 0, a = 0, f = -1, e = 0, bg, fg;
    int r;
    for (;;) {
        /* runs come in (background, foreground) pairs */
        r = dec_next(&d, &bg);
        if (r <= 0) break;
        pos += bg;
        r = dec_next(&d, &fg);
        if (r <= 0) break;
        if (fg > 0) {
            if (f < 0) f = pos;
            e = pos + fg;
        }
        a += fg;
        pos += fg;
    }
    if (r < 0) return -r;
    if (pos != total) return RLE_TOTAL;
    *area = a;
    *first = f < 0 ? 0 : f;
    *end = e;
    return RLE_OK;
}

typedef struct {
    const unsigned char **s;
    const Py_ssize_t *n;
    const int64_t *totals;
    int8_t *c;
    int64_t *a, *f, *e;
    Py_ssize_t lo, hi;
} ScanJob;

static void *run_scan(void *arg) {
    ScanJob *j = (ScanJob *)arg;
    for (Py_ssize_t i = j->lo; i < j->hi; i++)
        j->c[i] = (int8_t)scan_one(j->s[i], j->n[i], j->totals[i], &j->a[i], &j->f[i], &j->e[i]);
    return NULL;
}

static PyObject *rle_scan(PyObject *self, PyObject *args) {
    PyObject *strings;
    Py_buffer tot;
    if (!PyArg_ParseTuple(args, "O!y*", &PyList_Type, &strings, &tot)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(strings);
    if (tot.len != n * (Py_ssize_t)sizeof(int64_t)) {
        PyBuffer_Release(&tot);
        PyErr_SetString(PyExc_ValueError, "totals must be an int64 buffer with one value per string");
        return NULL;
    }
    PyObject *codes = PyBytes_FromStringAndSize(NULL, n);
    PyObject *areas = PyBytes_FromStringAndSize(NULL, n * 8);
    PyObject *firsts = PyBytes_FromStringAndSize(NULL, n * 8);
    PyObject *ends = PyBytes_FromStringAndSize(NULL, n * 8);
    void *mem = PyMem_RawMalloc((size_t)(n > 0 ? n : 1) * (sizeof(char *) + sizeof(Py_ssize_t)));
    if (!codes || !areas || !firsts || !ends || !mem) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto fail;
    }
    const unsigned char **sp = (const unsigned char **)mem;
    Py_ssize_t *lens = (Py_ssize_t *)(sp + n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!get_chars(PyList_GET_ITEM(strings, i), &sp[i], &lens[i])) {
            PyErr_Format(PyExc_TypeError, "strings[%zd] is neither str nor bytes", i);
            goto fail;
        }
    }
    ScanJob jobs[2];
    jobs[0] = (ScanJob){sp, lens, (const int64_t *)tot.buf, (int8_t *)PyBytes_AS_STRING(codes),
                        (int64_t *)PyBytes_AS_STRING(areas), (int64_t *)PyBytes_AS_STRING(firsts),
                        (int64_t *)PyBytes_AS_STRING(ends), 0, n / 2};
    jobs[1] = jobs[0];
    jobs[1].lo = n / 2;
    jobs[1].hi = n;
    /* the list holds references to the (immutable) strings: safe to read without the GIL */
    Py_BEGIN_ALLOW_THREADS
    pthread_t th;
    int threaded = n >= 4096 && pthread_create(&th, NULL, run_scan, &jobs[1]) == 0;
    run_scan(&jobs[0]);
    if (threaded)
        pthread_join(th, NULL);
    else
        run_scan(&jobs[1]);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(mem);
    PyBuffer_Release(&tot);
    return Py_BuildValue("(NNNN)", codes, areas, firsts, ends);
fail:
    PyMem_RawFree(mem);
    PyBuffer_Release(&tot);
    Py_XDECREF(codes);
    Py_XDECREF(areas);
    Py_XDECREF(firsts);
    Py_XDECREF(ends);
    return NULL;
}

/* |A & B| of two valid strings with the same total, streaming both. */
static int intersect_one(const unsigned char *sa, Py_ssize_t na, const unsigned char *sb, Py_ssize_t nb,
                         int64_t limit, int64_t *out) {
    Decoder da = {sa, na, 0, 0, 0, 0}, db = {sb, nb, 0, 0, 0, 0};
    int64_t ra = 0, rb = 0, inter = 0, m, pos = 0;
    int fa = 1, fb = 1; /* value of the current run; toggled before the first (background) run */
    int r;
    for (;;) {
        while (ra == 0) {
            r = dec_next(&da, &ra);
            if (r <= 0) goto done;
            fa = !fa;
        }
        while (rb == 0) {
            r = dec_next(&db, &rb);
            if (r <= 0) goto done;
            fb = !fb;
        }
        m = ra < rb ? ra : rb;
        if (fa & fb) inter += m;
        ra -= m;
        rb -= m;
        pos += m;
        if (pos >= limit) { /* no foreground of one of them beyond this pixel */
            r = 0;
            goto done;
        }
    }
done:
    if (r < 0) return -1;
    *out = inter;
    return 0;
}

static int index_buffer(Py_buffer *b, Py_ssize_t n, Py_ssize_t bound, const char *what) {
    const int64_t *v = (const int64_t *)b->buf;
    for (Py_ssize_t k = 0; k < n; k++) {
        if (v[k] < 0 || v[k] >= bound) {
            PyErr_Format(PyExc_IndexError, "%s[%zd] = %lld is out of range", what, k, (long long)v[k]);
            return -1;
        }
    }
    return 0;
}

typedef struct {
    const unsigned char **sa, **sb;
    const Py_ssize_t *na, *nb;
    const int64_t *limit;
    int64_t *out;
    Py_ssize_t lo, hi;
    int failed; /* first failing pair + 1, or 0 */
} Job;

static void *run_job(void *arg) {
    Job *j = (Job *)arg;
    for (Py_ssize_t k = j->lo; k < j->hi; k++) {
        if (intersect_one(j->sa[k], j->na[k], j->sb[k], j->nb[k], j->limit[k], &j->out[k]) < 0) {
            j->failed = (int)(k + 1);
            break;
        }
    }
    return NULL;
}

/* Runs ``fn`` on the pair range split in two: one half on a second thread (2+ cores help). */
static void run_split(Job *base, Py_ssize_t p, void *(*fn)(void *)) {
    Job jobs[2] = {*base, *base};
    jobs[0].lo = 0;
    jobs[0].hi = p / 2;
    jobs[1].lo = p / 2;
    jobs[1].hi = p;
    pthread_t th;
    int threaded = p >= 4096 && pthread_create(&th, NULL, fn, &jobs[1]) == 0;
    fn(&jobs[0]);
    if (threaded)
        pthread_join(th, NULL);
    else
        fn(&jobs[1]);
    base->failed = jobs[0].failed ? jobs[0].failed : jobs[1].failed;
}

static PyObject *rle_intersect(PyObject *self, PyObject *args) {
    PyObject *la, *lb;
    Py_buffer ba, bb, bl;
    if (!PyArg_ParseTuple(args, "O!O!y*y*y*", &PyList_Type, &la, &PyList_Type, &lb, &ba, &bb, &bl))
        return NULL;
    PyObject *out = NULL;
    void *mem = NULL;
    Py_ssize_t p = ba.len / 8;
    if (ba.len != bb.len || ba.len != bl.len || ba.len % 8) {
        PyErr_SetString(PyExc_ValueError, "ia, ib and limit must be int64 buffers of equal length");
        goto end;
    }
    if (index_buffer(&ba, p, PyList_GET_SIZE(la), "ia") < 0 ||
        index_buffer(&bb, p, PyList_GET_SIZE(lb), "ib") < 0)
        goto end;
    out = PyBytes_FromStringAndSize(NULL, p * 8);
    mem = PyMem_RawMalloc((size_t)(p > 0 ? p : 1) * 2 * (sizeof(char *) + sizeof(Py_ssize_t)));
    if (!out || !mem) {
        Py_CLEAR(out);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto end;
    }
    const unsigned char **sa = (const unsigned char **)mem, **sb = sa + p;
    Py_ssize_t *na = (Py_ssize_t *)(sb + p), *nb = na + p;
    const int64_t *ia = (const int64_t *)ba.buf, *ib = (const int64_t *)bb.buf;
    for (Py_ssize_t k = 0; k < p; k++) {
        if (!get_chars(PyList_GET_ITEM(la, ia[k]), &sa[k], &na[k]) ||
            !get_chars(PyList_GET_ITEM(lb, ib[k]), &sb[k], &nb[k]) || na[k] < 0 || nb[k] < 0) {
            PyErr_Format(PyExc_ValueError, "pair %zd: not a valid compressed RLE string", k);
            Py_CLEAR(out);
            goto end;
        }
    }
    /* the lists hold references to the strings (immutable): safe to read without the GIL */
    Job job = {sa, sb, na, nb, (const int64_t *)bl.buf, (int64_t *)PyBytes_AS_STRING(out), 0, p, 0};
    Py_BEGIN_ALLOW_THREADS
    run_split(&job, p, run_job);
    Py_END_ALLOW_THREADS
    if (job.failed) {
        PyErr_Format(PyExc_ValueError, "pair %d: not a valid compressed RLE string", job.failed - 1);
        Py_CLEAR(out);
    }
end:
    PyMem_RawFree(mem);
    PyBuffer_Release(&ba);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&bl);
    return out;
}

static PyMethodDef methods[] = {
    {"scan", rle_scan, METH_VARARGS,
     "scan(strings, totals) -> (codes int8, areas int64, first int64, end int64) as bytes"},
    {"intersect", rle_intersect, METH_VARARGS, "intersect(a_strings, b_strings, ia, ib, limit) -> int64 bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rle", "Compressed COCO RLE kernels for the visrepro evaluator.", -1, methods,
};

PyMODINIT_FUNC PyInit__rle(void) { return PyModule_Create(&module); }
