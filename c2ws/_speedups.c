/* The compiled twins of four pure-Python functions of c2ws/speedups.py, for the
 * socket thread's per-message work on a burst of frames.  Each does exactly what its
 * twin does (tests/test_speedups.py runs both on arbitrary input); c2ws works the same
 * without this module, only slower (it is built when a C compiler is at hand).
 *
 *   text_burst(chunk, position)   the plain text frames at chunk[position:]
 *   text_kind(frames)             ASCII? line breaks?  (0, 1 or 2)
 *   any_contains(frames, needle)  does some frame hold needle?
 *   ndjson_burst(chunk, position, marker)  the plain text frames there, as NDJSON
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define C2WS_SSE2 1
#endif

/* FIN set, no RSV bits, opcode 1 (text): the first byte of an unfragmented text frame. */
#define FIN_TEXT 0x81

static PyObject *
text_burst(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "text_burst(chunk: bytes, position: int)");
        return NULL;
    }
    Py_ssize_t position = PyLong_AsSsize_t(args[1]);
    if (position == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *chunk = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    if (position < 0) {
        position = 0 > end + position ? 0 : end + position;  /* as a slice would */
    }
    PyObject *frames = PyList_New(0);
    if (frames == NULL) {
        return NULL;
    }
    while (position + 2 <= end && chunk[position] == FIN_TEXT) {
        Py_ssize_t length = chunk[position + 1];
        Py_ssize_t start;
        if (length < 126) {
            start = position + 2;
        }
        else if (length == 126 && position + 4 <= end) {
            length = ((Py_ssize_t)chunk[position + 2] << 8) | chunk[position + 3];
            start = position + 4;
        }
        else {  /* masked, a 64-bit length, or a split header */
            break;
        }
        Py_ssize_t stop = start + length;
        if (stop > end) {
            break;
        }
        PyObject *frame = PyBytes_FromStringAndSize((const char *)chunk + start, length);
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            Py_DECREF(frames);
            return NULL;
        }
        Py_DECREF(frame);
        position = stop;
    }
    PyObject *at = PyLong_FromSsize_t(position);
    if (at == NULL) {
        Py_DECREF(frames);
        return NULL;
    }
    return Py_BuildValue("(NN)", frames, at);
}

/* Bytes of x equal to the byte repeated in `ones_times`: the high bit of each such byte
 * set (the classic "has zero byte" test on x ^ pattern; exact, no false positives when
 * only used as "any"). */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HAS_ZERO(x) (((x) - ONES) & ~(x) & HIGHS)

static PyObject *
text_kind(PyObject *module, PyObject *frames)
{
    if (!PyList_CheckExact(frames)) {
        PyErr_SetString(PyExc_TypeError, "text_kind(frames: list[bytes])");
        return NULL;
    }
    const uint64_t lf = ONES * '\n', cr = ONES * '\r';
    int breaks = 0;
    Py_ssize_t count = PyList_GET_SIZE(frames);
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *frame = PyList_GET_ITEM(frames, index);
        if (!PyBytes_CheckExact(frame)) {
            return PyLong_FromLong(0);
        }
        const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(frame);
        Py_ssize_t size = PyBytes_GET_SIZE(frame), at = 0;
        uint64_t high = 0, found = 0;
        for (; at + 8 <= size; at += 8) {
            uint64_t word;
            memcpy(&word, data + at, 8);
            high |= word;
            found |= HAS_ZERO(word ^ lf) | HAS_ZERO(word ^ cr);
        }
        for (; at < size; at++) {
            high |= data[at];
            found |= (data[at] == '\n') | (data[at] == '\r');
        }
        if (high & HIGHS) {
            return PyLong_FromLong(0);
        }
        /* HAS_ZERO is exact for ASCII words: a set high bit marks a byte that matched. */
        breaks |= found != 0;
    }
    return PyLong_FromLong(breaks ? 1 : 2);
}

#ifdef _WIN32
/* No memmem: the first byte by memchr, then the rest compared. */
static const void *
memmem(const void *haystack, size_t size, const void *needle, size_t needle_size)
{
    const char *at = haystack, *end = (const char *)haystack + size - needle_size + 1;
    const char first = *(const char *)needle;
    while (at < end && (at = memchr(at, first, (size_t)(end - at))) != NULL) {
        if (memcmp(at, needle, needle_size) == 0) {
            return at;
        }
        at++;
    }
    return NULL;
}
#endif

/* Whether haystack[0:size] holds needle[0:needle_size] (memmem's answer).  With SSE2:
 * the positions where both the needle's first and last bytes match, 16 at a time, then
 * the bytes between compared (a needle's rare pair of ends makes few candidates). */
static int
contains(const unsigned char *haystack, Py_ssize_t size, const unsigned char *needle,
         Py_ssize_t needle_size)
{
    if (needle_size == 0) {
        return 1;
    }
    if (size < needle_size) {
        return 0;
    }
    if (needle_size == 1) {
        return memchr(haystack, needle[0], (size_t)size) != NULL;
    }
#ifdef C2WS_SSE2
    const __m128i first = _mm_set1_epi8((char)needle[0]);
    const __m128i last = _mm_set1_epi8((char)needle[needle_size - 1]);
    Py_ssize_t at = 0;
    for (; at + 16 + needle_size - 1 <= size; at += 16) {
        __m128i starts = _mm_loadu_si128((const __m128i *)(haystack + at));
        __m128i ends = _mm_loadu_si128((const __m128i *)(haystack + at + needle_size - 1));
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_and_si128(_mm_cmpeq_epi8(starts, first), _mm_cmpeq_epi8(ends, last)));
        while (mask) {
            int bit = __builtin_ctz(mask);
            if (memcmp(haystack + at + bit + 1, needle + 1, (size_t)(needle_size - 2)) == 0) {
                return 1;
            }
            mask &= mask - 1;
        }
    }
    for (; at + needle_size <= size; at++) {
        if (haystack[at] == needle[0] &&
            memcmp(haystack + at + 1, needle + 1, (size_t)(needle_size - 1)) == 0) {
            return 1;
        }
    }
    return 0;
#else
    return memmem(haystack, (size_t)size, needle, (size_t)needle_size) != NULL;
#endif
}

static PyObject *
any_contains(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "any_contains(frames: list[bytes], needle: bytes)");
        return NULL;
    }
    PyObject *frames = args[0];
    const unsigned char *needle = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t needle_size = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t count = PyList_GET_SIZE(frames);
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *frame = PyList_GET_ITEM(frames, index);
        if (!PyBytes_CheckExact(frame)) {
            PyErr_SetString(PyExc_TypeError, "any_contains: frames must be bytes");
            return NULL;
        }
        if (contains((const unsigned char *)PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame),
                     needle, needle_size)) {
            Py_RETURN_TRUE;
        }
    }
    Py_RETURN_FALSE;
}

/* Whether frame payload `data` is plain: starts with '{', ends with '}', ASCII, no CR or
 * LF, no `marker` (when marker_size > 0); copied to `out` meanwhile. */
static int
copy_if_plain(const unsigned char *data, Py_ssize_t size, unsigned char *out,
              const unsigned char *marker, Py_ssize_t marker_size)
{
    if (size < 2 || data[0] != '{' || data[size - 1] != '}') {
        return 0;
    }
    const uint64_t lf = ONES * '\n', cr = ONES * '\r';
    uint64_t high = 0, found = 0;
    Py_ssize_t at = 0;
#ifdef C2WS_SSE2
    /* A byte's high bit: set when it is not ASCII, and in a CR or LF's comparison. */
    const __m128i lf16 = _mm_set1_epi8('\n'), cr16 = _mm_set1_epi8('\r');
    __m128i bad = _mm_setzero_si128();
    for (; at + 16 <= size; at += 16) {
        __m128i block = _mm_loadu_si128((const __m128i *)(data + at));
        _mm_storeu_si128((__m128i *)(out + at), block);
        bad = _mm_or_si128(bad, _mm_or_si128(block, _mm_or_si128(
            _mm_cmpeq_epi8(block, lf16), _mm_cmpeq_epi8(block, cr16))));
    }
    if (_mm_movemask_epi8(bad)) {
        return 0;
    }
#endif
    for (; at + 8 <= size; at += 8) {
        uint64_t word;
        memcpy(&word, data + at, 8);
        memcpy(out + at, &word, 8);
        high |= word;
        found |= HAS_ZERO(word ^ lf) | HAS_ZERO(word ^ cr);
    }
    for (; at < size; at++) {
        out[at] = data[at];
        high |= data[at];
        found |= (data[at] == '\n') | (data[at] == '\r');
    }
    if ((high & HIGHS) || found) {
        return 0;
    }
    return marker_size == 0 || !contains(data, size, marker, marker_size);
}

static PyObject *
ndjson_burst(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_CheckExact(args[0]) ||
        !(args[2] == Py_None || PyBytes_CheckExact(args[2]))) {
        PyErr_SetString(PyExc_TypeError,
                        "ndjson_burst(chunk: bytes, position: int, marker: bytes | None)");
        return NULL;
    }
    Py_ssize_t position = PyLong_AsSsize_t(args[1]);
    if (position == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *chunk = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    if (position < 0) {
        position = 0 > end + position ? 0 : end + position;
    }
    const unsigned char *marker =
        args[2] == Py_None ? NULL : (const unsigned char *)PyBytes_AS_STRING(args[2]);
    Py_ssize_t marker_size = args[2] == Py_None ? 0 : PyBytes_GET_SIZE(args[2]);
    /* Each frame's header is 2 bytes or more, its newline 1: the lines fit in this. */
    PyObject *lines = PyBytes_FromStringAndSize(NULL, end > position ? end - position : 0);
    if (lines == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(lines);
    Py_ssize_t written = 0, count = 0;
    while (position + 2 <= end && chunk[position] == FIN_TEXT) {
        Py_ssize_t length = chunk[position + 1];
        Py_ssize_t start;
        if (length < 126) {
            start = position + 2;
        }
        else if (length == 126 && position + 4 <= end) {
            length = ((Py_ssize_t)chunk[position + 2] << 8) | chunk[position + 3];
            start = position + 4;
        }
        else {
            break;
        }
        Py_ssize_t stop = start + length;
        if (stop > end || !copy_if_plain(chunk + start, length, out + written, marker,
                                         marker_size)) {
            break;
        }
        written += length;
        out[written++] = '\n';
        count++;
        position = stop;
    }
    if (_PyBytes_Resize(&lines, written) < 0) {
        return NULL;
    }
    return Py_BuildValue("(Nnn)", lines, count, position);
}

static PyMethodDef methods[] = {
    {"ndjson_burst", (PyCFunction)(void (*)(void))ndjson_burst, METH_FASTCALL,
     "ndjson_burst(chunk, position, marker) -> (lines, count, position): see c2ws.speedups."},
    {"text_burst", (PyCFunction)(void (*)(void))text_burst, METH_FASTCALL,
     "text_burst(chunk, position) -> (frames, position): see c2ws.speedups."},
    {"text_kind", (PyCFunction)text_kind, METH_O,
     "text_kind(frames) -> 0, 1 or 2: see c2ws.speedups."},
    {"any_contains", (PyCFunction)(void (*)(void))any_contains, METH_FASTCALL,
     "any_contains(frames, needle) -> bool: see c2ws.speedups."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "c2ws._speedups",
    "Compiled twins of c2ws.speedups (see there).", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
