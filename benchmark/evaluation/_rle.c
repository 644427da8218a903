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
 *   A "strings" argument is a list of str/bytes, or a span tuple ``(data, offsets int64 bytes,
 *   lengths int64 bytes)``: string k is ``data[offsets[k]:offsets[k] + lengths[k]]`` of a JSON text
 *   (bytes or any read-only buffer, e.g. a mapped file: what parse_results and parse_gt give, so
 *   that the evaluator never makes a Python object per mask).
 *
 *   parse_results(data) -> None | tuple
 *       A fast reader of a results.json (its bytes, or any buffer): a JSON array of objects with
 *       exactly the keys video_id, category_id (integers of at most 18 digits), score (any finite
 *       JSON number, converted by strtod, correctly rounded like Python's float()) and segmentations
 *       (a list of null or {"size": [h, w], "counts": "..."} with exactly those two keys, h and w
 *       integers of at most 9 digits), keys in any order, JSON whitespace anywhere. Strings are used
 *       in place: the only escape supported is "\\" (backslash is a valid RLE character, JSON writers
 *       escape it; the decoders skip the first of the pair in spans); any other escape is
 *       unsupported. Anything else (another key, a duplicate key, another value type, a number out of
 *       range, malformed JSON, trailing data) returns None: the caller then uses a general JSON
 *       parser. Returns (n_entries, video_id int64, category_id int64, score float64, n_frames int64,
 *       n_masks, entry int64, frame int64, h int64, w int64, offset int64, length int64,
 *       codes int8, areas int64, first int64, end int64), all buffers as bytes; the masks are in
 *       file order and scanned like ``scan`` (totals h*w; a counts string with a character outside
 *       '0'..'o', e.g. a control or non-ASCII byte, gets code 2). Runs without the GIL (the scan on
 *       two threads).
 *
 *   parse_gt(data) -> None | dict
 *       The same for a YouTube-VIS / OVIS GT file: an object with "videos" (objects with integer
 *       id, height, width, optional non-negative length, file_names: strings without escapes, none
 *       empty, starting with '/' or containing ':' or '..', no two equal), "categories" (integer id,
 *       string name) and optional "annotations" (null, or objects with integer id, video_id,
 *       category_id, iscrowd 0 or 1, segmentations: null or compressed RLE dicts as above, areas:
 *       null or non-negative numbers, optional bboxes: null or a list of null or [4 numbers],
 *       optional occlusion: null or a list of null or an OVIS label); other keys, at any level, hold
 *       any JSON value (skipped). Every string must be printable ASCII with escapes other than
 *       \uXXXX, every number finite: strict JSON that every parser reads the same. Anything else
 *       returns None. The checks that need the whole file (unique ids, known videos, list lengths,
 *       mask sizes) are the caller's. Returns a dict of int64 buffers (per video, category,
 *       annotation, per-frame area / occlusion entry and per mask; see ``benchmark.evaluation.rle``),
 *       the masks scanned like ``scan``. Runs without the GIL.
 *
 *   match(iou, det_start, gt_start, gt_ignored, crowd, gt_id_nonzero, thresholds, n_ranges)
 *       -> (dtm, dtig, gtm)
 *       COCO's greedy matching of every unit (a video and category), range and IoU threshold.
 *       det_start, gt_start: int64[U + 1] offsets of each unit's predictions (in score order) and
 *       GT (in file order); iou: float64, each unit's [D_u, G_u] IoU matrix, row-major, one after
 *       the other; gt_ignored: uint8[G, A] (A = n_ranges); crowd, gt_id_nonzero: uint8[G];
 *       thresholds: float64[T] (already capped at 1 - 1e-10). For each prediction in order, each
 *       range and threshold: among the GT not yet matched (crowd GT can be matched again), the
 *       regular one with the highest IoU >= the threshold, the later one on a tie, else the ignored
 *       one likewise. Returns uint8 bytearrays: dtm[N, A, T] (matched to a GT whose id is not 0),
 *       dtig[N, A, T] (matched to an ignored GT), gtm[G, A, T] (matched).
 *
 *   accumulate(dtm, dtig, order, cat_start, rank, npig, max_dets, rec_thrs, n_ranges, n_thrs)
 *       -> (precision, recall)
 *       The official accumulate(): for each category, range, maxDet and IoU threshold, the
 *       category's predictions of rank < maxDet (rank within their video), in score order, are
 *       columns; tp / fp are running counts of the matched / unmatched ones that are not ignored;
 *       rc = tp / npig, pr = tp / (fp + tp + np.spacing(1)) made monotone from the right;
 *       precision at each recall threshold r = pr[first column with rc >= r] (0 past the last
 *       column), recall = the last rc (0 without columns); -1 where npig is 0. dtm, dtig:
 *       uint8[N, A, T] as match gives them; order: int64[N], the predictions grouped by category
 *       (cat_start: int64[K + 1] offsets), by score within (stable); rank: int64[N]; npig:
 *       int64[K, A] regular GT; max_dets: int64[M]; rec_thrs: float64[R]. Returns float64
 *       bytearrays precision[T, R, K, A, M] and recall[T, K, A, M]. The same floating-point
 *       operations as numpy's in the same order (no contraction: plain -O3 on x86-64 SSE2).
 *
 *   intersect(a_strings, b_strings, ia, ib, limit) -> int64[p]
 *       |A[ia[k]] & B[ib[k]]| for each pair k, stopping at pixel limit[k] (pass min of the two
 *       ``end``s, or the total). B is decoded into foreground intervals once per run of consecutive
 *       pairs with the same B string (sort the pairs by ib), A is streamed against them (O(runs)).
 *       Every string used must be valid (scan code 0) and both masks of a pair must have the same
 *       total. The pairs are split over two threads, without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
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

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Next run into *out. Returns 1 on a run, 0 at the end of the string, -code on an error. */
/* esc (a constant at each call, so that the compiler specialises): the string is JSON text, where
 * "\\\\" stands for one backslash (the only escape parse_results lets through). */
static ALWAYS_INLINE int dec_next(Decoder *d, int64_t *out, const int esc) {
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
        if (esc && d->s[d->p] == '\\' && d->p + 1 < d->n) d->p++; /* "\\\\" in JSON is one backslash */
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

/* A list of str/bytes, or a span tuple (data: bytes or another read-only buffer such as an mmap,
 * offsets int64 bytes, lengths int64 bytes). Release with src_release. */
typedef struct {
    PyObject *list;
    Py_buffer view; /* the span data (view.obj NULL for a list) */
    const unsigned char *base;
    Py_ssize_t size;
    const int64_t *off, *len;
    Py_ssize_t n;
    int esc; /* spans are JSON text: "\\\\" stands for one backslash */
} Src;

static int src_init(PyObject *o, Src *src, const char *what) {
    memset(src, 0, sizeof(*src));
    if (PyList_Check(o)) {
        src->list = o;
        src->n = PyList_GET_SIZE(o);
        return 0;
    }
    if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) == 3 && PyBytes_Check(PyTuple_GET_ITEM(o, 1)) &&
        PyBytes_Check(PyTuple_GET_ITEM(o, 2)) &&
        PyBytes_GET_SIZE(PyTuple_GET_ITEM(o, 1)) == PyBytes_GET_SIZE(PyTuple_GET_ITEM(o, 2)) &&
        PyBytes_GET_SIZE(PyTuple_GET_ITEM(o, 1)) % 8 == 0 &&
        PyObject_GetBuffer(PyTuple_GET_ITEM(o, 0), &src->view, PyBUF_SIMPLE) == 0) {
        src->base = (const unsigned char *)src->view.buf;
        src->size = src->view.len;
        src->off = (const int64_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(o, 1));
        src->len = (const int64_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(o, 2));
        src->n = PyBytes_GET_SIZE(PyTuple_GET_ITEM(o, 1)) / 8;
        src->esc = 1;
        return 0;
    }
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "%s must be a list of str/bytes or a (data, offsets, lengths) tuple of buffers",
                 what);
    return -1;
}

static void src_release(Src *src) {
    if (src->view.obj) PyBuffer_Release(&src->view);
}

/* String k (0 <= k < n) of a source: 1 and its characters, or 0 when it is not a string. */
static int src_get(const Src *src, Py_ssize_t k, const unsigned char **s, Py_ssize_t *n) {
    if (src->list) return get_chars(PyList_GET_ITEM(src->list, k), s, n);
    int64_t o = src->off[k], l = src->len[k];
    if (o < 0 || l < 0 || o > (int64_t)src->size || l > (int64_t)src->size - o) return 0;
    *s = src->base + o;
    *n = (Py_ssize_t)l;
    return 1;
}

/* Next (background, foreground) pair of runs into *bg, *fg. Returns 2 on a pair, 1 on a lone
 * background run at the end of the string (*fg = 0), 0 at the end, -code on an error.
 *
 * The fast path: from the fifth run on, every number is a difference to the previous run of the same
 * kind, and nearly all differences are one character (|difference| < 16): such a pair is decoded in
 * a few instructions. Anything else (the first runs, numbers of several characters, escapes, a run
 * that would be negative, errors) goes through dec_next run by run, which decodes the same
 * characters again from the same state: the result, errors included, is dec_next's. */
static ALWAYS_INLINE int next_pair(Decoder *d, int64_t *bg, int64_t *fg, const int esc) {
    if (d->m >= 4 && d->p + 2 <= d->n) {
        unsigned c0 = (unsigned)d->s[d->p] - 48u, c1 = (unsigned)d->s[d->p + 1] - 48u;
        if ((c0 | c1) < 32u) {
            /* m is even here: back2 is the previous background run, back1 the previous foreground */
            int64_t b = d->back2 + ((int64_t)(c0 ^ 16u) - 16), f = d->back1 + ((int64_t)(c1 ^ 16u) - 16);
            if ((b | f) >= 0) {
                d->p += 2;
                d->m += 2;
                d->back2 = b;
                d->back1 = f;
                *bg = b;
                *fg = f;
                return 2;
            }
        }
    }
    int r = dec_next(d, bg, esc);
    if (r <= 0) return r;
    r = dec_next(d, fg, esc);
    if (r < 0) return r;
    if (r == 0) {
        *fg = 0;
        return 1;
    }
    return 2;
}

static ALWAYS_INLINE int scan_one(const unsigned char *s, Py_ssize_t n, const int esc, int64_t total,
                                  int64_t *area, int64_t *first, int64_t *end) {
    *area = 0;
    *first = 0;
    *end = 0;
    if (n < 0) return RLE_BADCHAR;
    if (n == 0) return RLE_EMPTY;
    Decoder d = {s, n, 0, 0, 0, 0};
    int64_t pos = 0, a = 0, f = -1, e = 0, bg, fg;
    int r;
    while ((r = next_pair(&d, &bg, &fg, esc)) > 0) {
        int64_t start = pos + bg;
        pos = start + fg;
        if (fg > 0) {
            if (f < 0) f = start;
            e = pos;
        }
        a += fg;
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
    int esc;
} ScanJob;

static void *run_scan(void *arg) {
    ScanJob *j = (ScanJob *)arg;
    if (j->esc)
        for (Py_ssize_t i = j->lo; i < j->hi; i++)
            j->c[i] = (int8_t)scan_one(j->s[i], j->n[i], 1, j->totals[i], &j->a[i], &j->f[i], &j->e[i]);
    else
        for (Py_ssize_t i = j->lo; i < j->hi; i++)
            j->c[i] = (int8_t)scan_one(j->s[i], j->n[i], 0, j->totals[i], &j->a[i], &j->f[i], &j->e[i]);
    return NULL;
}

/* Scans n strings (pointers/lengths) on two threads; call without the GIL. */
static void scan_split(const unsigned char **sp, const Py_ssize_t *lens, int esc, const int64_t *totals,
                       int8_t *c, int64_t *a, int64_t *f, int64_t *e, Py_ssize_t n) {
    ScanJob jobs[2];
    jobs[0] = (ScanJob){sp, lens, totals, c, a, f, e, 0, n / 2, esc};
    jobs[1] = jobs[0];
    jobs[1].lo = n / 2;
    jobs[1].hi = n;
    pthread_t th;
    int threaded = n >= 4096 && pthread_create(&th, NULL, run_scan, &jobs[1]) == 0;
    run_scan(&jobs[0]);
    if (threaded)
        pthread_join(th, NULL);
    else
        run_scan(&jobs[1]);
}

static PyObject *rle_scan(PyObject *self, PyObject *args) {
    PyObject *strings;
    Py_buffer tot;
    Src src;
    if (!PyArg_ParseTuple(args, "Oy*", &strings, &tot)) return NULL;
    if (src_init(strings, &src, "strings") < 0) {
        PyBuffer_Release(&tot);
        return NULL;
    }
    Py_ssize_t n = src.n;
    if (tot.len != n * (Py_ssize_t)sizeof(int64_t)) {
        PyBuffer_Release(&tot);
        src_release(&src);
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
        if (!src_get(&src, i, &sp[i], &lens[i])) {
            PyErr_Format(PyExc_TypeError, "strings[%zd] is neither str nor bytes (nor a valid span)", i);
            goto fail;
        }
    }
    /* the list/tuple holds references to the (immutable) strings: safe to read without the GIL */
    Py_BEGIN_ALLOW_THREADS
    scan_split(sp, lens, src.esc, (const int64_t *)tot.buf, (int8_t *)PyBytes_AS_STRING(codes),
               (int64_t *)PyBytes_AS_STRING(areas), (int64_t *)PyBytes_AS_STRING(firsts),
               (int64_t *)PyBytes_AS_STRING(ends), n);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(mem);
    PyBuffer_Release(&tot);
    src_release(&src);
    return Py_BuildValue("(NNNN)", codes, areas, firsts, ends);
fail:
    PyMem_RawFree(mem);
    PyBuffer_Release(&tot);
    src_release(&src);
    Py_XDECREF(codes);
    Py_XDECREF(areas);
    Py_XDECREF(firsts);
    Py_XDECREF(ends);
    return NULL;
}

/* The foreground of a valid string as intervals [iv[2j], iv[2j + 1]) (ascending, non-empty), into
 * *buf (grown as needed; raw allocator, callable without the GIL). Returns the number of intervals,
 * -1 on a decoding error, -2 when out of memory. */
static ALWAYS_INLINE Py_ssize_t decode_intervals(const unsigned char *s, Py_ssize_t n, const int esc,
                                                 int64_t **buf, Py_ssize_t *cap) {
    Decoder d = {s, n, 0, 0, 0, 0};
    int64_t pos = 0, bg, fg;
    Py_ssize_t k = 0;
    int r;
    while ((r = next_pair(&d, &bg, &fg, esc)) > 0) {
        int64_t start = pos + bg;
        pos = start + fg;
        if (fg == 0) continue;
        if (k == *cap) {
            Py_ssize_t c = *cap ? 2 * *cap : 256;
            int64_t *q = (int64_t *)PyMem_RawRealloc(*buf, (size_t)c * 2 * sizeof(int64_t));
            if (!q) return -2;
            *buf = q;
            *cap = c;
        }
        (*buf)[2 * k] = start;
        (*buf)[2 * k + 1] = pos;
        k++;
    }
    return r < 0 ? -1 : k;
}

/* |A & B| of a valid string A (streamed) and the nb foreground intervals iv of B, stopping at pixel
 * ``limit`` or after B's last interval. 0 on success, -1 on a decoding error of A. */
static ALWAYS_INLINE int intersect_stream(const unsigned char *sa, Py_ssize_t na, const int esca,
                                          const int64_t *iv, Py_ssize_t nb, int64_t limit, int64_t *out) {
    Decoder d = {sa, na, 0, 0, 0, 0};
    int64_t pos = 0, inter = 0, bg, fg;
    Py_ssize_t j = 0; /* B's first interval that may still meet A's next foreground run */
    int r = 0;
    while (j < nb && pos < limit && (r = next_pair(&d, &bg, &fg, esca)) > 0) {
        int64_t start = pos + bg;
        pos = start + fg;
        if (fg == 0) continue;
        while (j < nb && iv[2 * j + 1] <= start) j++;
        for (Py_ssize_t k = j; k < nb && iv[2 * k] < pos; k++) {
            int64_t lo = iv[2 * k] > start ? iv[2 * k] : start, hi = iv[2 * k + 1] < pos ? iv[2 * k + 1] : pos;
            inter += hi - lo;
        }
    }
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
    int failed; /* first failing pair + 1, or 0 (-1: out of memory) */
    int esca, escb;
} Job;

/* Pairs [lo, hi): B is decoded to intervals once per run of pairs with the same B string. */
static void *run_job(void *arg) {
    Job *j = (Job *)arg;
    int64_t *iv = NULL;
    Py_ssize_t cap = 0, nb = 0;
    const unsigned char *cur = NULL;
    Py_ssize_t cur_n = -1;
    for (Py_ssize_t k = j->lo; k < j->hi; k++) {
        if (j->sb[k] != cur || j->nb[k] != cur_n) {
            cur = j->sb[k];
            cur_n = j->nb[k];
            nb = j->escb ? decode_intervals(cur, cur_n, 1, &iv, &cap) : decode_intervals(cur, cur_n, 0, &iv, &cap);
            if (nb == -2) {
                j->failed = -1;
                break;
            }
        }
        int bad = nb < 0 || (j->esca ? intersect_stream(j->sa[k], j->na[k], 1, iv, nb, j->limit[k], &j->out[k])
                                     : intersect_stream(j->sa[k], j->na[k], 0, iv, nb, j->limit[k], &j->out[k]));
        if (bad) {
            j->failed = (int)(k + 1);
            break;
        }
    }
    PyMem_RawFree(iv);
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
    Src sa_src, sb_src;
    if (!PyArg_ParseTuple(args, "OOy*y*y*", &la, &lb, &ba, &bb, &bl)) return NULL;
    memset(&sa_src, 0, sizeof(sa_src));
    memset(&sb_src, 0, sizeof(sb_src));
    PyObject *out = NULL;
    void *mem = NULL;
    Py_ssize_t p = ba.len / 8;
    if (src_init(la, &sa_src, "a") < 0 || src_init(lb, &sb_src, "b") < 0) goto end;
    if (ba.len != bb.len || ba.len != bl.len || ba.len % 8) {
        PyErr_SetString(PyExc_ValueError, "ia, ib and limit must be int64 buffers of equal length");
        goto end;
    }
    if (index_buffer(&ba, p, sa_src.n, "ia") < 0 || index_buffer(&bb, p, sb_src.n, "ib") < 0) goto end;
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
        if (!src_get(&sa_src, ia[k], &sa[k], &na[k]) || !src_get(&sb_src, ib[k], &sb[k], &nb[k]) || na[k] < 0 ||
            nb[k] < 0) {
            PyErr_Format(PyExc_ValueError, "pair %zd: not a valid compressed RLE string", k);
            Py_CLEAR(out);
            goto end;
        }
    }
    /* the lists/tuples hold references to the strings (immutable): safe to read without the GIL */
    Job job = {sa, sb, na, nb, (const int64_t *)bl.buf, (int64_t *)PyBytes_AS_STRING(out), 0, p, 0,
               sa_src.esc, sb_src.esc};
    Py_BEGIN_ALLOW_THREADS
    run_split(&job, p, run_job);
    Py_END_ALLOW_THREADS
    if (job.failed < 0) {
        PyErr_NoMemory();
        Py_CLEAR(out);
    } else if (job.failed) {
        PyErr_Format(PyExc_ValueError, "pair %d: not a valid compressed RLE string", job.failed - 1);
        Py_CLEAR(out);
    }
end:
    PyMem_RawFree(mem);
    src_release(&sa_src);
    src_release(&sb_src);
    PyBuffer_Release(&ba);
    PyBuffer_Release(&bb);
    PyBuffer_Release(&bl);
    return out;
}

/* ---------------------------------------------------------------------------------------------
 * parse_results: a specialised reader of results.json (see the header comment). Every function
 * returns 0 on success and -1 on anything it does not support (the caller falls back). */

typedef struct {
    char *p;
    size_t n, cap, item;
} Vec;

static int vec_push(Vec *v, const void *x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1024;
        char *q = (char *)realloc(v->p, cap * v->item);
        if (!q) return -1;
        v->p = q;
        v->cap = cap;
    }
    memcpy(v->p + v->n * v->item, x, v->item);
    v->n++;
    return 0;
}

/* Where a reader is in a JSON text. */
typedef struct {
    const unsigned char *base, *p, *end;
} Cursor;

typedef struct {
    Cursor c;
    Vec vid, cat, score, nfr;                      /* per entry */
    Vec entry, frame, h, w, off, len;              /* per mask */
    int nomem;
} Parser;

static inline void skip_ws(Cursor *q) {
    while (q->p < q->end && (*q->p == ' ' || *q->p == '\n' || *q->p == '\r' || *q->p == '\t')) q->p++;
}

static inline int expect(Cursor *q, unsigned char c) {
    skip_ws(q);
    if (q->p >= q->end || *q->p != c) return -1;
    q->p++;
    return 0;
}

/* A string (raw, escapes left in): [*s, *s + *n) between the quotes. */
static int parse_plain_string(Cursor *q, const unsigned char **s, size_t *n) {
    if (expect(q, '"') < 0) return -1;
    const unsigned char *e = memchr(q->p, '"', (size_t)(q->end - q->p));
    if (!e) return -1;
    /* escapes: only "\\\\" (a backslash, a valid RLE character) is supported, the decoders skip the first */
    const unsigned char *b = q->p;
    while ((b = memchr(b, '\\', (size_t)(e - b))) != NULL) {
        if (b + 1 >= e || b[1] != '\\') return -1;
        b += 2;
    }
    *s = q->p;
    *n = (size_t)(e - q->p);
    q->p = e + 1;
    return 0;
}

/* A key: index in keys[] (each a plain printable-ASCII word), or -1. */
static int parse_key(Cursor *q, const char *const *keys, int nkeys) {
    const unsigned char *s;
    size_t n;
    if (parse_plain_string(q, &s, &n) < 0) return -1;
    for (int k = 0; k < nkeys; k++)
        if (strlen(keys[k]) == n && memcmp(keys[k], s, n) == 0) return expect(q, ':') < 0 ? -1 : k;
    return -1;
}

/* Lists and objects: list_begin reads "[" and says whether an item follows (1) or the list is empty
 * (0); list_more reads "," (1: another item) or "]" (0). obj_more is list_more for objects. -1 on
 * anything else. */
static int list_begin(Cursor *q) {
    if (expect(q, '[') < 0) return -1;
    skip_ws(q);
    if (q->p < q->end && *q->p == ']') {
        q->p++;
        return 0;
    }
    return 1;
}

static int close_or_more(Cursor *q, unsigned char close) {
    skip_ws(q);
    if (q->p < q->end && *q->p == ',') {
        q->p++;
        return 1;
    }
    return expect(q, close) < 0 ? -1 : 0;
}

static int list_more(Cursor *q) { return close_or_more(q, ']'); }
static int obj_more(Cursor *q) { return close_or_more(q, '}'); }

/* Reads a JSON null if one comes next (1), else reads nothing (0). */
static int is_null(Cursor *q) {
    skip_ws(q);
    if (q->end - q->p >= 4 && memcmp(q->p, "null", 4) == 0) {
        q->p += 4;
        return 1;
    }
    return 0;
}

/* 0 when only whitespace is left, else -1. */
static int at_end(Cursor *q) {
    skip_ws(q);
    return q->p == q->end ? 0 : -1;
}

/* A JSON integer (no fraction or exponent) of at most maxdig digits; negative only if allowed. */
static int parse_int(Cursor *q, int allow_neg, int maxdig, int64_t *out) {
    skip_ws(q);
    const unsigned char *p = q->p;
    int neg = 0;
    if (p < q->end && *p == '-') {
        if (!allow_neg) return -1;
        neg = 1;
        p++;
    }
    if (p >= q->end || *p < '0' || *p > '9') return -1;
    int64_t x = 0;
    int nd = 0;
    if (*p == '0') {
        p++;
        nd = 1;
    } else {
        while (p < q->end && *p >= '0' && *p <= '9') {
            if (++nd > maxdig) return -1;
            x = x * 10 + (*p - '0');
            p++;
        }
    }
    if (p < q->end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9'))) return -1;
    q->p = p;
    *out = neg ? -x : x;
    return 0;
}

/* Any JSON number, as a JSON parser gives it to Python: an integer (no fraction or exponent; at most
 * 18 digits; *is_int = 1, *iout its value) as float(int) (so "-0" is +0.0), anything else as strtod
 * converts it (correctly rounded like float(str)); finite, no over/underflow. */
static int parse_number(Cursor *q, double *out, int64_t *iout, int *is_int) {
    skip_ws(q);
    const unsigned char *p = q->p, *start = p;
    if (p < q->end && *p == '-') p++;
    if (p >= q->end || *p < '0' || *p > '9') return -1;
    if (*p == '0')
        p++;
    else
        while (p < q->end && *p >= '0' && *p <= '9') p++;
    if (p >= q->end || (*p != '.' && *p != 'e' && *p != 'E')) { /* an integer */
        if (parse_int(q, 1, 18, iout) < 0) return -1;
        *out = (double)*iout; /* exact below 2**53; correctly rounded (to nearest even) above, like float() */
        *is_int = 1;
        return 0;
    }
    if (p < q->end && *p == '.') {
        p++;
        if (p >= q->end || *p < '0' || *p > '9') return -1;
        while (p < q->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < q->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < q->end && (*p == '+' || *p == '-')) p++;
        if (p >= q->end || *p < '0' || *p > '9') return -1;
        while (p < q->end && *p >= '0' && *p <= '9') p++;
    }
    size_t n = (size_t)(p - start);
    char buf[512];
    if (n >= sizeof(buf)) return -1;
    memcpy(buf, start, n);
    buf[n] = 0;
    char *endp;
    errno = 0;
    double x = strtod(buf, &endp);
    if (endp != buf + n || errno != 0 || !isfinite(x)) return -1;
    q->p = p;
    *out = x;
    *is_int = 0;
    return 0;
}

static int parse_double(Cursor *q, double *out) {
    int64_t i;
    int is_int;
    return parse_number(q, out, &i, &is_int);
}

static const char *const MASK_KEYS[] = {"size", "counts"};
static const char *const ENTRY_KEYS[] = {"video_id", "category_id", "score", "segmentations"};

/* {"size": [h, w], "counts": "..."} with exactly these keys (h and w integers of at most 9 digits):
 * the counts string as a span of the text (escapes left in). */
static int parse_rle_dict(Cursor *q, int64_t *h, int64_t *w, int64_t *off, int64_t *len) {
    int seen = 0;
    if (expect(q, '{') < 0) return -1;
    for (;;) {
        int k = parse_key(q, MASK_KEYS, 2);
        if (k < 0 || (seen & (1 << k))) return -1;
        seen |= 1 << k;
        if (k == 0) {
            if (expect(q, '[') < 0 || parse_int(q, 0, 9, h) < 0 || expect(q, ',') < 0 || parse_int(q, 0, 9, w) < 0 ||
                expect(q, ']') < 0)
                return -1;
        } else {
            const unsigned char *s;
            size_t n;
            if (parse_plain_string(q, &s, &n) < 0) return -1;
            *off = (int64_t)(s - q->base);
            *len = (int64_t)n;
        }
        int r = obj_more(q);
        if (r < 0) return -1;
        if (r == 0) return seen == 3 ? 0 : -1;
    }
}

static int parse_mask(Parser *q, int64_t entry, int64_t frame) {
    int64_t h = 0, w = 0, off = 0, len = 0;
    if (parse_rle_dict(&q->c, &h, &w, &off, &len) < 0) return -1;
    if (vec_push(&q->entry, &entry) || vec_push(&q->frame, &frame) || vec_push(&q->h, &h) ||
        vec_push(&q->w, &w) || vec_push(&q->off, &off) || vec_push(&q->len, &len)) {
        q->nomem = 1;
        return -1;
    }
    return 0;
}

static int parse_segmentations(Parser *q, int64_t entry, int64_t *nframes) {
    int64_t f = 0;
    int r = list_begin(&q->c);
    for (; r > 0; r = list_more(&q->c), f++)
        if (!is_null(&q->c) && parse_mask(q, entry, f) < 0) return -1;
    *nframes = f;
    return r;
}

static int parse_entry(Parser *q, int64_t entry) {
    int seen = 0;
    int64_t vid = 0, cat = 0, nfr = 0;
    double score = 0;
    Cursor *c = &q->c;
    if (expect(c, '{') < 0) return -1;
    for (;;) {
        int k = parse_key(c, ENTRY_KEYS, 4);
        if (k < 0 || (seen & (1 << k))) return -1;
        seen |= 1 << k;
        int r;
        if (k == 0)
            r = parse_int(c, 1, 18, &vid);
        else if (k == 1)
            r = parse_int(c, 1, 18, &cat);
        else if (k == 2)
            r = parse_double(c, &score);
        else
            r = parse_segmentations(q, entry, &nfr);
        if (r < 0 || (r = obj_more(c)) < 0) return -1;
        if (r == 0) break;
    }
    if (seen != 15) return -1;
    if (vec_push(&q->vid, &vid) || vec_push(&q->cat, &cat) || vec_push(&q->score, &score) ||
        vec_push(&q->nfr, &nfr)) {
        q->nomem = 1;
        return -1;
    }
    return 0;
}

static int parse_all(Parser *q) {
    int64_t i = 0;
    int r = list_begin(&q->c);
    for (; r > 0; r = list_more(&q->c), i++)
        if (parse_entry(q, i) < 0) return -1;
    return r < 0 ? -1 : at_end(&q->c);
}

/* The masks a reader found (spans [off[i], off[i] + len[i]) of base, sizes h[i] x w[i]) scanned like
 * ``scan`` into out[0..3] = codes, areas, first, end (new bytes objects). 0, or -1 with an exception
 * set (and out cleared). */
static int scan_found(const unsigned char *base, const Vec *off_v, const Vec *len_v, const Vec *h_v, const Vec *w_v,
                      PyObject *out[4]) {
    Py_ssize_t m = (Py_ssize_t)off_v->n;
    out[0] = PyBytes_FromStringAndSize(NULL, m);
    for (int k = 1; k < 4; k++) out[k] = PyBytes_FromStringAndSize(NULL, m * 8);
    void *mem = PyMem_RawMalloc((size_t)(m > 0 ? m : 1) * (sizeof(char *) + sizeof(Py_ssize_t) + sizeof(int64_t)));
    if (!out[0] || !out[1] || !out[2] || !out[3] || !mem) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        for (int k = 0; k < 4; k++) Py_CLEAR(out[k]);
        PyMem_RawFree(mem);
        return -1;
    }
    const unsigned char **sp = (const unsigned char **)mem;
    Py_ssize_t *lens = (Py_ssize_t *)(sp + m);
    int64_t *totals = (int64_t *)(lens + m);
    const int64_t *off = (const int64_t *)off_v->p, *len = (const int64_t *)len_v->p;
    const int64_t *hh = (const int64_t *)h_v->p, *ww = (const int64_t *)w_v->p;
    for (Py_ssize_t i = 0; i < m; i++) {
        sp[i] = base + off[i];
        lens[i] = (Py_ssize_t)len[i];
        totals[i] = hh[i] * ww[i]; /* < 1e18: both have at most 9 digits */
    }
    Py_BEGIN_ALLOW_THREADS
    scan_split(sp, lens, 1, totals, (int8_t *)PyBytes_AS_STRING(out[0]), (int64_t *)PyBytes_AS_STRING(out[1]),
               (int64_t *)PyBytes_AS_STRING(out[2]), (int64_t *)PyBytes_AS_STRING(out[3]), m);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(mem);
    return 0;
}

static PyObject *vec_bytes(Vec *v) { return PyBytes_FromStringAndSize(v->p ? v->p : "", (Py_ssize_t)(v->n * v->item)); }

static PyObject *rle_parse_results(PyObject *self, PyObject *arg) {
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    Parser q;
    memset(&q, 0, sizeof(q));
    q.c.base = q.c.p = (const unsigned char *)buf.buf;
    q.c.end = q.c.base + buf.len;
    q.vid.item = q.cat.item = q.nfr.item = q.entry.item = q.frame.item = q.h.item = q.w.item = q.off.item =
        q.len.item = sizeof(int64_t);
    q.score.item = sizeof(double);
    Vec *all[] = {&q.vid, &q.cat, &q.score, &q.nfr, &q.entry, &q.frame, &q.h, &q.w, &q.off, &q.len};
    const int nall = (int)(sizeof(all) / sizeof(all[0]));
    int ok;
    /* the buffer is held (and the caller keeps the object alive): parse without the GIL */
    Py_BEGIN_ALLOW_THREADS
    ok = parse_all(&q) == 0;
    Py_END_ALLOW_THREADS
    PyObject *res = NULL;
    if (!ok) {
        if (q.nomem)
            PyErr_NoMemory();
        else
            res = Py_NewRef(Py_None);
        goto end;
    }
    Py_ssize_t m = (Py_ssize_t)q.entry.n;
    PyObject *sc[4];
    if (scan_found(q.c.base, &q.off, &q.len, &q.h, &q.w, sc) < 0) goto end;
    res = Py_BuildValue("(nNNNNnNNNNNNNNNN)", (Py_ssize_t)q.vid.n, vec_bytes(&q.vid), vec_bytes(&q.cat),
                        vec_bytes(&q.score), vec_bytes(&q.nfr), m, vec_bytes(&q.entry), vec_bytes(&q.frame),
                        vec_bytes(&q.h), vec_bytes(&q.w), vec_bytes(&q.off), vec_bytes(&q.len), sc[0], sc[1],
                        sc[2], sc[3]);
end:
    for (int i = 0; i < nall; i++) free(all[i]->p);
    PyBuffer_Release(&buf);
    return res;
}

/* ---------------------------------------------------------------------------------------------
 * parse_gt: a specialised reader of YouTube-VIS / OVIS GT files (see the header comment). Like
 * parse_results, every function returns 0 (or a count) on success and -1 on anything it does not
 * support; the caller then parses the file as JSON and validates it in Python. */

/* A JSON string, strictly (what every JSON parser accepts and reads the same): printable ASCII,
 * escapes other than \uXXXX. [*s, *s + *n) is the text between the quotes, *esc whether it has an
 * escape. Anything else (control characters, non-ASCII bytes, \u escapes) is unsupported. */
static int parse_strict_string(Cursor *q, const unsigned char **s, size_t *n, int *esc) {
    if (expect(q, '"') < 0) return -1;
    const unsigned char *p = q->p;
    *esc = 0;
    for (;; p++) {
        if (p >= q->end || *p < 0x20 || *p >= 0x7f) return -1;
        if (*p == '"') break;
        if (*p == '\\') {
            if (p + 1 >= q->end || !strchr("\"\\/bfnrt", p[1]) || p[1] == 0) return -1;
            *esc = 1;
            p++;
        }
    }
    *s = q->p;
    *n = (size_t)(p - q->p);
    q->p = p + 1;
    return 0;
}

/* A key of an object whose other keys are skipped: index in keys[], or nkeys for another key. */
static int parse_any_key(Cursor *q, const char *const *keys, int nkeys) {
    const unsigned char *s;
    size_t n;
    int esc;
    if (parse_strict_string(q, &s, &n, &esc) < 0 || expect(q, ':') < 0) return -1;
    if (!esc)
        for (int k = 0; k < nkeys; k++)
            if (strlen(keys[k]) == n && memcmp(keys[k], s, n) == 0) return k;
    return nkeys;
}

/* Any JSON value, checked strictly (see parse_strict_string; numbers of the JSON grammar), skipped. */
static int skip_value(Cursor *q, int depth) {
    skip_ws(q);
    if (q->p >= q->end || depth > 200) return -1;
    const unsigned char *s;
    size_t n;
    int esc, r;
    switch (*q->p) {
    case '"':
        return parse_strict_string(q, &s, &n, &esc);
    case '[':
        r = list_begin(q);
        for (; r > 0; r = list_more(q))
            if (skip_value(q, depth + 1) < 0) return -1;
        return r;
    case '{':
        q->p++;
        skip_ws(q);
        if (q->p < q->end && *q->p == '}') {
            q->p++;
            return 0;
        }
        for (;;) {
            if (parse_strict_string(q, &s, &n, &esc) < 0 || expect(q, ':') < 0 || skip_value(q, depth + 1) < 0)
                return -1;
            if ((r = obj_more(q)) <= 0) return r;
        }
    case 't':
    case 'f':
    case 'n': {
        const char *word = *q->p == 't' ? "true" : *q->p == 'f' ? "false" : "null";
        size_t len = strlen(word);
        if ((size_t)(q->end - q->p) < len || memcmp(q->p, word, len) != 0) return -1;
        q->p += len;
        return 0;
    }
    default: {
        double x;
        int64_t i;
        int is_int;
        return parse_number(q, &x, &i, &is_int);
    }
    }
}

typedef struct {
    Cursor c;
    Vec v_id, v_h, v_w, v_len, v_nf;            /* per video (v_len -1: no "length") */
    Vec c_id;                                   /* per category */
    Vec a_id, a_vid, a_cat, a_crowd;            /* per annotation */
    Vec a_nseg, a_narea, a_nbox, a_nocc;        /* list lengths (a_nbox, a_nocc -1: absent or null) */
    Vec ar_val, ar_int, ar_kind;                /* per entry of "areas": value, int value, kind */
    Vec occ;                                    /* per entry of "occlusion": -1 null, else label index */
    Vec m_ann, m_frame, m_h, m_w, m_off, m_len; /* per mask */
    Vec hashes;                                 /* scratch: one video's file name hashes */
    int has_ann, nomem;
} GTParser;

static int push(GTParser *g, Vec *v, const void *x) {
    if (vec_push(v, x)) {
        g->nomem = 1;
        return -1;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* file_names: a list of strings that the validator accepts without looking closer (no escape, not
 * empty, no leading '/', no ':' and no '..' anywhere) and that differ (64-bit hashes differ). */
static int parse_file_names(GTParser *g, int64_t *count) {
    Cursor *q = &g->c;
    g->hashes.n = 0;
    int64_t k = 0;
    int r = list_begin(q);
    for (; r > 0; r = list_more(q), k++) {
        const unsigned char *s;
        size_t n;
        int esc;
        if (parse_strict_string(q, &s, &n, &esc) < 0 || esc || n == 0 || s[0] == '/' || memchr(s, ':', n))
            return -1;
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '.' && i + 1 < n && s[i + 1] == '.') return -1;
            h = (h ^ s[i]) * 1099511628211ULL;
        }
        if (push(g, &g->hashes, &h) < 0) return -1;
    }
    if (r < 0) return -1;
    uint64_t *hs = (uint64_t *)g->hashes.p;
    qsort(hs, g->hashes.n, sizeof(uint64_t), cmp_u64);
    for (size_t i = 1; i < g->hashes.n; i++)
        if (hs[i] == hs[i - 1]) return -1; /* a duplicate (or a hash collision): the validator decides */
    *count = k;
    return 0;
}

static const char *const VIDEO_KEYS[] = {"id", "height", "width", "length", "file_names"};

static int parse_video(GTParser *g) {
    Cursor *q = &g->c;
    int seen = 0;
    int64_t id = 0, h = 0, w = 0, len = -1, nf = 0;
    if (expect(q, '{') < 0) return -1;
    int r = 1;
    for (; r > 0; r = obj_more(q)) {
        int k = parse_any_key(q, VIDEO_KEYS, 5), ok;
        if (k < 0 || (k < 5 && (seen & (1 << k)))) return -1;
        if (k < 5) seen |= 1 << k;
        if (k == 0)
            ok = parse_int(q, 1, 18, &id);
        else if (k == 1)
            ok = parse_int(q, 0, 9, &h);
        else if (k == 2)
            ok = parse_int(q, 0, 9, &w);
        else if (k == 3)
            ok = parse_int(q, 0, 18, &len);
        else if (k == 4)
            ok = parse_file_names(g, &nf);
        else
            ok = skip_value(q, 1);
        if (ok < 0) return -1;
    }
    if (r < 0) return -1;
    if ((seen & 0x17) != 0x17) return -1; /* id, height, width and file_names are required */
    return push(g, &g->v_id, &id) || push(g, &g->v_h, &h) || push(g, &g->v_w, &w) || push(g, &g->v_len, &len) ||
                   push(g, &g->v_nf, &nf)
               ? -1
               : 0;
}

static const char *const CATEGORY_KEYS[] = {"id", "name"};

static int parse_category(GTParser *g) {
    Cursor *q = &g->c;
    int seen = 0;
    int64_t id = 0;
    if (expect(q, '{') < 0) return -1;
    int r = 1;
    for (; r > 0; r = obj_more(q)) {
        int k = parse_any_key(q, CATEGORY_KEYS, 2), ok;
        if (k < 0 || (k < 2 && (seen & (1 << k)))) return -1;
        if (k < 2) seen |= 1 << k;
        const unsigned char *s;
        size_t n;
        int esc;
        if (k == 0)
            ok = parse_int(q, 1, 18, &id);
        else if (k == 1)
            ok = parse_strict_string(q, &s, &n, &esc);
        else
            ok = skip_value(q, 1);
        if (ok < 0) return -1;
    }
    if (r < 0) return -1;
    return seen == 3 ? push(g, &g->c_id, &id) : -1;
}

static const char *const OCCLUSION_LABELS[] = {"no_occlusion", "slight_occlusion", "severe_occlusion"};

/* The per-frame lists of an annotation. Each returns its length (or -1 for an absent/null list where
 * allowed) in *count. */
static int parse_gt_segmentations(GTParser *g, int64_t ann, int64_t *count) {
    Cursor *q = &g->c;
    int64_t f = 0;
    int r = list_begin(q);
    for (; r > 0; r = list_more(q), f++) {
        if (is_null(q)) continue;
        int64_t h = 0, w = 0, off = 0, len = 0;
        if (parse_rle_dict(q, &h, &w, &off, &len) < 0 || push(g, &g->m_ann, &ann) || push(g, &g->m_frame, &f) ||
            push(g, &g->m_h, &h) || push(g, &g->m_w, &w) || push(g, &g->m_off, &off) || push(g, &g->m_len, &len))
            return -1;
    }
    *count = f;
    return r;
}

static int parse_areas(GTParser *g, int64_t *count) {
    Cursor *q = &g->c;
    int64_t f = 0;
    int r = list_begin(q);
    for (; r > 0; r = list_more(q), f++) {
        double x = 0;
        int64_t i = 0;
        int is_int = 0;
        int8_t kind = 0; /* 0 null, 1 integer, 2 float */
        if (!is_null(q)) {
            if (parse_number(q, &x, &i, &is_int) < 0 || !(x >= 0)) return -1; /* negative: the validator words it */
            kind = is_int ? 1 : 2;
        }
        if (push(g, &g->ar_val, &x) || push(g, &g->ar_int, &i) || push(g, &g->ar_kind, &kind)) return -1;
    }
    *count = f;
    return r;
}

static int parse_bboxes(GTParser *g, int64_t *count) {
    Cursor *q = &g->c;
    *count = -1;
    if (is_null(q)) return 0;
    int64_t f = 0;
    int r = list_begin(q);
    for (; r > 0; r = list_more(q), f++) {
        if (is_null(q)) continue;
        double x;
        if (expect(q, '[') < 0) return -1;
        for (int k = 0; k < 4; k++)
            if ((k && expect(q, ',') < 0) || parse_double(q, &x) < 0) return -1;
        if (expect(q, ']') < 0) return -1;
    }
    *count = f;
    return r;
}

static int parse_occlusion(GTParser *g, int64_t *count) {
    Cursor *q = &g->c;
    *count = -1;
    if (is_null(q)) return 0;
    int64_t f = 0;
    int r = list_begin(q);
    for (; r > 0; r = list_more(q), f++) {
        int8_t label = -1;
        if (!is_null(q)) {
            const unsigned char *s;
            size_t n;
            int esc;
            if (parse_strict_string(q, &s, &n, &esc) < 0) return -1;
            for (int k = 0; k < 3; k++)
                if (strlen(OCCLUSION_LABELS[k]) == n && memcmp(OCCLUSION_LABELS[k], s, n) == 0) label = (int8_t)k;
            if (label < 0) return -1;
        }
        if (push(g, &g->occ, &label)) return -1;
    }
    *count = f;
    return r;
}

static const char *const ANN_KEYS[] = {"id",    "video_id", "category_id", "iscrowd", "segmentations",
                                       "areas", "bboxes",   "occlusion"};

static int parse_annotation(GTParser *g, int64_t ann) {
    Cursor *q = &g->c;
    int seen = 0;
    int64_t id = 0, vid = 0, cat = 0, crowd = 0, nseg = 0, narea = 0, nbox = -1, nocc = -1;
    if (expect(q, '{') < 0) return -1;
    int r = 1;
    for (; r > 0; r = obj_more(q)) {
        int k = parse_any_key(q, ANN_KEYS, 8), ok;
        if (k < 0 || (k < 8 && (seen & (1 << k)))) return -1;
        if (k < 8) seen |= 1 << k;
        switch (k) {
        case 0:
            ok = parse_int(q, 1, 18, &id);
            break;
        case 1:
            ok = parse_int(q, 1, 18, &vid);
            break;
        case 2:
            ok = parse_int(q, 1, 18, &cat);
            break;
        case 3:
            ok = parse_int(q, 0, 1, &crowd) < 0 || crowd > 1 ? -1 : 0;
            break;
        case 4:
            ok = parse_gt_segmentations(g, ann, &nseg);
            break;
        case 5:
            ok = parse_areas(g, &narea);
            break;
        case 6:
            ok = parse_bboxes(g, &nbox);
            break;
        case 7:
            ok = parse_occlusion(g, &nocc);
            break;
        default:
            ok = skip_value(q, 1);
        }
        if (ok < 0) return -1;
    }
    if (r < 0) return -1;
    if ((seen & 0x3f) != 0x3f) return -1; /* all but bboxes and occlusion are required */
    /* the per-frame values of a list that came twice would be pushed twice: rejected above */
    return push(g, &g->a_id, &id) || push(g, &g->a_vid, &vid) || push(g, &g->a_cat, &cat) ||
                   push(g, &g->a_crowd, &crowd) || push(g, &g->a_nseg, &nseg) || push(g, &g->a_narea, &narea) ||
                   push(g, &g->a_nbox, &nbox) || push(g, &g->a_nocc, &nocc)
               ? -1
               : 0;
}

static const char *const GT_KEYS[] = {"videos", "categories", "annotations"};

static int parse_gt_all(GTParser *g) {
    Cursor *q = &g->c;
    int seen = 0;
    if (expect(q, '{') < 0) return -1;
    int r = 1;
    for (; r > 0; r = obj_more(q)) {
        int k = parse_any_key(q, GT_KEYS, 3), ok = 0;
        if (k < 0 || (k < 3 && (seen & (1 << k)))) return -1;
        if (k < 3) seen |= 1 << k;
        if (k == 0) {
            for (ok = list_begin(q); ok > 0; ok = list_more(q))
                if (parse_video(g) < 0) return -1;
        } else if (k == 1) {
            for (ok = list_begin(q); ok > 0; ok = list_more(q))
                if (parse_category(g) < 0) return -1;
        } else if (k == 2) {
            int64_t i = 0;
            g->has_ann = !is_null(q);
            if (g->has_ann)
                for (ok = list_begin(q); ok > 0; ok = list_more(q), i++)
                    if (parse_annotation(g, i) < 0) return -1;
        } else {
            ok = skip_value(q, 1);
        }
        if (ok < 0) return -1;
    }
    if (r < 0) return -1;
    return (seen & 3) == 3 ? at_end(q) : -1;
}

/* d[key] = v (a new reference, stolen); 1 on failure. */
static int dict_put(PyObject *d, const char *key, PyObject *v) {
    int bad = !v || PyDict_SetItemString(d, key, v) < 0;
    Py_XDECREF(v);
    return bad;
}

static PyObject *rle_parse_gt(PyObject *self, PyObject *arg) {
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0) return NULL;
    GTParser g;
    memset(&g, 0, sizeof(g));
    g.c.base = g.c.p = (const unsigned char *)buf.buf;
    g.c.end = g.c.base + buf.len;
    Vec *i64s[] = {&g.v_id,    &g.v_h,     &g.v_w,   &g.v_len, &g.v_nf,    &g.c_id,   &g.a_id,   &g.a_vid,
                   &g.a_cat,   &g.a_crowd, &g.a_nseg, &g.a_narea, &g.a_nbox, &g.a_nocc, &g.ar_int, &g.m_ann,
                   &g.m_frame, &g.m_h,     &g.m_w,   &g.m_off, &g.m_len,   &g.hashes};
    const char *names[] = {"v_id",   "v_h",     "v_w",    "v_len",   "v_nf",   "c_id",   "a_id",   "a_vid",
                           "a_cat",  "a_crowd", "a_nseg", "a_narea", "a_nbox", "a_nocc", "ar_int", "m_ann",
                           "m_frame", "m_h",    "m_w",    "m_off",   "m_len"};
    const int n64 = (int)(sizeof(i64s) / sizeof(i64s[0]));
    for (int i = 0; i < n64; i++) i64s[i]->item = sizeof(int64_t);
    g.ar_val.item = sizeof(double);
    g.ar_kind.item = g.occ.item = 1;
    int ok;
    /* the caller keeps the (read-only) buffer alive: parse without the GIL */
    Py_BEGIN_ALLOW_THREADS
    ok = parse_gt_all(&g) == 0;
    Py_END_ALLOW_THREADS
    PyObject *res = NULL, *sc[4] = {NULL, NULL, NULL, NULL};
    if (!ok) {
        if (g.nomem)
            PyErr_NoMemory();
        else
            res = Py_NewRef(Py_None);
        goto end;
    }
    if (scan_found(g.c.base, &g.m_off, &g.m_len, &g.m_h, &g.m_w, sc) < 0) goto end;
    res = PyDict_New();
    if (!res) goto end;
    int bad = 0;
    for (int i = 0; i < n64 - 1; i++) bad |= dict_put(res, names[i], vec_bytes(i64s[i]));
    bad |= dict_put(res, "ar_val", vec_bytes(&g.ar_val)) | dict_put(res, "ar_kind", vec_bytes(&g.ar_kind)) |
           dict_put(res, "occ", vec_bytes(&g.occ)) | dict_put(res, "has_annotations", PyBool_FromLong(g.has_ann)) |
           dict_put(res, "codes", Py_NewRef(sc[0])) | dict_put(res, "areas", Py_NewRef(sc[1])) |
           dict_put(res, "first", Py_NewRef(sc[2])) | dict_put(res, "end", Py_NewRef(sc[3]));
    if (bad) Py_CLEAR(res);
end:
    for (int k = 0; k < 4; k++) Py_XDECREF(sc[k]);
    for (int i = 0; i < n64; i++) free(i64s[i]->p);
    free(g.ar_val.p);
    free(g.ar_kind.p);
    free(g.occ.p);
    PyBuffer_Release(&buf);
    return res;
}

/* ---------------------------------------------------------------------------------------------
 * match: COCO's greedy matching (see the header comment). */

static PyObject *rle_match(PyObject *self, PyObject *args) {
    Py_buffer b_iou, b_ds, b_gs, b_ig, b_crowd, b_gid, b_thr;
    int A;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*i", &b_iou, &b_ds, &b_gs, &b_ig, &b_crowd, &b_gid, &b_thr, &A))
        return NULL;
    PyObject *dtm = NULL, *dtig = NULL, *gtm = NULL, *res = NULL;
    uint8_t *taken = NULL;
    const int64_t *ds = (const int64_t *)b_ds.buf, *gs = (const int64_t *)b_gs.buf;
    const double *iou = (const double *)b_iou.buf, *thr = (const double *)b_thr.buf;
    const uint8_t *ig = (const uint8_t *)b_ig.buf, *crowd = (const uint8_t *)b_crowd.buf,
                  *gid = (const uint8_t *)b_gid.buf;
    Py_ssize_t U = b_ds.len / 8 - 1, T = b_thr.len / 8, n_iou = 0, g_max = 0;
    int ok = A > 0 && U >= 0 && b_ds.len == b_gs.len && b_ds.len % 8 == 0 && b_thr.len % 8 == 0 &&
             b_iou.len % 8 == 0 && ds[0] == 0 && gs[0] == 0;
    for (Py_ssize_t u = 0; ok && u < U; u++) {
        Py_ssize_t d = ds[u + 1] - ds[u], g = gs[u + 1] - gs[u];
        ok = d >= 0 && g >= 0;
        n_iou += d * g;
        if (g > g_max) g_max = g;
    }
    Py_ssize_t N = ok ? ds[U] : 0, G = ok ? gs[U] : 0;
    if (!ok || n_iou * 8 != b_iou.len || b_ig.len != G * A || b_crowd.len != G || b_gid.len != G) {
        PyErr_SetString(PyExc_ValueError, "match: inconsistent buffer sizes");
        goto end;
    }
    dtm = PyByteArray_FromStringAndSize(NULL, N * A * T);
    dtig = PyByteArray_FromStringAndSize(NULL, N * A * T);
    gtm = PyByteArray_FromStringAndSize(NULL, G * A * T);
    taken = (uint8_t *)PyMem_RawMalloc((size_t)(g_max > 0 ? g_max : 1));
    if (!dtm || !dtig || !gtm || !taken) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto end;
    }
    uint8_t *o_dtm = (uint8_t *)PyByteArray_AS_STRING(dtm), *o_dtig = (uint8_t *)PyByteArray_AS_STRING(dtig),
            *o_gtm = (uint8_t *)PyByteArray_AS_STRING(gtm);
    memset(o_dtm, 0, (size_t)(N * A * T));
    memset(o_dtig, 0, (size_t)(N * A * T));
    memset(o_gtm, 0, (size_t)(G * A * T));
    Py_BEGIN_ALLOW_THREADS
    const double *m_u = iou;
    for (Py_ssize_t u = 0; u < U; m_u += (ds[u + 1] - ds[u]) * (gs[u + 1] - gs[u]), u++) {
        Py_ssize_t D = ds[u + 1] - ds[u], Gu = gs[u + 1] - gs[u], g0 = gs[u];
        for (int a = 0; a < A; a++)
            for (Py_ssize_t t = 0; t < T; t++) {
                memset(taken, 0, (size_t)Gu);
                for (Py_ssize_t r = 0; r < D; r++) {
                    /* the best regular and the best ignored GT: the highest IoU >= the threshold, the
                     * later one on a tie (the official loop updates on >=); a regular one wins */
                    const double *row = m_u + r * Gu;
                    double best_reg = thr[t], best_ign = thr[t];
                    Py_ssize_t m_reg = -1, m_ign = -1;
                    for (Py_ssize_t j = 0; j < Gu; j++) {
                        if (taken[j] && !crowd[g0 + j]) continue; /* matched, and not a crowd */
                        if (ig[(g0 + j) * A + a]) {
                            if (row[j] >= best_ign) {
                                best_ign = row[j];
                                m_ign = j;
                            }
                        } else if (row[j] >= best_reg) {
                            best_reg = row[j];
                            m_reg = j;
                        }
                    }
                    Py_ssize_t m = m_reg >= 0 ? m_reg : m_ign;
                    if (m < 0) continue;
                    taken[m] = 1;
                    Py_ssize_t k = ((ds[u] + r) * A + a) * T + t;
                    o_dtm[k] = gid[g0 + m];
                    o_dtig[k] = ig[(g0 + m) * A + a];
                    o_gtm[((g0 + m) * A + a) * T + t] = 1;
                }
            }
    }
    Py_END_ALLOW_THREADS
    res = Py_BuildValue("(OOO)", dtm, dtig, gtm);
end:
    Py_XDECREF(dtm);
    Py_XDECREF(dtig);
    Py_XDECREF(gtm);
    PyMem_RawFree(taken);
    PyBuffer_Release(&b_iou);
    PyBuffer_Release(&b_ds);
    PyBuffer_Release(&b_gs);
    PyBuffer_Release(&b_ig);
    PyBuffer_Release(&b_crowd);
    PyBuffer_Release(&b_gid);
    PyBuffer_Release(&b_thr);
    return res;
}

/* ---------------------------------------------------------------------------------------------
 * accumulate: the official precision / recall curves (see the header comment). */

static PyObject *rle_accumulate(PyObject *self, PyObject *args) {
    Py_buffer b_dtm, b_dtig, b_order, b_cs, b_rank, b_npig, b_md, b_rt;
    int A, T;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*y*ii", &b_dtm, &b_dtig, &b_order, &b_cs, &b_rank, &b_npig, &b_md,
                          &b_rt, &A, &T))
        return NULL;
    PyObject *prec = NULL, *rec = NULL, *res = NULL;
    double *scratch = NULL;
    const uint8_t *dtm = (const uint8_t *)b_dtm.buf, *dtig = (const uint8_t *)b_dtig.buf;
    const int64_t *order = (const int64_t *)b_order.buf, *cs = (const int64_t *)b_cs.buf,
                  *rank = (const int64_t *)b_rank.buf, *npig = (const int64_t *)b_npig.buf,
                  *max_dets = (const int64_t *)b_md.buf;
    const double *rec_thrs = (const double *)b_rt.buf;
    Py_ssize_t N = b_rank.len / 8, K = b_cs.len / 8 - 1, M = b_md.len / 8, R = b_rt.len / 8, d_max = 0;
    int ok = A > 0 && T > 0 && K >= 0 && b_order.len == N * 8 && b_dtm.len == N * A * T && b_dtig.len == N * A * T &&
             b_npig.len == K * A * 8 && cs[0] == 0 && cs[K] == N;
    for (Py_ssize_t k = 0; ok && k < K; k++) {
        ok = cs[k + 1] >= cs[k];
        if (cs[k + 1] - cs[k] > d_max) d_max = cs[k + 1] - cs[k];
    }
    for (Py_ssize_t i = 0; ok && i < N; i++) ok = order[i] >= 0 && order[i] < N;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "accumulate: inconsistent buffer sizes");
        goto end;
    }
    prec = PyByteArray_FromStringAndSize(NULL, T * R * K * A * M * 8);
    rec = PyByteArray_FromStringAndSize(NULL, T * K * A * M * 8);
    scratch = (double *)PyMem_RawMalloc((size_t)(d_max > 0 ? d_max : 1) * 2 * sizeof(double));
    if (!prec || !rec || !scratch) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto end;
    }
    double *precision = (double *)PyByteArray_AS_STRING(prec), *recall = (double *)PyByteArray_AS_STRING(rec);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < T * R * K * A * M; i++) precision[i] = -1.0; /* no GT to recall */
    for (Py_ssize_t i = 0; i < T * K * A * M; i++) recall[i] = -1.0;
    double *pr = scratch, *rc = scratch + d_max;
    const double eps = 2.220446049250313e-16; /* np.spacing(1) */
    for (Py_ssize_t k = 0; k < K; k++)
        for (int a = 0; a < A; a++) {
            int64_t n_gt = npig[k * A + a];
            if (n_gt == 0) continue;
            for (Py_ssize_t m = 0; m < M; m++)
                for (int t = 0; t < T; t++) {
                    /* the category's predictions of rank < maxDet, by score: running tp / fp counts (an
                     * ignored prediction is a column that counts as neither) */
                    Py_ssize_t nd = 0;
                    double tp = 0, fp = 0;
                    for (Py_ssize_t i = cs[k]; i < cs[k + 1]; i++) {
                        int64_t d = order[i];
                        if (rank[d] >= max_dets[m]) continue;
                        Py_ssize_t f = (d * A + a) * T + t;
                        if (!dtig[f]) {
                            if (dtm[f])
                                tp += 1;
                            else
                                fp += 1;
                        }
                        rc[nd] = tp / (double)n_gt;
                        pr[nd] = tp / (fp + tp + eps);
                        nd++;
                    }
                    recall[((t * K + k) * A + a) * M + m] = nd ? rc[nd - 1] : 0.0;
                    for (Py_ssize_t i = nd - 1; i > 0; i--) /* monotone envelope from the right */
                        if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
                    /* q[r] = pr[searchsorted(rc, rec_thrs[r], side="left")], 0 past the last column */
                    Py_ssize_t i = 0;
                    for (Py_ssize_t r = 0; r < R; r++) {
                        while (i < nd && rc[i] < rec_thrs[r]) i++;
                        precision[(((t * R + r) * K + k) * A + a) * M + m] = i < nd ? pr[i] : 0.0;
                    }
                }
        }
    Py_END_ALLOW_THREADS
    res = Py_BuildValue("(OO)", prec, rec);
end:
    Py_XDECREF(prec);
    Py_XDECREF(rec);
    PyMem_RawFree(scratch);
    PyBuffer_Release(&b_dtm);
    PyBuffer_Release(&b_dtig);
    PyBuffer_Release(&b_order);
    PyBuffer_Release(&b_cs);
    PyBuffer_Release(&b_rank);
    PyBuffer_Release(&b_npig);
    PyBuffer_Release(&b_md);
    PyBuffer_Release(&b_rt);
    return res;
}

static PyMethodDef methods[] = {
    {"scan", rle_scan, METH_VARARGS,
     "scan(strings, totals) -> (codes int8, areas int64, first int64, end int64) as bytes"},
    {"intersect", rle_intersect, METH_VARARGS, "intersect(a_strings, b_strings, ia, ib, limit) -> int64 bytes"},
    {"parse_results", rle_parse_results, METH_O, "parse_results(data: bytes) -> None | tuple (see the module source)"},
    {"parse_gt", rle_parse_gt, METH_O, "parse_gt(data: buffer) -> None | dict (see the module source)"},
    {"accumulate", rle_accumulate, METH_VARARGS,
     "accumulate(dtm, dtig, order, cat_start, rank, npig, max_dets, rec_thrs, n_ranges, n_thrs) -> (precision, recall)"},
    {"match", rle_match, METH_VARARGS,
     "match(iou, det_start, gt_start, gt_ignored, crowd, gt_id_nonzero, thresholds, n_ranges) -> (dtm, dtig, gtm)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rle", "Compressed COCO RLE kernels for the visrepro evaluator.", -1, methods,
};

PyMODINIT_FUNC PyInit__rle(void) { return PyModule_Create(&module); }
