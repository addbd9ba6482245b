package miosa

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// The servers of the package's tests: a handler that records requests,
// served on loopback or in memory.

// recordedRequest is what a test server saw of one request.
type recordedRequest struct {
	Method     string
	RequestURI string // as received: the escaped path and the query
	Path       string // escaped, as on the wire
	Query      string // raw
	Header     http.Header
	Body       []byte
	At         time.Time
	Deadline   time.Time // the request context's, when it has one
}

// recorder is an http.Handler that records every request and answers with
// respond, which gets the 1-based number of the request. It is the one
// request recorder of this package's tests, and of package miosa_test's
// through export_test.go.
type recorder struct {
	mu      sync.Mutex
	reqs    []recordedRequest
	respond func(w http.ResponseWriter, r *http.Request, n int)
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	deadline, _ := r.Context().Deadline()
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, recordedRequest{
		Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, At: time.Now(), Deadline: deadline,
	})
	n := len(rec.reqs)
	rec.mu.Unlock()
	if rec.respond != nil {
		rec.respond(w, r, n)
	}
}

func (rec *recorder) requests() []recordedRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recordedRequest(nil), rec.reqs...)
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.reqs)
}

// newRecordingServer starts a loopback server that records requests and
// answers with respond; its base URL ends in /api/v1 like the real API.
func newRecordingServer(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) (*recorder, string) {
	t.Helper()
	rec := &recorder{respond: respond}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv.URL + "/api/v1"
}

// roundTripFunc is an http.RoundTripper made of a function, for tests that
// must run inside a synctest bubble or fake transport failures.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// inMemory serves requests with h without any network, so it can run inside
// a synctest bubble where the clock only moves when everything waits.
func inMemory(h http.Handler) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		// Make the client request look like one a server received.
		in := r.Clone(r.Context())
		in.RequestURI = r.URL.RequestURI()
		if in.Body == nil {
			in.Body = http.NoBody
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, in)
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		return w.Result(), nil
	})}
}
