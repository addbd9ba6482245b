package miosatest

import (
	"fmt"

	"github.com/miosa-ai/miosa-go/internal/fakeapi"
)

// The fault types are declared once, by the engine behind Server; these
// aliases are their public names.

// Drop says when a faulted request's connection is cut: NoDrop,
// DropBeforeAct, DropAfterAct or DropMidAnswer.
type Drop = fakeapi.Drop

const (
	// NoDrop answers normally.
	NoDrop = fakeapi.NoDrop
	// DropBeforeAct closes the connection without acting on the request:
	// nothing happened on the server.
	DropBeforeAct = fakeapi.DropBeforeAct
	// DropAfterAct acts on the request (the computer is created, the
	// command runs), then closes the connection without answering, as when
	// an answer is lost on the way back.
	DropAfterAct = fakeapi.DropAfterAct
	// DropMidAnswer acts on the request and sends the answer's headers and
	// the first half of its body, then closes the connection, as when a
	// download is cut off halfway.
	DropMidAnswer = fakeapi.DropMidAnswer
)

// StreamFault changes how the readiness stream behaves: StreamNormal,
// StreamStall or StreamEndWithoutVerdict.
type StreamFault = fakeapi.StreamFault

const (
	// StreamNormal is the stream as the server sends it.
	StreamNormal = fakeapi.StreamNormal
	// StreamStall sends headers and ": keepalive" heartbeats but never a
	// verdict, until the client goes away or the server closes.
	StreamStall = fakeapi.StreamStall
	// StreamEndWithoutVerdict sends headers and one heartbeat, then ends the
	// response cleanly without "ready" or "timeout".
	StreamEndWithoutVerdict = fakeapi.StreamEndWithoutVerdict
)

// Always, as Fault.Times, applies a fault to every matching request until
// ClearFaults.
const Always = fakeapi.Always

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
type Fault = fakeapi.Fault

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
