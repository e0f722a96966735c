package forward

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/batonhq/baton/orchestrator/apierr"
)

// interceptor is the ResponseWriter h writes to under Wrap. It holds back
// one answer, 421 with apierr.ShardHeader, and what h writes after it;
// everything else goes straight through, unbuffered, so that a stream
// (the console's server-sent events) streams.
type interceptor struct {
	w      http.ResponseWriter
	before http.Header // w's headers before h ran

	decided     bool // the final status went out, or was held back
	intercepted bool
	shard       int
}

func (i *interceptor) Header() http.Header { return i.w.Header() }

func (i *interceptor) WriteHeader(code int) {
	switch {
	case i.intercepted:
		return
	case i.decided:
		i.w.WriteHeader(code) // superfluous: net/http says so, as it would without Wrap
		return
	case code == http.StatusMisdirectedRequest:
		if shard, err := strconv.Atoi(i.w.Header().Get(apierr.ShardHeader)); err == nil && shard >= 0 {
			i.decided, i.intercepted, i.shard = true, true, shard
			return
		}
	}
	if code >= 200 || code == http.StatusSwitchingProtocols {
		i.decided = true // 1xx but 101 are informational: the final status is still to come
	}
	i.w.WriteHeader(code)
}

func (i *interceptor) Write(p []byte) (int, error) {
	if i.intercepted {
		return len(p), nil
	}
	i.decided = true
	return i.w.Write(p)
}

// Flush makes the interceptor an http.Flusher, which web/live asks for by
// type.
func (i *interceptor) Flush() { _ = i.FlushError() }

// FlushError is what http.ResponseController.Flush calls first.
func (i *interceptor) FlushError() error {
	if i.intercepted {
		return nil
	}
	i.decided = true
	return http.NewResponseController(i.w).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer: read
// and write deadlines (graphapi moves one for an upload), full duplex,
// hijacking.
func (i *interceptor) Unwrap() http.ResponseWriter { return i.w }

// teeBody is the request body as h reads it, kept (up to max) for a
// replay to the owner.
type teeBody struct {
	src io.ReadCloser
	max int64
	buf bytes.Buffer

	over   bool  // larger than max: not kept, not replayable
	eof    bool  // src is read to its end
	err    error // src failed
	closed bool  // h closed it
}

func (t *teeBody) Read(p []byte) (int, error) {
	if t.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return t.read(p)
}

func (t *teeBody) read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if n > 0 && !t.over {
		if int64(t.buf.Len()+n) > t.max {
			t.over, t.buf = true, bytes.Buffer{}
		} else {
			t.buf.Write(p[:n])
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		t.eof = true
	case err != nil && t.err == nil:
		t.err = err
	}
	return n, err
}

// Close ends h's reading but leaves src open: Wrap may still have to read
// its rest, and net/http closes it after the handler.
func (t *teeBody) Close() error {
	t.closed = true
	return nil
}

// rest reads what h left of the body and returns all of it, or the
// outcome that makes the request not replayable: too_large, body_error.
func (t *teeBody) rest() ([]byte, string) {
	if t == nil {
		return nil, ""
	}
	buf := make([]byte, 32<<10)
	for !t.eof && !t.over && t.err == nil {
		_, _ = t.read(buf)
	}
	switch {
	case t.over:
		return nil, "too_large"
	case t.err != nil:
		return nil, "body_error"
	}
	return t.buf.Bytes(), ""
}
