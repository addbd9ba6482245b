package miosatest

import "github.com/miosa-ai/miosa-go/internal/fakeapi"

// Request is one request the server received: its sequence number Seq,
// the X-Request-ID the server answered with (ID), Method, Path (relative to
// the base URL), Query, Header, Body, the Status answered (0 while still
// being served or when the connection was dropped) and its arrival Time.
// It is declared once, by the engine behind Server.
type Request = fakeapi.Request

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
