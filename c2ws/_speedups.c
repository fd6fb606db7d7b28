/* The compiled twins of seven pure-Python functions of c2ws/speedups.py, for the
 * socket thread's per-message work on a burst of frames.  Each does exactly what its
 * twin does (tests/test_speedups.py runs both on arbitrary input); c2ws works the same
 * without this module, only slower (it is built when a C compiler is at hand).
 *
 *   text_burst(chunk, position)   the plain text frames at chunk[position:]
 *   text_kind(frames)             ASCII? line breaks?  (0, 1 or 2)
 *   any_contains(frames, needle)  does some frame hold needle?
 *   ndjson_burst(chunk, position, marker)  the plain text frames there, as NDJSON
 *   run_summary(ndjson, count)    those lines' headers, when they are a run
 *   nats_acks(chunk, position, prefix)  the NATS sink's acks there
 *   signal_csv(ndjson, columns, ...)  the CSV/TSV lines of a run's signals, else
 *                                 each line's row values, or its index
 *   replace_file(dir_fd, temp, name, data)  the --state file's durable rewrite, in one
 *                                 release of the GIL (the only one with I/O)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__SSE2__) && defined(__GNUC__)
#include <emmintrin.h>
#define C2WS_SSE2 1
#endif

/* FIN set, no RSV bits, opcode 1 (text): the first byte of an unfragmented text frame. */
#define FIN_TEXT 0x81

/* A start position given as arg into `end` bytes: a negative one counts from the end, as
 * a slice would.  -1 with an exception set when arg is not an int that fits. */
static int
start_position(PyObject *arg, Py_ssize_t end, Py_ssize_t *position)
{
    Py_ssize_t value = PyLong_AsSsize_t(arg);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < 0) {
        value = 0 > end + value ? 0 : end + value;
    }
    *position = value;
    return 0;
}

static PyObject *
text_burst(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "text_burst(chunk: bytes, position: int)");
        return NULL;
    }
    const unsigned char *chunk = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t position;
    if (start_position(args[1], end, &position) < 0) {
        return NULL;
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
    const unsigned char *chunk = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    Py_ssize_t end = PyBytes_GET_SIZE(args[0]);
    Py_ssize_t position;
    if (start_position(args[1], end, &position) < 0) {
        return NULL;
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

/* --- run_summary: the headers of a burst's lines, without msgspec ------------------------
 *
 * A strict JSON scanner for one line: RFC 8259's grammar, and stricter where that is
 * simpler (it may always give up: the caller then reads the lines with msgspec, which
 * has the last word).  It must never accept a line msgspec would refuse, nor read a
 * header field differently: tests/test_speedups.py holds it to msgspec.  It gives up on
 * a key with an escape where the key matters (the top level, the payload's), a header
 * field twice, a header value of an unusual type or an integer of over 18 digits, a
 * \u escape of a surrogate, nesting deeper than MAX_DEPTH, whitespace other than space
 * and tab, and any byte that is not ASCII. */

#define MAX_DEPTH 64
#define GIVE_UP NULL

typedef struct {
    const unsigned char *msg_type;   /* the value's characters (no escapes), or NULL */
    Py_ssize_t msg_type_size;
    const unsigned char *timestamp;  /* NULL: absent or null */
    Py_ssize_t timestamp_size;
    long long seq_id, strategy_id;
    int has_seq_id, has_strategy_id;
    unsigned seen;                   /* header fields met, one bit each */
} Head;

enum { SEEN_MSG_TYPE = 1, SEEN_PAYLOAD = 2, SEEN_SEQ_ID = 4, SEEN_ID = 8, SEEN_REQUEST_ID = 16,
       SEEN_TIMESTAMP = 32, SEEN_V = 64, SEEN_STRATEGY_ID = 128 };

static const unsigned char *
skip_space(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    return p;
}

static int
is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* After the opening quote: the position after the closing one; *escaped says whether
 * the string held an escape. */
static const unsigned char *
scan_string(const unsigned char *p, const unsigned char *end, int *escaped)
{
    *escaped = 0;
    for (;;) {
#ifdef C2WS_SSE2
        const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
        const __m128i space = _mm_set1_epi8(0x20);
        while (p + 16 <= end) {
            __m128i block = _mm_loadu_si128((const __m128i *)p);
            /* signed: bytes >= 0x80 are negative, so "below a space" flags them too */
            unsigned mask = (unsigned)_mm_movemask_epi8(_mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(block, quote), _mm_cmpeq_epi8(block, backslash)),
                _mm_cmplt_epi8(block, space)));
            if (mask) {
                p += __builtin_ctz(mask);
                break;
            }
            p += 16;
        }
#endif
        while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80) {
            p++;
        }
        if (p >= end || *p < 0x20 || *p >= 0x80) {
            return GIVE_UP;
        }
        if (*p == '"') {
            return p + 1;
        }
        /* an escape */
        *escaped = 1;
        if (p + 1 >= end) {
            return GIVE_UP;
        }
        unsigned char c = p[1];
        if (c == 'u') {
            if (p + 6 > end || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5])) {
                return GIVE_UP;
            }
            unsigned char high = (unsigned char)(p[2] | 0x20);  /* lowercase hex letter */
            if (high == 'd' && ((p[3] | 0x20) >= '8' && (p[3] | 0x20) <= 'f') &&
                !(p[3] >= '0' && p[3] <= '7')) {
                return GIVE_UP;  /* a surrogate: pairs left to msgspec */
            }
            p += 6;
        }
        else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                 c == 'r' || c == 't') {
            p += 2;
        }
        else {
            return GIVE_UP;
        }
    }
}

/* Set by scan_number on a number orjson might not hold (more than 18 digits before the
 * point, or an exponent of three digits or more: one beyond a double's range is refused
 * by orjson, which the general path of signal_csv decodes with); reset and read by
 * scan_line alone, per thread. */
static _Thread_local int big_number;  /* scanned without the GIL */

/* A JSON number; *integer gets its value when it is an integer of at most 18 digits
 * (*is_integer 1), else *is_integer is 0. */
static const unsigned char *
scan_number(const unsigned char *p, const unsigned char *end, long long *integer, int *is_integer)
{
    int negative = 0, digits = 0, fraction = 0;
    long long value = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9') {
        return GIVE_UP;
    }
    if (*p == '0') {
        p++;
        digits = 1;
        if (p < end && *p >= '0' && *p <= '9') {
            return GIVE_UP;  /* a leading zero */
        }
    }
    else {
        while (p < end && *p >= '0' && *p <= '9') {
            if (digits < 18) {
                value = value * 10 + (*p - '0');
            }
            digits++;
            p++;
        }
    }
    if (p < end && *p == '.') {
        fraction = 1;
        p++;
        if (p >= end || *p < '0' || *p > '9') {
            return GIVE_UP;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        fraction = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || *p < '0' || *p > '9') {
            return GIVE_UP;
        }
        const unsigned char *exponent = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p - exponent > 2) {
            big_number = 1;
        }
    }
    if (digits > 18) {
        big_number = 1;
    }
    *is_integer = !fraction && digits <= 18;
    *integer = negative ? -value : value;
    return p;
}

static const unsigned char *scan_value(const unsigned char *p, const unsigned char *end, int depth);

/* After '{' (level: 0 the envelope, 1 the payload, -1 any other object). */
/* An object member's key at p (its opening quote): *key and *key_size, the text between
 * the quotes, *escaped when it holds an escape; returns where the member's value starts
 * (after the ':' and any space), GIVE_UP when p holds no key and colon. */
static const unsigned char *
scan_key(const unsigned char *p, const unsigned char *end, const unsigned char **key,
         Py_ssize_t *key_size, int *escaped)
{
    if (p >= end || *p != '"') {
        return GIVE_UP;
    }
    *key = p + 1;
    p = scan_string(p + 1, end, escaped);
    if (p == GIVE_UP) {
        return GIVE_UP;
    }
    *key_size = p - 1 - *key;
    p = skip_space(p, end);
    if (p >= end || *p != ':') {
        return GIVE_UP;
    }
    return skip_space(p + 1, end);
}

/* After a member's value (p; GIVE_UP passes through): where the next member's key
 * starts (after a ','), or, with *closed set, the position after the object's '}';
 * GIVE_UP when neither follows. */
static const unsigned char *
next_member(const unsigned char *p, const unsigned char *end, int *closed)
{
    *closed = 0;
    if (p == GIVE_UP) {
        return GIVE_UP;
    }
    p = skip_space(p, end);
    if (p < end && *p == ',') {
        return skip_space(p + 1, end);
    }
    if (p < end && *p == '}') {
        *closed = 1;
        return p + 1;
    }
    return GIVE_UP;
}

static const unsigned char *
scan_object(const unsigned char *p, const unsigned char *end, int depth, int level, Head *head)
{
    if (depth > MAX_DEPTH) {
        return GIVE_UP;
    }
    p = skip_space(p, end);
    if (p < end && *p == '}') {
        return p + 1;
    }
    for (;;) {
        const unsigned char *key;
        Py_ssize_t key_size;
        int escaped, closed;
        p = scan_key(p, end, &key, &key_size, &escaped);
        if (p == GIVE_UP || (escaped && level >= 0) || p >= end) {
            return GIVE_UP;
        }
        unsigned field = 0;
#define KEY_IS(text) (key_size == (Py_ssize_t)sizeof(text) - 1 && memcmp(key, text, key_size) == 0)
        if (level == 0) {
            field = KEY_IS("msg_type") ? SEEN_MSG_TYPE : KEY_IS("payload") ? SEEN_PAYLOAD
                    : KEY_IS("seq_id") ? SEEN_SEQ_ID : KEY_IS("id") ? SEEN_ID
                    : KEY_IS("request_id") ? SEEN_REQUEST_ID
                    : KEY_IS("timestamp") ? SEEN_TIMESTAMP : KEY_IS("v") ? SEEN_V : 0;
        }
        else if (level == 1 && KEY_IS("StrategyId")) {
            field = SEEN_STRATEGY_ID;
        }
#undef KEY_IS
        if (field) {
            if (head->seen & field) {
                return GIVE_UP;  /* twice: which one counts is msgspec's to say */
            }
            head->seen |= field;
        }
        if (field == SEEN_PAYLOAD) {
            if (*p != '{') {
                return GIVE_UP;  /* null, or not an object */
            }
            p = scan_object(p + 1, end, depth + 1, 1, head);
        }
        else if (field == SEEN_MSG_TYPE || field == SEEN_ID || field == SEEN_REQUEST_ID ||
                 field == SEEN_TIMESTAMP) {
            if (*p == 'n') {
                if (field == SEEN_MSG_TYPE || end - p < 4 || memcmp(p, "null", 4) != 0) {
                    return GIVE_UP;
                }
                p += 4;
            }
            else if (*p == '"') {
                const unsigned char *text = p + 1;
                p = scan_string(p + 1, end, &escaped);
                if (p == GIVE_UP || escaped) {
                    return GIVE_UP;
                }
                if (field == SEEN_MSG_TYPE) {
                    if (p - 1 == text) {
                        return GIVE_UP;  /* empty */
                    }
                    head->msg_type = text;
                    head->msg_type_size = p - 1 - text;
                }
                else if (field == SEEN_TIMESTAMP) {
                    head->timestamp = text;
                    head->timestamp_size = p - 1 - text;
                }
            }
            else {
                return GIVE_UP;
            }
        }
        else if (field == SEEN_SEQ_ID || field == SEEN_STRATEGY_ID || field == SEEN_V) {
            if (*p == '"' && field == SEEN_V) {
                p = scan_string(p + 1, end, &escaped);
            }
            else if (*p == '-' || (*p >= '0' && *p <= '9')) {
                long long value;
                int is_integer;
                p = scan_number(p, end, &value, &is_integer);
                if (p != GIVE_UP && !is_integer) {
                    return GIVE_UP;
                }
                if (field == SEEN_SEQ_ID) {
                    head->seq_id = value;
                    head->has_seq_id = 1;
                }
                else if (field == SEEN_STRATEGY_ID) {
                    head->strategy_id = value;
                    head->has_strategy_id = 1;
                }
            }
            else {
                return GIVE_UP;  /* null (no run without them), or another type */
            }
        }
        else {
            p = scan_value(p, end, depth + 1);
        }
        p = next_member(p, end, &closed);
        if (p == GIVE_UP || closed) {
            return p;
        }
    }
}

static const unsigned char *
scan_array(const unsigned char *p, const unsigned char *end, int depth)
{
    if (depth > MAX_DEPTH) {
        return GIVE_UP;
    }
    p = skip_space(p, end);
    if (p < end && *p == ']') {
        return p + 1;
    }
    for (;;) {
        p = scan_value(p, end, depth + 1);
        if (p == GIVE_UP) {
            return GIVE_UP;
        }
        p = skip_space(p, end);
        if (p < end && *p == ',') {
            p = skip_space(p + 1, end);
            continue;
        }
        if (p < end && *p == ']') {
            return p + 1;
        }
        return GIVE_UP;
    }
}

static const unsigned char *
scan_value(const unsigned char *p, const unsigned char *end, int depth)
{
    if (p >= end) {
        return GIVE_UP;
    }
    int escaped;
    long long value;
    int is_integer;
    switch (*p) {
    case '"':
        return scan_string(p + 1, end, &escaped);
    case '{':
        return scan_object(p + 1, end, depth, -1, NULL);
    case '[':
        return scan_array(p + 1, end, depth);
    case 't':
        return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : GIVE_UP;
    case 'f':
        return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : GIVE_UP;
    case 'n':
        return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : GIVE_UP;
    default:
        return scan_number(p, end, &value, &is_integer);
    }
}

/* run_summary(ndjson, count) -> (msg_type, strategy_id, first_seq_id, last_timestamp),
 * False (the lines are not a run) or None (given up): see c2ws.speedups. */
static PyObject *
run_summary(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "run_summary(ndjson: bytes, count: int)");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[1]);
    if (count == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *end = p + PyBytes_GET_SIZE(args[0]);
    Head first = {0}, head = {0};
    Py_ssize_t lines = 0;
    while (p < end) {
        const unsigned char *line_end = memchr(p, '\n', (size_t)(end - p));
        if (line_end == NULL) {
            Py_RETURN_NONE;  /* every line ends with its newline */
        }
        memset(&head, 0, sizeof head);
        if (*p != '{') {
            Py_RETURN_NONE;
        }
        const unsigned char *after = scan_object(p + 1, line_end, 1, 0, &head);
        if (after != line_end) {
            Py_RETURN_NONE;  /* not one object filling the line, or given up */
        }
        if (head.msg_type == NULL || !head.has_seq_id || !head.has_strategy_id) {
            Py_RETURN_FALSE;  /* not a stream message (or msgspec refuses it) */
        }
        if (lines == 0) {
            first = head;
        }
        else if (head.msg_type_size != first.msg_type_size ||
                 memcmp(head.msg_type, first.msg_type, (size_t)head.msg_type_size) != 0 ||
                 head.strategy_id != first.strategy_id || head.seq_id != first.seq_id + lines) {
            Py_RETURN_FALSE;  /* not the next message of the same stream */
        }
        lines++;
        p = line_end + 1;
    }
    if (lines != count || lines == 0) {
        Py_RETURN_NONE;  /* not as told: left to msgspec */
    }
    PyObject *timestamp;
    if (head.timestamp == NULL) {
        timestamp = Py_NewRef(Py_None);
    }
    else {
        timestamp = PyUnicode_FromStringAndSize((const char *)head.timestamp, head.timestamp_size);
        if (timestamp == NULL) {
            return NULL;
        }
    }
    return Py_BuildValue("(s#LLN)", (const char *)first.msg_type, first.msg_type_size,
                         first.strategy_id, first.seq_id, timestamp);
}

/* --- a signal's row values, read straight from its line (for signal_csv) ------------ */

/* The payload fields a CSV/TSV signal row reads (c2ws.render.planned's lookups), by
 * their normalised names (lowercase, no '_' or '-'), in lookup order, each a slot (see
 * slot_of): strategyid 0, strategyname 1, side 2, openclose 3, orderquantity 4,
 * quantity 5, qty 6, ordertype 7, type 8, limit 9, limitprice 10, stop 11, stopprice 12,
 * tif 13, timeinforce 14, orderstatus 15, status 16, signalid 17, orderid 18; then the
 * symbol's containers: c2symbol 19, symbol 20, exchangesymbol 21. */
#define SIGNAL_SLOTS 22
#define FIRST_CONTAINER 19
#define LONGEST_NAME 14
/* The 11 lookups: [first slot, number of slots]. */
static const int LOOKUPS[11][2] = {
    {0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 3}, {7, 2}, {9, 2}, {11, 2}, {13, 2}, {15, 2}, {17, 2},
};

typedef struct {
    const unsigned char *start;      /* NULL: the key is absent */
    const unsigned char *end;
    int nested;                      /* a container holding an object: its inner value */
    const unsigned char *inner, *inner_end;  /* NULL: no non-null inner value */
} Slot;

/* The slot of a key (after its opening quote, size bytes, no escape), or -1. */
static int
slot_of(const unsigned char *key, Py_ssize_t size, int inner)
{
    /* Most keys name no slot, and their first letter says so: the names start with c,
     * e, l, o, q, s or t (f or s in a symbol object), either case ('C' | 0x20 is 'c',
     * and no other byte is). */
    Py_ssize_t first = 0;
    while (first < size && (key[first] == '_' || key[first] == '-')) {
        first++;
    }
    if (first == size) {
        return -1;
    }
    switch (key[first] | 0x20) {
    case 'c': case 'e': case 'l': case 'o': case 'q': case 't':
        if (inner) {
            return -1;
        }
        break;
    case 'f':
        if (!inner) {
            return -1;
        }
        break;
    case 's':
        break;
    default:
        return -1;
    }
    char name[LONGEST_NAME];
    int length = 0, separators = 1;
    if (size - first <= LONGEST_NAME) {  /* usually no '_' or '-': copied, then checked */
        separators = 0;
        for (Py_ssize_t i = first; i < size; i++) {
            unsigned char c = key[i];
            separators |= (c == '_') | (c == '-');
            name[length++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
    }
    if (separators) {
        length = 0;
        for (Py_ssize_t i = first; i < size; i++) {
            unsigned char c = key[i];
            if (c == '_' || c == '-') {
                continue;
            }
            if (length == LONGEST_NAME) {
                return -1;
            }
            name[length++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
    }
#define IS(text) (length == (int)sizeof(text) - 1 && memcmp(name, text, sizeof(text) - 1) == 0)
    if (inner) {  /* inside a symbol object: fullsymbol (0), then symbol (1) */
        return IS("fullsymbol") ? 0 : IS("symbol") ? 1 : -1;
    }
    /* SIGNAL_NAMES, by first letter */
    switch (length ? name[0] : 0) {
    case 'c':
        return IS("c2symbol") ? 19 : -1;
    case 'e':
        return IS("exchangesymbol") ? 21 : -1;
    case 'l':
        return IS("limit") ? 9 : IS("limitprice") ? 10 : -1;
    case 'o':
        return IS("openclose") ? 3 : IS("orderquantity") ? 4 : IS("ordertype") ? 7
               : IS("orderstatus") ? 15 : IS("orderid") ? 18 : -1;
    case 'q':
        return IS("quantity") ? 5 : IS("qty") ? 6 : -1;
    case 's':
        return IS("strategyid") ? 0 : IS("strategyname") ? 1 : IS("side") ? 2 : IS("stop") ? 11
               : IS("stopprice") ? 12 : IS("status") ? 16 : IS("signalid") ? 17
               : IS("symbol") ? 20 : -1;
    case 't':
        return IS("type") ? 8 : IS("tif") ? 13 : IS("timeinforce") ? 14 : -1;
    default:
        return -1;
    }
#undef IS
}

/* A scalar at p: a string without escapes, a number, true, false or null; the position
 * after it, or GIVE_UP (an object, an array, anything else). */
static const unsigned char *
scan_scalar(const unsigned char *p, const unsigned char *end)
{
    if (p >= end || *p == '{' || *p == '[') {
        return GIVE_UP;
    }
    if (*p == '"') {
        int escaped;
        p = scan_string(p + 1, end, &escaped);
        return escaped ? GIVE_UP : p;
    }
    return scan_value(p, end, 1);
}

static int
is_null(const unsigned char *start, const unsigned char *end)
{
    return end - start == 4 && memcmp(start, "null", 4) == 0;
}

/* After a symbol object's '{': its inner value (FullSymbol, else Symbol: the first
 * non-null) in slot; GIVE_UP on an escaped key or a name met twice. */
static const unsigned char *
scan_symbol_object(const unsigned char *p, const unsigned char *end, Slot *slot)
{
    const unsigned char *found[2][2] = {{NULL, NULL}, {NULL, NULL}};
    p = skip_space(p, end);
    if (p < end && *p == '}') {
        p++;
    }
    else {
        for (;;) {
            const unsigned char *key;
            Py_ssize_t key_size;
            int escaped, closed;
            p = scan_key(p, end, &key, &key_size, &escaped);
            if (p == GIVE_UP || escaped) {
                return GIVE_UP;
            }
            int which = slot_of(key, key_size, 1);
            const unsigned char *value = p;
            p = scan_value(p, end, 2);
            if (p == GIVE_UP) {
                return GIVE_UP;
            }
            if (which >= 0) {
                if (found[which][0] != NULL) {
                    return GIVE_UP;
                }
                found[which][0] = value;
                found[which][1] = p;
            }
            p = next_member(p, end, &closed);
            if (p == GIVE_UP) {
                return GIVE_UP;
            }
            if (closed) {
                break;
            }
        }
    }
    slot->nested = 1;
    for (int which = 0; which < 2; which++) {
        if (found[which][0] != NULL && !is_null(found[which][0], found[which][1])) {
            slot->inner = found[which][0];
            slot->inner_end = found[which][1];
            break;
        }
    }
    return p;
}

/* After the payload's '{': its slots filled; GIVE_UP on anything unusual. */
static const unsigned char *
scan_signal_payload(const unsigned char *p, const unsigned char *end, Slot *slots)
{
    p = skip_space(p, end);
    if (p < end && *p == '}') {
        return p + 1;
    }
    for (;;) {
        const unsigned char *key;
        Py_ssize_t key_size;
        int escaped, closed;
        p = scan_key(p, end, &key, &key_size, &escaped);
        if (p == GIVE_UP || escaped) {
            return GIVE_UP;
        }
        int slot = slot_of(key, key_size, 0);
        const unsigned char *value = p;
        if (slot < 0) {
            p = scan_value(p, end, 2);
        }
        else {
            if (slots[slot].start != NULL) {
                return GIVE_UP;  /* a name met twice: which one counts is the decoder's */
            }
            if (slot >= FIRST_CONTAINER && p < end && *p == '{') {
                p = scan_symbol_object(p + 1, end, &slots[slot]);
            }
            else if (slot >= FIRST_CONTAINER && p < end && *p == '[') {
                p = scan_value(p, end, 2);
                slots[slot].nested = 1;  /* a list: no symbol (inner NULL) */
            }
            else {
                p = scan_scalar(p, end);
            }
            slots[slot].start = value;
            slots[slot].end = p;
        }
        p = next_member(p, end, &closed);
        if (p == GIVE_UP || closed) {
            return p;
        }
    }
}

/* The short strings signal_csv made last, by a hash of their text: the codes, names,
 * symbols and timestamps of a feed repeat, and a string given again is no new object and
 * keeps its hash (the row's memos look them up).  Bounded: one string per entry, of at
 * most STRING_CACHE_CHARS characters; ASCII (scan_line reads no other). */
#define STRING_CACHE_SIZE 512
#define STRING_CACHE_CHARS 40
static PyObject *string_cache[STRING_CACHE_SIZE];

static PyObject *
ascii_string(const unsigned char *text, Py_ssize_t size)
{
    if (size > STRING_CACHE_CHARS) {
        return PyUnicode_DecodeASCII((const char *)text, size, NULL);
    }
    uint32_t hash = 2166136261u;  /* FNV-1a */
    for (Py_ssize_t i = 0; i < size; i++) {
        hash = (hash ^ text[i]) * 16777619u;
    }
    PyObject **entry = &string_cache[hash % STRING_CACHE_SIZE];
    PyObject *cached = *entry;
    if (cached != NULL && PyUnicode_GET_LENGTH(cached) == size &&
        memcmp(PyUnicode_DATA(cached), text, (size_t)size) == 0) {
        return Py_NewRef(cached);
    }
    PyObject *made = PyUnicode_DecodeASCII((const char *)text, size, NULL);
    if (made != NULL) {
        Py_XSETREF(*entry, Py_NewRef(made));
    }
    return made;
}

/* A scalar scanned already (a string without escapes, a number, true, false, null), as
 * read_scalar reads it, without its Python object. */
enum { SCALAR_FAIL, SCALAR_NULL, SCALAR_STRING, SCALAR_INT, SCALAR_FLOAT, SCALAR_TRUE,
       SCALAR_FALSE };

typedef struct {
    int type;
    const unsigned char *text;   /* SCALAR_STRING: its characters (between the quotes) */
    Py_ssize_t size;
    long long integer;           /* SCALAR_INT */
    double number;               /* SCALAR_FLOAT */
} Scalar;

/* The scalar at start (to end) in *scalar, and its type: SCALAR_FAIL when it is not one
 * this reads (an integer of more than 18 digits, a number beyond a double's range). */
static int
read_scalar(const unsigned char *start, const unsigned char *end, Scalar *scalar)
{
    Py_ssize_t size = end - start;
    switch (*start) {
    case '"':
        scalar->text = start + 1;
        scalar->size = size - 2;
        return scalar->type = SCALAR_STRING;
    case 't':
        return scalar->type = SCALAR_TRUE;
    case 'f':
        return scalar->type = SCALAR_FALSE;
    case 'n':
        return scalar->type = SCALAR_NULL;
    default: {
        int is_integer;
        scalar->type = SCALAR_FAIL;
        if (scan_number(start, end, &scalar->integer, &is_integer) != end) {
            return SCALAR_FAIL;
        }
        if (is_integer) {
            return scalar->type = SCALAR_INT;
        }
        if (memchr(start, '.', (size_t)size) == NULL && memchr(start, 'e', (size_t)size) == NULL
            && memchr(start, 'E', (size_t)size) == NULL) {
            return SCALAR_FAIL;  /* an integer of more than 18 digits */
        }
        char text[64];
        if (size >= (Py_ssize_t)sizeof text) {
            return SCALAR_FAIL;
        }
        memcpy(text, start, (size_t)size);
        text[size] = 0;
        char *after;
        double number = PyOS_string_to_double(text, &after, NULL);
        if (number == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return SCALAR_FAIL;
        }
        if (after != text + size || !isfinite(number)) {
            return SCALAR_FAIL;
        }
        scalar->number = number;
        return scalar->type = SCALAR_FLOAT;
    }
    }
}

/* The Python value of a scalar read; NULL with no exception set for SCALAR_FAIL. */
static PyObject *
scalar_object(const Scalar *scalar)
{
    switch (scalar->type) {
    case SCALAR_STRING:
        return ascii_string(scalar->text, scalar->size);
    case SCALAR_INT:
        return PyLong_FromLongLong(scalar->integer);
    case SCALAR_FLOAT:
        return PyFloat_FromDouble(scalar->number);
    case SCALAR_TRUE:
        Py_RETURN_TRUE;
    case SCALAR_FALSE:
        Py_RETURN_FALSE;
    case SCALAR_NULL:
        Py_RETURN_NONE;
    default:
        return NULL;
    }
}

/* One line as signal_csv scans it (without the GIL: no Python object is touched). */
typedef struct {
    Slot slots[SIGNAL_SLOTS];
    const unsigned char *stamp, *stamp_end;  /* NULL: no timestamp */
    long long seq_id;
    int read;                                /* 0: given up */
} Line;

/* Scan one line into *line; 0 when it is given up on. */
static int
scan_line(const unsigned char *p, const unsigned char *end, Line *line)
{
    Slot *slots = line->slots;
    memset(slots, 0, sizeof line->slots);
    big_number = 0;
    const unsigned char *msg_type = NULL, *msg_type_end = NULL, *seq = NULL, *seq_end = NULL,
                        *stamp = NULL, *stamp_end = NULL;
    int seen_payload = 0, seen_id = 0, seen_request_id = 0, seen_v = 0;
    if (p >= end || *p != '{') {
        return 0;
    }
    p = skip_space(p + 1, end);
    for (;;) {
        const unsigned char *key;
        Py_ssize_t key_size;
        int escaped, closed;
        p = scan_key(p, end, &key, &key_size, &escaped);
        if (p == GIVE_UP || escaped) {
            return 0;
        }
        const unsigned char *value = p;
#define KEY_IS(text) (key_size == (Py_ssize_t)sizeof(text) - 1 && memcmp(key, text, key_size) == 0)
        if (KEY_IS("payload")) {
            if (seen_payload++ || p >= end || *p != '{') {
                return 0;
            }
            p = scan_signal_payload(p + 1, end, slots);
        }
        else if (KEY_IS("msg_type") || KEY_IS("timestamp") || KEY_IS("seq_id")) {
            int is_seq = KEY_IS("seq_id"), is_type = KEY_IS("msg_type");
            if ((is_seq && seq) || (is_type && msg_type) || (!is_seq && !is_type && stamp)) {
                return 0;
            }
            p = scan_scalar(p, end);
            if (p == GIVE_UP) {
                return 0;
            }
            if (is_seq) {
                seq = value, seq_end = p;
            }
            else if (is_type) {
                msg_type = value, msg_type_end = p;
            }
            else {
                stamp = value, stamp_end = p;
            }
        }
        else if (KEY_IS("id") || KEY_IS("request_id") || KEY_IS("v")) {
            int *seen = KEY_IS("id") ? &seen_id : KEY_IS("request_id") ? &seen_request_id
                        : &seen_v;
            if ((*seen)++) {
                return 0;
            }
            /* a string or null; v also an integer (of at most 18 digits) */
            p = scan_scalar(p, end);
            if (p != GIVE_UP && *value != '"' && !is_null(value, p)) {
                long long integer;
                int is_integer = 0;
                if (seen != &seen_v || *value == 't' || *value == 'f') {
                    return 0;
                }
                scan_number(value, p, &integer, &is_integer);
                if (!is_integer) {
                    return 0;
                }
            }
        }
        else {
            p = scan_value(p, end, 1);
        }
#undef KEY_IS
        p = next_member(p, end, &closed);
        if (p == GIVE_UP) {
            return 0;
        }
        if (closed) {
            break;
        }
    }
    /* a signal, with a seq_id and a payload object; the timestamp a string or null */
    static const char SIGNAL[] = "\"strategy.signal\"";
    if (p != end || big_number || !seen_payload || msg_type == NULL || seq == NULL ||
        msg_type_end - msg_type != (Py_ssize_t)sizeof SIGNAL - 1 ||
        memcmp(msg_type, SIGNAL, sizeof SIGNAL - 1) != 0 ||
        (stamp != NULL && *stamp != '"' && !is_null(stamp, stamp_end))) {
        return 0;
    }
    long long seq_id;
    int is_integer = 0;
    if (*seq == '"' || *seq == 't' || *seq == 'f' || *seq == 'n') {
        return 0;
    }
    scan_number(seq, seq_end, &seq_id, &is_integer);
    if (!is_integer) {
        return 0;
    }
    line->seq_id = seq_id;
    line->stamp = stamp;
    line->stamp_end = stamp_end;
    return 1;
}

/* The scalar of one of the 11 lookups: the first of its slots present and not null
 * (SCALAR_NULL: none). */
static int
lookup_scalar(const Slot *slots, int lookup, Scalar *scalar)
{
    for (int i = 0; i < LOOKUPS[lookup][1]; i++) {
        const Slot *slot = &slots[LOOKUPS[lookup][0] + i];
        if (slot->start != NULL && !is_null(slot->start, slot->end)) {
            return read_scalar(slot->start, slot->end, scalar);
        }
    }
    return scalar->type = SCALAR_NULL;
}

#define CANDIDATES (SIGNAL_SLOTS - FIRST_CONTAINER)

/* The symbol's candidates, best first, in found (their number in *count): each
 * container's scalar, an object's inner scalar (an object or a list names no symbol);
 * 0 when one is not read (an inner string with escapes, SCALAR_FAIL). */
static int
symbol_candidates(const Slot *slots, Scalar *found, int *count)
{
    *count = 0;
    for (int slot = FIRST_CONTAINER; slot < SIGNAL_SLOTS; slot++) {
        const unsigned char *start = slots[slot].start, *stop = slots[slot].end;
        if (slots[slot].nested) {
            start = slots[slot].inner, stop = slots[slot].inner_end;
            if (start != NULL && (*start == '{' || *start == '[')) {
                start = NULL;
            }
        }
        if (start == NULL || is_null(start, stop)) {
            continue;
        }
        int escaped = 0;
        if (*start == '"' && (scan_string(start + 1, stop, &escaped) != stop || escaped)) {
            return 0;
        }
        if (read_scalar(start, stop, &found[*count]) == SCALAR_FAIL) {
            return 0;
        }
        (*count)++;
    }
    return 1;
}

/* A line scanned (and read) as its values; Py_None when a value is not one this reads,
 * NULL on an exception. */
static PyObject *
line_values(const Line *line)
{
    const Slot *slots = line->slots;
    Scalar scalar;
    PyObject *row = PyTuple_New(14);
    if (row == NULL) {
        return NULL;
    }
    PyObject *item = PyLong_FromLongLong(line->seq_id);
    if (item == NULL) {
        goto error;
    }
    PyTuple_SET_ITEM(row, 0, item);
    if (line->stamp == NULL) {
        item = Py_NewRef(Py_None);
    }
    else {
        read_scalar(line->stamp, line->stamp_end, &scalar);  /* a string or null */
        item = scalar_object(&scalar);
    }
    if (item == NULL) {
        goto error;
    }
    PyTuple_SET_ITEM(row, 1, item);
    for (int lookup = 0; lookup < 11; lookup++) {
        lookup_scalar(slots, lookup, &scalar);
        item = scalar_object(&scalar);
        if (item == NULL) {
            goto give_up;
        }
        PyTuple_SET_ITEM(row, 2 + lookup, item);
    }
    Scalar found[CANDIDATES];
    int count;
    if (!symbol_candidates(slots, found, &count)) {
        goto give_up;
    }
    item = PyTuple_New(count);
    if (item == NULL) {
        goto error;
    }
    PyTuple_SET_ITEM(row, 13, item);
    for (int i = 0; i < count; i++) {
        PyObject *symbol = scalar_object(&found[i]);
        if (symbol == NULL) {
            goto error;
        }
        PyTuple_SET_ITEM(item, i, symbol);
    }
    /* scalars only (and a tuple of them): no cycle to look for */
    if (count && PyObject_GC_IsTracked(item)) {
        PyObject_GC_UnTrack(item);
    }
    PyObject_GC_UnTrack(row);
    return row;
give_up:
    Py_DECREF(row);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
error:
    Py_DECREF(row);
    return NULL;
}

/* ---- signal_csv: a run's CSV/TSV signal lines, straight from its bytes -------------------
 * The 17 cells of c2ws.render.cells._row (COMBINED_COLUMNS order) of a line's values
 * when every one is a case this makes the same way, else the values (the caller makes
 * that row in Python, which fills the memos this reads): the time, code and symbol cells
 * are only looked up in the memos c2ws.render.cells keeps (never computed here); ints
 * within 64 bits are written as str() writes them, usual floats as
 * f"{x:.8f}".rstrip("0").rstrip(".") writes them; anything else gives up.  A line none
 * of whose cells holds a quote or the delimiter is its picked cells joined by the
 * delimiter, as DelimitedRenderer._add_rows writes it.  The cells are made from the
 * scanned line (line_cells) without the values' objects; a line that is not such a
 * usual case has its values made (line_values) and its cells from them (row_cells):
 * the same cells either way, and the same give-ups. */
#define ROW_CELLS 17
#define TIME_LIMIT 40  /* records.TIME_LIMIT */
#define CELL_CHARS TIME_LIMIT

typedef struct {
    PyObject *text;            /* a memo's cell (a reference of its own), or NULL: chars */
    char chars[CELL_CHARS];
    Py_ssize_t length;
} Cell;

static void
clear_cells(Cell *cells)
{
    for (int i = 0; i < ROW_CELLS; i++) {
        cells[i].text = NULL;
        cells[i].length = 0;
    }
}

static void
release_cells(Cell *cells)
{
    for (int i = 0; i < ROW_CELLS; i++) {
        Py_CLEAR(cells[i].text);
    }
}

/* str() of a 64-bit int */
static void
digits_cell(long long number, Cell *cell)
{
    /* the digits from the end (of the magnitude as unsigned: LLONG_MIN too) */
    unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number
                                              : (unsigned long long)number;
    char digits[24];
    int at = 24;
    do {
        digits[--at] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (number < 0) {
        digits[--at] = '-';
    }
    cell->text = NULL;
    cell->length = 24 - at;
    memcpy(cell->chars, digits + at, (size_t)cell->length);
}

/* an int within 64 bits (str() of it), or 0 (give up); positive: only > 0 */
static int
int_cell(PyObject *value, int positive, Cell *cell)
{
    if (!PyLong_CheckExact(value)) {
        return 0;
    }
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (number == -1 && PyErr_Occurred()) || (positive && number <= 0)) {
        PyErr_Clear();
        return 0;
    }
    digits_cell(number, cell);
    return 1;
}

/* a float with 1e-4 <= |x| < 1e15: f"{x:.8f}" without trailing zeros and dot; anything
 * else: 0 (give up) */
static int
float_price_cell(double x, Cell *cell)
{
    cell->text = NULL;
    if (!((1e-4 <= x && x < 1e15) || (-1e15 < x && x <= -1e-4))) {
        return 0;
    }
#ifdef __SIZEOF_INT128__
    /* x = m * 2^e exactly; x * 10^8 rounded half to even (as Python's 'f' format rounds
     * the exact binary value) is an integer below 10^23, held in 128 bits */
    int exponent;
    double fraction = frexp(fabs(x), &exponent);
    unsigned __int128 scaled = (unsigned __int128)(unsigned long long)ldexp(fraction, 53)
                               * 100000000U;
    int shift = 53 - exponent;
    if (shift > 0) {  /* at most 67: |x| >= 1e-4 */
        unsigned __int128 rest = scaled & (((unsigned __int128)1 << shift) - 1);
        unsigned __int128 half = (unsigned __int128)1 << (shift - 1);
        scaled >>= shift;
        if (rest > half || (rest == half && (scaled & 1))) {
            scaled++;
        }
    }
    else {
        scaled <<= -shift;  /* |x| < 1e15: at most 10^23 */
    }
    unsigned long long whole = (unsigned long long)(scaled / 100000000U);
    unsigned long long eighths = (unsigned long long)(scaled % 100000000U);
    char digits[CELL_CHARS];
    int at = CELL_CHARS, decimals = 8;
    while (decimals > 0 && eighths % 10 == 0) {  /* no trailing zeros (nor dot) */
        eighths /= 10;
        decimals--;
    }
    for (int i = 0; i < decimals; i++) {
        digits[--at] = (char)('0' + eighths % 10);
        eighths /= 10;
    }
    if (decimals > 0) {
        digits[--at] = '.';
    }
    do {
        digits[--at] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    if (x < 0) {
        digits[--at] = '-';
    }
    cell->length = CELL_CHARS - at;
    memcpy(cell->chars, digits + at, (size_t)cell->length);
    return 1;
#else
    char *text = PyOS_double_to_string(x, 'f', 8, 0, NULL);
    if (text == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t length = (Py_ssize_t)strlen(text);
    while (length > 0 && text[length - 1] == '0') {
        length--;
    }
    while (length > 0 && text[length - 1] == '.') {
        length--;
    }
    int fits = length <= CELL_CHARS;
    if (fits) {
        memcpy(cell->chars, text, (size_t)length);
        cell->length = length;
    }
    PyMem_Free(text);
    return fits;
#endif
}

/* None: ""; a usual float: float_price_cell; anything else: 0 (give up) */
static int
price_cell(PyObject *value, Cell *cell)
{
    cell->text = NULL;
    if (value == Py_None) {
        cell->length = 0;
        return 1;
    }
    return PyFloat_CheckExact(value) && float_price_cell(PyFloat_AS_DOUBLE(value), cell);
}

/* memo[key] when key is a str the memo holds with a non-empty cell (a reference of
 * the cell's own: allocating below may run the GC, and so finalizers and other
 * threads, one of which could clear a memo), else 0 */
static int
memo_cell(PyObject *memo, PyObject *key, Cell *cell)
{
    if (!PyUnicode_CheckExact(key)) {
        return 0;
    }
    PyObject *text = PyDict_GetItemWithError(memo, key);
    if (text == NULL || !PyUnicode_CheckExact(text) || PyUnicode_GET_LENGTH(text) == 0) {
        PyErr_Clear();
        return 0;
    }
    cell->text = Py_NewRef(text);
    return 1;
}

/* A timestamp terminal_safe (and cell_text) give back unchanged: ASCII, printable
 * (no control character or sequence to remove), no space at either end (strip), at most
 * TIME_LIMIT characters (no cap).  Then it is its own cell (copied). */
static int
plain_time_cell(const unsigned char *text, Py_ssize_t length, Cell *cell)
{
    if (length == 0 || length > TIME_LIMIT || text[0] == ' ' || text[length - 1] == ' ') {
        return 0;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        if (text[i] < 0x20 || text[i] > 0x7e) {
            return 0;
        }
    }
    cell->text = NULL;
    cell->length = length;
    memcpy(cell->chars, text, (size_t)length);
    return 1;
}

static int
plain_time(PyObject *value, Cell *cell)
{
    return PyUnicode_CheckExact(value) && PyUnicode_IS_ASCII(value)
        && plain_time_cell(PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value), cell);
}

/* The name, side, open/close, order type, time in force and status cells: the codes
 * memo's cells of those six values (each str or None; borrowed); 1, 0 (not held: give
 * up) or -1 (an exception). */
#define CODES 6
static const int CODE_LOOKUP[CODES] = {1, 2, 3, 5, 8, 9};  /* their lookups */
static const int CODE_CELL[CODES] = {3, 5, 6, 9, 12, 13};   /* their cells */

static int
code_cells(PyObject *codes, PyObject *const *values, Cell *cells)
{
    PyObject *key = PyTuple_New(CODES);
    if (key == NULL) {
        return -1;
    }
    for (int i = 0; i < CODES; i++) {
        PyTuple_SET_ITEM(key, i, Py_NewRef(values[i]));
    }
    PyObject *found = PyDict_GetItemWithError(codes, key);
    Py_DECREF(key);
    if (found == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyTuple_CheckExact(found) || PyTuple_GET_SIZE(found) != CODES) {
        return 0;
    }
    for (int i = 0; i < CODES; i++) {
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(found, i))) {
            return 0;
        }
    }
    for (int i = 0; i < CODES; i++) {
        cells[CODE_CELL[i]].text = Py_NewRef(PyTuple_GET_ITEM(found, i));
    }
    return 1;
}

/* The cells of a line's values (line_values'): 1 the row's cells in cells; 0: give up;
 * -1: an exception (either way, cells holds references the caller drops:
 * release_cells) */
static int
row_cells(PyObject *values, PyObject *kind, PyObject *times, PyObject *codes,
          PyObject *symbols, Cell *cells)
{
    clear_cells(cells);
    if (!PyTuple_CheckExact(values) || PyTuple_GET_SIZE(values) != 14) {
        return 0;
    }
    PyObject **v = &PyTuple_GET_ITEM(values, 0);
    /* time: "" for no timestamp (None or ""), else the timestamp itself when
     * terminal_safe leaves it as it is, else the memo's cell */
    if (v[1] != Py_None && !(PyUnicode_CheckExact(v[1]) && PyUnicode_GET_LENGTH(v[1]) == 0)
            && !plain_time(v[1], &cells[0]) && !memo_cell(times, v[1], &cells[0])) {
        return 0;
    }
    cells[1].text = Py_NewRef(kind);
    if (!int_cell(v[2], 1, &cells[2]) || !int_cell(v[0], 0, &cells[4])) {
        return 0;
    }
    /* name, side, open/close, order type, time in force, status: str or None each */
    PyObject *code[CODES];
    for (int i = 0; i < CODES; i++) {
        code[i] = v[2 + CODE_LOOKUP[i]];
        if (code[i] != Py_None && !PyUnicode_CheckExact(code[i])) {
            return 0;
        }
    }
    int made = code_cells(codes, code, cells);
    if (made <= 0) {
        return made;
    }
    /* quantity: None or an int */
    if (v[6] != Py_None && !int_cell(v[6], 0, &cells[7])) {
        return 0;
    }
    /* symbol: the first candidate's cell (none: "") */
    if (!PyTuple_CheckExact(v[13])) {
        return 0;
    }
    if (PyTuple_GET_SIZE(v[13]) > 0 && !memo_cell(symbols, PyTuple_GET_ITEM(v[13], 0), &cells[8])) {
        return 0;
    }
    if (!price_cell(v[8], &cells[10]) || !price_cell(v[9], &cells[11])
            || !int_cell(v[12], 0, &cells[14])) {
        return 0;
    }
    return 1;
}

/* row_cells(line_values(line)) of the usual line, without making its values: 1 the
 * row's cells in cells; 0 when the line is not such a case (its cells are row_cells'
 * to make, or not); -1 an exception (either way, the caller drops cells' references).
 * Each cell as row_cells makes it of the value line_values makes. */
static int
line_cells(const Line *line, PyObject *kind, PyObject *codes, PyObject *symbols,
           Cell *cells)
{
    const Slot *slots = line->slots;
    Scalar scalar;
    clear_cells(cells);
    /* time: none, null or "": ""; a plain timestamp: itself (else: row_cells) */
    if (line->stamp != NULL && *line->stamp == '"' && line->stamp_end - line->stamp > 2
            && !plain_time_cell(line->stamp + 1, line->stamp_end - line->stamp - 2,
                                &cells[0])) {
        return 0;
    }
    cells[1].text = Py_NewRef(kind);
    if (lookup_scalar(slots, 0, &scalar) != SCALAR_INT || scalar.integer <= 0) {
        return 0;
    }
    digits_cell(scalar.integer, &cells[2]);
    digits_cell(line->seq_id, &cells[4]);
    /* quantity: null or an int */
    int type = lookup_scalar(slots, 4, &scalar);
    if (type == SCALAR_INT) {
        digits_cell(scalar.integer, &cells[7]);
    }
    else if (type != SCALAR_NULL) {
        return 0;
    }
    /* limit, stop: null or a usual float */
    for (int i = 0; i < 2; i++) {
        type = lookup_scalar(slots, 6 + i, &scalar);
        if (type == SCALAR_FLOAT ? !float_price_cell(scalar.number, &cells[10 + i])
                : type != SCALAR_NULL) {
            return 0;
        }
    }
    if (lookup_scalar(slots, 10, &scalar) != SCALAR_INT) {
        return 0;
    }
    digits_cell(scalar.integer, &cells[14]);
    /* every candidate read; the first one a string the symbols memo holds */
    Scalar found[CANDIDATES];
    int count;
    if (!symbol_candidates(slots, found, &count) || (count && found[0].type != SCALAR_STRING)) {
        return 0;
    }
    if (count) {
        PyObject *symbol = ascii_string(found[0].text, found[0].size);
        if (symbol == NULL) {
            return -1;
        }
        int held = memo_cell(symbols, symbol, &cells[8]);
        Py_DECREF(symbol);
        if (!held) {
            return 0;
        }
    }
    /* the six codes: strings or null */
    Scalar code[CODES];
    for (int i = 0; i < CODES; i++) {
        type = lookup_scalar(slots, CODE_LOOKUP[i], &code[i]);
        if (type != SCALAR_STRING && type != SCALAR_NULL) {
            return 0;
        }
    }
    PyObject *values[CODES];
    for (int i = 0; i < CODES; i++) {
        values[i] = code[i].type == SCALAR_NULL ? Py_NewRef(Py_None)
            : ascii_string(code[i].text, code[i].size);
        if (values[i] == NULL) {
            while (i > 0) {
                Py_DECREF(values[--i]);
            }
            return -1;
        }
    }
    int made = code_cells(codes, values, cells);
    for (int i = 0; i < CODES; i++) {
        Py_DECREF(values[i]);
    }
    return made;
}

/* the line of the picked cells joined by delimiter; Py_None when a cell holds a quote
 * or the delimiter, or the line would be empty; NULL on an exception */
static PyObject *
join_cells(const Cell *cells, const Py_ssize_t *columns, Py_ssize_t count,
           Py_UCS4 delimiter)
{
    Py_ssize_t length = count > 0 ? count - 1 : 0;
    Py_UCS4 max_char = delimiter;
    for (Py_ssize_t i = 0; i < count; i++) {
        const Cell *cell = &cells[columns[i]];
        if (cell->text != NULL && PyUnicode_IS_ASCII(cell->text)) {
            Py_ssize_t size = PyUnicode_GET_LENGTH(cell->text);
            const char *chars = (const char *)PyUnicode_1BYTE_DATA(cell->text);
            if (memchr(chars, '"', (size_t)size) != NULL
                    || (delimiter < 128 && memchr(chars, (int)delimiter, (size_t)size) != NULL)) {
                Py_RETURN_NONE;
            }
            length += size;
        }
        else if (cell->text != NULL) {
            Py_ssize_t size = PyUnicode_GET_LENGTH(cell->text);
            if (PyUnicode_FindChar(cell->text, '"', 0, size, 1) != -1
                    || PyUnicode_FindChar(cell->text, delimiter, 0, size, 1) != -1) {
                Py_RETURN_NONE;
            }
            Py_UCS4 most = PyUnicode_MAX_CHAR_VALUE(cell->text);
            if (most > max_char) {
                max_char = most;
            }
            length += size;
        }
        else {
            if (memchr(cell->chars, '"', (size_t)cell->length) != NULL
                    || (delimiter < 128
                        && memchr(cell->chars, (int)delimiter, (size_t)cell->length) != NULL)) {
                Py_RETURN_NONE;
            }
            length += cell->length;
        }
    }
    if (length == 0) {
        Py_RETURN_NONE;  /* an empty line: the csv module writes "" */
    }
    PyObject *line = PyUnicode_New(length, max_char);
    if (line == NULL) {
        return NULL;
    }
    int kind = PyUnicode_KIND(line);
    void *data = PyUnicode_DATA(line);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i > 0) {
            PyUnicode_WRITE(kind, data, at, delimiter);
            at++;
        }
        const Cell *cell = &cells[columns[i]];
        if (cell->text != NULL && kind == PyUnicode_1BYTE_KIND && PyUnicode_IS_ASCII(cell->text)) {
            Py_ssize_t size = PyUnicode_GET_LENGTH(cell->text);
            memcpy((char *)data + at, PyUnicode_1BYTE_DATA(cell->text), (size_t)size);
            at += size;
        }
        else if (cell->text != NULL) {
            Py_ssize_t size = PyUnicode_GET_LENGTH(cell->text);
            if (PyUnicode_CopyCharacters(line, at, cell->text, 0, size) < 0) {
                Py_DECREF(line);
                return NULL;
            }
            at += size;
        }
        else if (kind == PyUnicode_1BYTE_KIND) {
            memcpy((char *)data + at, cell->chars, (size_t)cell->length);
            at += cell->length;
        }
        else {
            for (Py_ssize_t c = 0; c < cell->length; c++) {
                PyUnicode_WRITE(kind, data, at, (Py_UCS4)(unsigned char)cell->chars[c]);
                at++;
            }
        }
    }
    return line;
}

/* The ASCII lines written so far and not yet a part: one after another, each but the
 * first after a newline. */
typedef struct {
    char *data;
    Py_ssize_t size, capacity;
} Text;

/* The lines of text as one str appended to parts (none: nothing); 0, or -1 on an
 * exception. */
static int
end_text(Text *text, PyObject *parts)
{
    if (text->size == 0) {
        return 0;
    }
    PyObject *part = PyUnicode_New(text->size, 127);
    if (part == NULL) {
        return -1;
    }
    memcpy(PyUnicode_1BYTE_DATA(part), text->data, (size_t)text->size);
    text->size = 0;
    int failed = PyList_Append(parts, part);
    Py_DECREF(part);
    return failed;
}

/* The line of the picked cells joined by delimiter, appended to text when it is ASCII
 * (else to parts, as a part of its own, after text's lines): 1; 0 when join_cells
 * gives up on it (a cell holds a quote or the delimiter, or the line would be empty);
 * -1 on an exception. */
static int
write_line(const Cell *cells, const Py_ssize_t *columns, Py_ssize_t count,
           Py_UCS4 delimiter, Text *text, PyObject *parts)
{
    Py_ssize_t length = count > 0 ? count - 1 : 0;
    int ascii = delimiter < 128;
    for (Py_ssize_t i = 0; i < count; i++) {
        const Cell *cell = &cells[columns[i]];
        if (cell->text == NULL) {
            length += cell->length;
        }
        else {
            ascii &= PyUnicode_IS_ASCII(cell->text) != 0;
            length += PyUnicode_GET_LENGTH(cell->text);
        }
    }
    if (!ascii) {  /* (never with a memo of ASCII cells and "," or "\t") */
        PyObject *line = join_cells(cells, columns, count, delimiter);
        if (line == NULL) {
            return -1;
        }
        if (line == Py_None) {
            Py_DECREF(line);
            return 0;
        }
        int failed = end_text(text, parts) < 0 || PyList_Append(parts, line) < 0;
        Py_DECREF(line);
        return failed ? -1 : 1;
    }
    if (length == 0) {
        return 0;  /* an empty line: the csv module writes "" */
    }
    Py_ssize_t needed = text->size + 1 + length;
    if (needed > text->capacity) {
        Py_ssize_t capacity = needed > 2 * text->capacity ? needed : 2 * text->capacity;
        char *data = PyMem_Realloc(text->data, (size_t)capacity);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        text->data = data;
        text->capacity = capacity;
    }
    char *start = text->data + text->size + (text->size > 0), *out = start;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i > 0) {
            *out++ = (char)delimiter;
        }
        const Cell *cell = &cells[columns[i]];
        if (cell->text != NULL) {
            Py_ssize_t size = PyUnicode_GET_LENGTH(cell->text);
            memcpy(out, PyUnicode_1BYTE_DATA(cell->text), (size_t)size);
            out += size;
        }
        else {
            memcpy(out, cell->chars, (size_t)cell->length);
            out += cell->length;
        }
    }
    /* written, then checked: no quote, and no delimiter but those between the cells */
    Py_ssize_t delimiters = 0;
    for (const char *at = start; at < out; at++) {
        if (*at == '"') {
            return 0;  /* (text->size unchanged: the line is dropped) */
        }
        delimiters += *at == (char)delimiter;
    }
    if (delimiters != count - 1) {
        return 0;
    }
    if (text->size > 0) {
        text->data[text->size] = '\n';
    }
    text->size = out - text->data;
    return 1;
}

/* A line the lines are not written for: its values, when read (a tuple), else its index
 * (an int); NULL on an exception.  values: line_values' already, or NULL. */
static PyObject *
unwritten(const Line *line, PyObject *values, Py_ssize_t index)
{
    if (values == NULL && line->read) {
        values = line_values(line);
        if (values == NULL) {
            return NULL;
        }
    }
    if (values != NULL && values != Py_None) {
        return values;
    }
    Py_XDECREF(values);
    return PyLong_FromSsize_t(index);
}

/* signal_csv(ndjson, columns, delimiter, kind, times, codes, symbols)
 *   -> [lines | values | index, ...]: see c2ws.speedups.  The lines are scanned
 * LINES_AT_ONCE at a time without the GIL (the bytes are immutable, the scan touches no
 * Python object): the socket thread reads the next burst meanwhile. */
#define LINES_AT_ONCE 64

static PyObject *
signal_csv(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyBytes_CheckExact(args[0]) || !PyTuple_CheckExact(args[1])
            || !PyUnicode_CheckExact(args[2]) || PyUnicode_GET_LENGTH(args[2]) != 1
            || !PyUnicode_CheckExact(args[3]) || !PyDict_CheckExact(args[4])
            || !PyDict_CheckExact(args[5]) || !PyDict_CheckExact(args[6])) {
        PyErr_SetString(PyExc_TypeError, "signal_csv(ndjson: bytes, columns: tuple, "
                        "delimiter: str, kind: str, times: dict, codes: dict, symbols: dict)");
        return NULL;
    }
    PyObject *picked = args[1], *kind = args[3], *times = args[4], *codes = args[5],
             *symbols = args[6];
    Py_ssize_t count = PyTuple_GET_SIZE(picked);
    Py_ssize_t columns[ROW_CELLS];
    if (count > ROW_CELLS) {
        PyErr_SetString(PyExc_ValueError, "signal_csv: at most 17 columns");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t column = PyLong_AsSsize_t(PyTuple_GET_ITEM(picked, i));
        if (column == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (column < 0 || column >= ROW_CELLS) {
            PyErr_SetString(PyExc_ValueError, "signal_csv: a column is 0 to 16");
            return NULL;
        }
        columns[i] = column;
    }
    Py_UCS4 delimiter = PyUnicode_READ_CHAR(args[2], 0);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *end = p + PyBytes_GET_SIZE(args[0]);
    PyObject *parts = PyList_New(0);
    if (parts == NULL) {
        return NULL;
    }
    Line *lines = PyMem_Malloc(LINES_AT_ONCE * sizeof(Line));
    Text text = {NULL, 0, 0};
    if (lines == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    Py_ssize_t index = 0;
    Cell cells[ROW_CELLS];
    while (p < end) {
        int scanned = 0;
        Py_BEGIN_ALLOW_THREADS
        while (p < end && scanned < LINES_AT_ONCE) {
            const unsigned char *line_end = memchr(p, '\n', (size_t)(end - p));
            if (line_end == NULL) {
                line_end = end;
            }
            lines[scanned].read = scan_line(p, line_end, &lines[scanned]);
            scanned++;
            p = line_end + 1;
        }
        Py_END_ALLOW_THREADS
        for (int i = 0; i < scanned; i++, index++) {
            const Line *line = &lines[i];
            PyObject *values = NULL;
            int made = 0;
            if (line->read) {
                made = line_cells(line, kind, codes, symbols, cells);
                if (made == 0) {  /* not the usual line: by its values */
                    release_cells(cells);
                    values = line_values(line);
                    if (values == NULL) {
                        goto error;
                    }
                    made = values == Py_None ? 0
                        : row_cells(values, kind, times, codes, symbols, cells);
                }
                if (made > 0) {
                    made = write_line(cells, columns, count, delimiter, &text, parts);
                }
                release_cells(cells);
                if (made < 0) {
                    Py_XDECREF(values);
                    goto error;
                }
            }
            if (made > 0) {
                Py_XDECREF(values);
                continue;
            }
            PyObject *part = unwritten(line, values, index);
            if (part == NULL || end_text(&text, parts) < 0 || PyList_Append(parts, part) < 0) {
                Py_XDECREF(part);
                goto error;
            }
            Py_DECREF(part);
        }
    }
    if (end_text(&text, parts) < 0) {
        goto error;
    }
    PyMem_Free(text.data);
    PyMem_Free(lines);
    return parts;
error:
    PyMem_Free(text.data);
    PyMem_Free(lines);
    Py_DECREF(parts);
    return NULL;
}

/* nats_acks(chunk, position, prefix): the run of the NATS sink's acks at chunk[position:]
 * (bytes or bytearray): "MSG <prefix><token> <sid> <size>\r\n<payload>\r\n", single
 * spaces, token and sid 1-18 ASCII digits, size 1-8; each as (token, payload).  Returns
 * (acks, position after the last, whether the bytes left begin one not whole yet). */
#define ACK_MORE (-1)   /* the chunk ends inside what may still be an ack */
#define ACK_OTHER (-2)  /* something else */

/* The ASCII digits at s[*at:], 1 to `most` of them, followed by `after`: their value,
 * *at moved past `after`; else ACK_MORE or ACK_OTHER. */
static int64_t
ack_number(const unsigned char *s, Py_ssize_t end, Py_ssize_t *at, int most,
           unsigned char after)
{
    Py_ssize_t p = *at;
    int64_t value = 0;
    int digits = 0;
    while (p < end && s[p] >= '0' && s[p] <= '9') {
        if (++digits > most) {
            return ACK_OTHER;
        }
        value = value * 10 + (s[p] - '0');
        p++;
    }
    if (p >= end) {
        return ACK_MORE;
    }
    if (digits == 0 || s[p] != after) {
        return ACK_OTHER;
    }
    *at = p + 1;
    return value;
}

static PyObject *
nats_acks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[2])
            || !(PyBytes_Check(args[0]) || PyByteArray_Check(args[0]))) {
        PyErr_SetString(PyExc_TypeError,
                        "nats_acks(chunk: bytes | bytearray, position: int, prefix: bytes)");
        return NULL;
    }
    const unsigned char *prefix = (const unsigned char *)PyBytes_AS_STRING(args[2]);
    Py_ssize_t prefix_size = PyBytes_GET_SIZE(args[2]);
    /* A bytearray's bytes stay put: nothing below runs Python code. */
    const unsigned char *s;
    Py_ssize_t end;
    if (PyBytes_Check(args[0])) {
        s = (const unsigned char *)PyBytes_AS_STRING(args[0]);
        end = PyBytes_GET_SIZE(args[0]);
    }
    else {
        s = (const unsigned char *)PyByteArray_AS_STRING(args[0]);
        end = PyByteArray_GET_SIZE(args[0]);
    }
    Py_ssize_t position;
    if (start_position(args[1], end, &position) < 0) {
        return NULL;
    }
    PyObject *acks = PyList_New(0);
    if (acks == NULL) {
        return NULL;
    }
    int more = 0;
    while (position < end) {
        Py_ssize_t p = position;
        static const unsigned char op[4] = {'M', 'S', 'G', ' '};
        Py_ssize_t i;
        for (i = 0; i < 4 + prefix_size; i++, p++) {
            if (p >= end) {
                more = 1;
                goto done;
            }
            if (s[p] != (i < 4 ? op[i] : prefix[i - 4])) {
                goto done;
            }
        }
        int64_t token = ack_number(s, end, &p, 18, ' ');
        int64_t sid = token < 0 ? token : ack_number(s, end, &p, 18, ' ');
        int64_t size = sid < 0 ? sid : ack_number(s, end, &p, 8, '\r');
        if (size >= 0) {
            if (p >= end) {
                size = ACK_MORE;
            }
            else if (s[p] != '\n') {
                size = ACK_OTHER;
            }
            else {
                p++;
            }
        }
        if (size < 0) {
            more = size == ACK_MORE;
            goto done;
        }
        if (p + size + 2 > end) {
            more = 1;
            goto done;
        }
        if (s[p + size] != '\r' || s[p + size + 1] != '\n') {
            goto done;
        }
        PyObject *ack = Py_BuildValue("(Ly#)", (long long)token, (const char *)s + p,
                                      (Py_ssize_t)size);
        if (ack == NULL || PyList_Append(acks, ack) < 0) {
            Py_XDECREF(ack);
            Py_DECREF(acks);
            return NULL;
        }
        Py_DECREF(ack);
        position = p + size + 2;
    }
done:
    return Py_BuildValue("(NnO)", acks, position, more ? Py_True : Py_False);
}

/* replace_file(dir_fd, temp, name, data): write data to a new file temp (0600, never
 * through a link) in the directory dir_fd, fsync it, rename it over name, fsync the
 * directory (a file system that cannot sync a directory, EINVAL or ENOTSUP, is let
 * be); on a failure before the rename, temp is removed.  The GIL is released once for
 * all of it: the commit thread of --state otherwise takes it back after each of its
 * nine system calls, each time waiting for the threads that hold it. */
static int
replace_file_unlocked(int dir_fd, const char *temp, const char *name, const char *data,
                      Py_ssize_t size, int *stage)
{
    int fd;
    do {
        fd = openat(dir_fd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        return -1;
    }
    int error = 0;
    if (fchmod(fd, 0600) != 0) {
        error = errno;
    }
    while (!error && size > 0) {
        ssize_t n = write(fd, data, (size_t)size);
        if (n < 0) {
            if (errno != EINTR) {
                error = errno;
            }
            continue;
        }
        data += n;
        size -= n;
    }
    if (!error && fsync(fd) != 0) {
        error = errno;
    }
    if (close(fd) != 0 && !error && errno != EINTR) {
        error = errno;
    }
    if (!error && renameat(dir_fd, temp, dir_fd, name) != 0) {
        error = errno;
        *stage = 1;
    }
    if (error) {
        unlinkat(dir_fd, temp, 0);
        errno = error;
        return -1;
    }
    if (fsync(dir_fd) != 0 && errno != EINVAL && errno != ENOTSUP) {
        *stage = 2;
        return -1;
    }
    return 0;
}

static PyObject *
replace_file(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyLong_Check(args[0]) || !PyUnicode_Check(args[1])
            || !PyUnicode_Check(args[2]) || !PyBytes_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "replace_file(dir_fd: int, temp: str, name: str, data: bytes)");
        return NULL;
    }
    long dir_fd = PyLong_AsLong(args[0]);
    if (dir_fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (dir_fd < INT_MIN || dir_fd > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "dir_fd out of range");
        return NULL;
    }
    PyObject *temp = NULL, *name = NULL;
    if (!PyUnicode_FSConverter(args[1], &temp)) {
        return NULL;
    }
    if (!PyUnicode_FSConverter(args[2], &name)) {
        Py_DECREF(temp);
        return NULL;
    }
    PyObject *data = args[3];
    Py_INCREF(data);
    /* What failed: 0 the temporary file, 1 the rename, 2 the directory's fsync (named as
     * os.open, os.replace and os.fsync name them). */
    int stage = 0, result, saved;
    Py_BEGIN_ALLOW_THREADS
    result = replace_file_unlocked((int)dir_fd, PyBytes_AS_STRING(temp), PyBytes_AS_STRING(name),
                                   PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                                   &stage);
    saved = errno;
    Py_END_ALLOW_THREADS
    Py_DECREF(temp);
    Py_DECREF(name);
    Py_DECREF(data);
    if (result != 0) {
        errno = saved;
        if (stage == 2) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        if (stage == 1) {
            return PyErr_SetFromErrnoWithFilenameObjects(PyExc_OSError, args[1], args[2]);
        }
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, args[1]);
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"nats_acks", (PyCFunction)(void (*)(void))nats_acks, METH_FASTCALL,
     "nats_acks(chunk, position, prefix) -> (acks, position, more): see c2ws.speedups."},
    {"signal_csv", (PyCFunction)(void (*)(void))signal_csv, METH_FASTCALL,
     "signal_csv(ndjson, columns, delimiter, kind, times, codes, symbols)"
     " -> [lines | values | index]: see c2ws.speedups."},
    {"run_summary", (PyCFunction)(void (*)(void))run_summary, METH_FASTCALL,
     "run_summary(ndjson, count) -> (msg_type, strategy_id, first_seq_id, last_timestamp)"
     " | False | None: see c2ws.speedups."},
    {"ndjson_burst", (PyCFunction)(void (*)(void))ndjson_burst, METH_FASTCALL,
     "ndjson_burst(chunk, position, marker) -> (lines, count, position): see c2ws.speedups."},
    {"text_burst", (PyCFunction)(void (*)(void))text_burst, METH_FASTCALL,
     "text_burst(chunk, position) -> (frames, position): see c2ws.speedups."},
    {"text_kind", (PyCFunction)text_kind, METH_O,
     "text_kind(frames) -> 0, 1 or 2: see c2ws.speedups."},
    {"any_contains", (PyCFunction)(void (*)(void))any_contains, METH_FASTCALL,
     "any_contains(frames, needle) -> bool: see c2ws.speedups."},
    {"replace_file", (PyCFunction)(void (*)(void))replace_file, METH_FASTCALL,
     "replace_file(dir_fd, temp, name, data) -> None: see c2ws.speedups."},
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
