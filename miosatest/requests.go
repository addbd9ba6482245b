package miosatest

import (
	"net/http"
	"net/url"
	"time"

	"github.com/miosa-ai/miosa-go/internal/fakeapi"
)

// Request is one request the server received.
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
	// Body is the request body as sent (nil when there was none).
	Body []byte
	// Status is the status the server answered; 0 while the request is
	// still being served (an open readiness stream answers 200 at once) or
	// when its connection was dropped.
	Status int
	// Time is when the request arrived.
	Time time.Time
}

// IdempotencyKey returns the request's Idempotency-Key header.
func (r Request) IdempotencyKey() string { return r.Header.Get("Idempotency-Key") }

// Requests returns a copy of every request received so far (including those
// refused with 401 and those a fault applied to), oldest first.
func (s *Server) Requests() []Request {
	return convertRequests(s.engine.Requests())
}

// RequestsTo returns the requests whose method and path match, with the
// path syntax of Fault ("*" matches one segment); "" matches anything.
//
//	execs := srv.RequestsTo("POST", "/computers/*/exec")
func (s *Server) RequestsTo(method, path string) []Request {
	return convertRequests(s.engine.RequestsTo(method, path))
}

// ResetRequests forgets the requests received so far, e.g. after a test's
// setup. Sequence numbers keep counting.
func (s *Server) ResetRequests() { s.engine.ResetRequests() }

func convertRequests(in []fakeapi.Request) []Request {
	out := make([]Request, len(in))
	for i, r := range in {
		out[i] = Request(r)
	}
	return out
}
