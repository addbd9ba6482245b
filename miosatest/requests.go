package miosatest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Request is one request the server received: its sequence number Seq,
// the X-Request-ID the server answered with (ID), Method, Path (relative to
// the base URL), Query, Header, Body, the Status answered (0 while still
// being served or when the connection was dropped) and its arrival Time.
type Request struct {
	// Seq numbers requests from 1 in the order they arrived.
	Seq int
	// ID is the X-Request-ID the server answered with.
	ID     string
	Method string
	// Path is relative to the base URL, e.g. "/computers/cmp_1/exec".
	Path   string
	Query  url.Values
	Header http.Header
	// Body is the request body as sent (nil when there was none, and for a
	// file upload, whose body streams to disk: see Parts).
	Body []byte
	// Parts are the parts of a file upload's multipart form, in the order
	// the server read them.
	Parts []FormPart
	// Status is the status the server answered; 0 while the request is
	// still being served (an open readiness stream answers 200 at once) or
	// when its connection was dropped.
	Status int
	// Time is when the request arrived.
	Time time.Time
}

// IdempotencyKey returns the request's Idempotency-Key header.
func (r Request) IdempotencyKey() string { return r.Header.Get("Idempotency-Key") }

// requestLog keeps every request in arrival order.
type requestLog struct {
	mu      sync.Mutex
	last    int // the last sequence number handed out
	entries []*Request
}

func (l *requestLog) add(r *http.Request, rel string, body []byte) *Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(body) == 0 {
		body = nil
	}
	l.last++
	entry := &Request{
		Seq:    l.last,
		ID:     fmt.Sprintf("req_%06d", l.last),
		Method: r.Method,
		Path:   rel,
		Query:  r.URL.Query(),
		Header: r.Header.Clone(),
		Body:   bytes.Clone(body),
		Time:   time.Now(),
	}
	l.entries = append(l.entries, entry)
	return entry
}

func (l *requestLog) finish(entry *Request, status int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	entry.Status = status
}

// Requests returns a copy of every request received so far, oldest first.
func (e *engine) Requests() []Request {
	return e.log.snapshot("", "")
}

// RequestsTo returns the requests whose method and path match, with the
// fault path syntax ("*" matches one segment); "" matches anything.
func (e *engine) RequestsTo(method, path string) []Request {
	return e.log.snapshot(method, path)
}

// ResetRequests forgets every request logged so far. Sequence numbers go on
// from where they were.
func (e *engine) ResetRequests() {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	e.log.entries = e.log.entries[:0:0]
}

func (l *requestLog) snapshot(method, path string) []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Request, 0, len(l.entries))
	for _, entry := range l.entries {
		if method != "" && !strings.EqualFold(method, entry.Method) {
			continue
		}
		if path != "" && !matchPath(path, entry.Path) {
			continue
		}
		c := *entry
		c.Query = cloneValues(entry.Query)
		c.Header = entry.Header.Clone()
		c.Body = bytes.Clone(entry.Body)
		c.Parts = slices.Clone(entry.Parts)
		out = append(out, c)
	}
	return out
}

func cloneValues(v url.Values) url.Values {
	return url.Values(http.Header(v).Clone())
}

// Requests returns a copy of every request received so far (including those
// refused with 401 and those a fault applied to), oldest first.
func (s *Server) Requests() []Request {
	return s.engine.Requests()
}

// RequestsTo returns the requests whose method and path match, with the
// path syntax of Fault ("*" matches one segment); "" matches anything.
//
//	execs := srv.RequestsTo("POST", "/computers/*/exec")
func (s *Server) RequestsTo(method, path string) []Request {
	return s.engine.RequestsTo(method, path)
}

// ResetRequests forgets the requests received so far, e.g. after a test's
// setup. Sequence numbers keep counting.
func (s *Server) ResetRequests() { s.engine.ResetRequests() }
