package miosatest

import (
	"fmt"
	"net/http"
	"time"

	"github.com/miosa-ai/miosa-go/internal/fakeapi"
)

// Drop says when a faulted request's connection is cut.
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
)

// StreamFault changes how the readiness stream behaves.
type StreamFault int

const (
	// StreamNormal is the stream as the server sends it.
	StreamNormal StreamFault = iota
	// StreamStall sends headers and ": keepalive" heartbeats but never a
	// verdict, until the client goes away or the server closes.
	StreamStall
	// StreamEndWithoutVerdict sends headers and one heartbeat, then ends the
	// response cleanly without "ready" or "timeout".
	StreamEndWithoutVerdict
)

// Always, as Fault.Times, applies a fault to every matching request until
// ClearFaults.
const Always = -1

// Fault is a misbehaviour the server applies to the next requests that
// match it. A fault does one thing: answer with Status, Drop the
// connection, or change the readiness Stream; Delay may come before any of
// them, or alone.
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
	// the next one only, Always means every one until ClearFaults.
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

// Inject adds a fault. Faults are matched in the order they were injected;
// each matching request uses up one application of the first fault that
// matches it. Inject panics on a fault that cannot be applied (two actions,
// a bad status, a negative delay), as http.ServeMux does on a bad pattern.
func (s *Server) Inject(f Fault) {
	err := s.engine.Inject(fakeapi.Fault{
		Method: f.Method, Path: f.Path, Times: f.Times, Delay: f.Delay,
		Status: f.Status, Body: f.Body, RetryAfter: f.RetryAfter, Header: f.Header,
		Drop: fakeapi.Drop(f.Drop), Stream: fakeapi.StreamFault(f.Stream),
	})
	if err != nil {
		panic(fmt.Sprintf("miosatest: Inject: %v", err))
	}
}

// ClearFaults removes every fault that is not used up yet.
func (s *Server) ClearFaults() { s.engine.ClearFaults() }
