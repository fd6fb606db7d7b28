/* The compiled twins of three pure-Python functions of c2ws/speedups.py, for the
 * socket thread's per-message work on a burst of frames.  Each does exactly what its
 * twin does (tests/test_speedups.py runs both on arbitrary input); c2ws works the same
 * without this module, only slower (it is built when a C compiler is at hand).
 *
 *   text_burst(chunk, position)   the plain text frames at chunk[position:]
 *   text_kind(frames)             ASCII? line breaks?  (0, 1 or 2)
 *   any_contains(frames, needle)  does some frame hold needle?
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

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

static PyObject *
any_contains(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "any_contains(frames: list[bytes], needle: bytes)");
        return NULL;
    }
    PyObject *frames = args[0];
    const char *needle = PyBytes_AS_STRING(args[1]);
    Py_ssize_t needle_size = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t count = PyList_GET_SIZE(frames);
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *frame = PyList_GET_ITEM(frames, index);
        if (!PyBytes_CheckExact(frame)) {
            PyErr_SetString(PyExc_TypeError, "any_contains: frames must be bytes");
            return NULL;
        }
        Py_ssize_t size = PyBytes_GET_SIZE(frame);
        if (needle_size == 0 ||
            (size >= needle_size &&
             memmem(PyBytes_AS_STRING(frame), (size_t)size, needle, (size_t)needle_size))) {
            Py_RETURN_TRUE;
        }
    }
    Py_RETURN_FALSE;
}

static PyMethodDef methods[] = {
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
