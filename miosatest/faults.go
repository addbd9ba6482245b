package miosatest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miosa-ai/miosa-go/internal/retry"
)

// Drop says when a faulted request's connection is cut: NoDrop,
// DropBeforeAct, DropAfterAct or DropMidAnswer.
type Drop int

const (
	// NoDrop answers normally.
	NoDrop Drop = iota
	// DropBeforeAct closes the connection without acting on the request:
	// nothing happened on the server.
	DropBeforeAct
	// DropAfterAct acts on the request (the computer is created, the
	// command runs), then closes the connection without answering, as when
	// an answer is lost on the way back.
	DropAfterAct
	// DropMidAnswer acts on the request and sends the answer's headers and
	// the first half of its body, then closes the connection, as when a
	// download is cut off halfway.
	DropMidAnswer
)

// Always, as Fault.Times, applies a fault to every matching request until
// ClearFaults.
const Always = -1

// Fault is a misbehaviour the server applies to the next requests that
// match it. A fault does one thing: answer with Status (with Body,
// RetryAfter and Header), Drop the connection, or change the readiness
// Stream; Delay may come before any of them, or alone. Method and Path
// ("*" matches one segment) choose the requests, Times how many: 0 the next
// one, Always every one until ClearFaults.
//
//	srv.Inject(miosatest.Fault{
//		Method: "POST", Path: "/computers/*/exec",
//		Status: 503, RetryAfter: time.Second, Times: 2,
//	})
type Fault struct {
	// Method matches the request method; "" matches any.
	Method string
	// Path matches the request path relative to the base URL, segment by
	// segment; "*" matches any one segment, e.g. "/computers/*/exec".
	// "" matches any path.
	Path string
	// Times is how many matching requests the fault applies to: 0 means
	// the next one only, Always (any negative number) every one until the
	// faults are cleared.
	Times int
	// Delay holds each matching request this long before anything else
	// happens (the request is then served normally unless another field
	// says otherwise). It ends early if the client goes away.
	Delay time.Duration
	// Status, when non-zero, answers with this status without acting on
	// the request.
	Status int
	// Body is the answer's body when Status is set. Empty means the API's
	// error envelope, {"error":{"code":...,"message":...}}, with the code
	// that fits Status (e.g. RATE_LIMITED for 429). Any bytes may be given,
	// to reproduce other error shapes or non-JSON bodies.
	Body []byte
	// RetryAfter, when positive, is sent as a Retry-After header (whole
	// seconds, rounded up).
	RetryAfter time.Duration
	// Header is added to the answer.
	Header http.Header
	// Drop cuts the connection instead of answering.
	Drop Drop
	// Stream changes the readiness stream; such a fault matches only
	// GET /sandboxes/{id}/readiness/stream, which is also its default Path.
	Stream StreamFault
}

// streamPath is the readiness stream's pattern, the default path of a
// stream fault.
const streamPath = "/sandboxes/*/readiness/stream"

// validate reports what is wrong with f, and fills in what a stream fault
// implies.
func (f *Fault) validate() error {
	actions := 0
	for _, set := range []bool{f.Status != 0, f.Drop != NoDrop, f.Stream != StreamNormal} {
		if set {
			actions++
		}
	}
	switch {
	case actions > 1:
		return errors.New("a fault sets at most one of Status, Drop and Stream")
	case actions == 0 && f.Delay <= 0:
		return errors.New("a fault needs a Status, Drop, Stream or Delay")
	case f.Status != 0 && (f.Status < 100 || f.Status > 599):
		return fmt.Errorf("fault status %d is not an HTTP status", f.Status)
	case f.Delay < 0 || f.RetryAfter < 0:
		return errors.New("fault Delay and RetryAfter must not be negative")
	case f.Path != "" && !strings.HasPrefix(f.Path, "/"):
		return fmt.Errorf("fault path %q must start with /, relative to the base URL (e.g. /computers/*/exec)", f.Path)
	case f.Drop < NoDrop || f.Drop > DropMidAnswer || f.Stream < StreamNormal || f.Stream > StreamEndWithoutVerdict:
		return errors.New("unknown Drop or Stream value")
	}
	if f.Stream != StreamNormal {
		if f.Path == "" {
			f.Path = streamPath
		}
		if !matchPath(streamPath, f.Path) {
			return fmt.Errorf("a stream fault applies to %s, not %s", streamPath, f.Path)
		}
	}
	return nil
}

// faultList holds the injected faults, first injected first matched.
type faultList struct {
	mu     sync.Mutex
	faults []*pendingFault
}

type pendingFault struct {
	Fault
	left int // < 0: unlimited
}

// Inject adds f after validating it.
func (e *engine) Inject(f Fault) error {
	if err := f.validate(); err != nil {
		return err
	}
	f.Body = bytes.Clone(f.Body)
	f.Header = f.Header.Clone()
	left := f.Times
	if left == 0 {
		left = 1
	}
	e.faults.mu.Lock()
	defer e.faults.mu.Unlock()
	e.faults.faults = append(e.faults.faults, &pendingFault{Fault: f, left: left})
	return nil
}

// ClearFaults removes every fault not yet used up.
func (e *engine) ClearFaults() {
	e.faults.mu.Lock()
	defer e.faults.mu.Unlock()
	e.faults.faults = nil
}

// take returns the first fault matching the request and counts it used.
func (l *faultList) take(method, path string) (Fault, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range l.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, method) {
			continue
		}
		if f.Stream != StreamNormal && method != http.MethodGet {
			continue
		}
		if f.Path != "" && !matchPath(f.Path, path) {
			continue
		}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				l.faults = append(l.faults[:i:i], l.faults[i+1:]...)
			}
		}
		return f.Fault, true
	}
	return Fault{}, false
}

// matchPath reports whether path matches pattern segment by segment, "*"
// matching any one segment.
func matchPath(pattern, path string) bool {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ps[i] != "*" && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

// applyFault carries out f on a request that matched it.
func (e *engine) applyFault(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.Delay > 0 {
		ctx, cancel := e.requestContext(r)
		held := retry.Sleep(ctx, f.Delay) == nil
		cancel()
		if !held {
			// A server shutting down answers nothing to what it held.
			dropIfEnded(e.closeCtx, w)
			return
		}
	}
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	switch {
	case f.Status != 0:
		writeFaultAnswer(w, f)
	case f.Drop == DropBeforeAct:
		dropConnection(w)
	case f.Drop == DropAfterAct:
		// The answer goes nowhere: the request is acted on, then the
		// connection is cut as if the answer had been lost on the way.
		e.route(httptest.NewRecorder(), r)
		dropConnection(w)
	case f.Drop == DropMidAnswer:
		half := &halfAnswer{ResponseWriter: w}
		e.route(half, r)
		half.cut()
	case f.Stream != StreamNormal:
		e.route(w, r.WithContext(withStreamFault(r.Context(), f.Stream)))
	default:
		e.route(w, r)
	}
}

func writeFaultAnswer(w http.ResponseWriter, f Fault) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(f.RetryAfter))
	}
	body := f.Body
	if len(body) == 0 {
		body = errorBody(codeFor(f.Status), "injected fault: "+http.StatusText(f.Status))
	}
	if json.Valid(body) {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(f.Status)
	_, _ = w.Write(body)
}

// codeFor is the error code the API uses for a status.
func codeFor(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "INVALID"
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusPaymentRequired:
		return "INSUFFICIENT_CREDITS"
	case http.StatusForbidden:
		return "FORBIDDEN"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "CONFLICT"
	case http.StatusTooManyRequests:
		return "RATE_LIMITED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return ""
}

// dropIfEnded cuts the connection of a request whose command's machine
// stopped, or whose server closed, under it (ctx says which ended): no
// answer, as when a real machine goes away mid-command.
func dropIfEnded(ctx context.Context, w http.ResponseWriter) {
	if ctx.Err() != nil {
		dropConnection(w)
	}
}

// dropConnection closes the client's connection without a response. Over
// HTTP/1 the connection is hijacked and closed; where hijacking is not
// possible (HTTP/2) the handler aborts, which resets the stream.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// halfAnswer passes on an answer's headers and the first half of its body
// (by its Content-Length), then cuts the connection.
type halfAnswer struct {
	http.ResponseWriter
	wroteHeader bool
	left        int64 // body bytes still to pass on
	dropped     bool
}

func (h *halfAnswer) WriteHeader(status int) {
	if h.wroteHeader {
		return
	}
	h.wroteHeader = true
	length, _ := strconv.ParseInt(h.Header().Get("Content-Length"), 10, 64)
	h.left = length / 2
	h.ResponseWriter.WriteHeader(status)
}

func (h *halfAnswer) Write(p []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	if h.dropped {
		return 0, errDropped
	}
	if int64(len(p)) <= h.left {
		h.left -= int64(len(p))
		return h.ResponseWriter.Write(p)
	}
	n, _ := h.ResponseWriter.Write(p[:h.left])
	h.cut()
	return n, errDropped
}

// cut sends what was written so far and closes the connection, once.
func (h *halfAnswer) cut() {
	if h.dropped {
		return
	}
	h.dropped = true
	_ = http.NewResponseController(h.ResponseWriter).Flush()
	dropConnection(h.ResponseWriter)
}

func (h *halfAnswer) Unwrap() http.ResponseWriter { return h.ResponseWriter }

var errDropped = errors.New("miosatest: the connection was cut by a fault")

// Inject adds a fault. Faults are matched in the order they were injected;
// each matching request uses up one application of the first fault that
// matches it. Inject panics on a fault that cannot be applied (two actions,
// a bad status, a negative delay), as http.ServeMux does on a bad pattern.
func (s *Server) Inject(f Fault) {
	if err := s.engine.Inject(f); err != nil {
		panic(fmt.Sprintf("miosatest: Inject: %v", err))
	}
}

// ClearFaults removes every fault that is not used up yet.
func (s *Server) ClearFaults() { s.engine.ClearFaults() }

// retryAfterSeconds is d as a Retry-After header's value: whole seconds,
// rounded up.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
