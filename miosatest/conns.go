package miosatest

import (
	"net"
	"net/http"
	"sync"
)

// Conns counts the connections the server accepted and the requests it
// served at once, so that a test can see what a fleet of calls costs the
// network: how many connections a burst of calls opened, whether a
// finished stream's connection was reused, how many HTTP/2 streams were
// open together.
type Conns struct {
	// Accepted is how many connections the server has accepted since it
	// started (or since ResetConns), including those closed since.
	Accepted int
	// Open is how many of them are open now.
	Open int
	// MaxOpen is the most connections that were open at once.
	MaxOpen int
	// Streams is how many requests are being served now: HTTP/2 streams, or
	// HTTP/1.1 requests (one per connection). An open readiness stream is
	// one until it ends.
	Streams int
	// MaxStreams is the most requests that were served at once.
	MaxStreams int
}

// connCounter keeps a server's Conns. Its hook sees every connection's
// state changes; its handler wraps the engine to count requests.
type connCounter struct {
	mu     sync.Mutex
	counts Conns
}

// track is an http.Server ConnState hook: a new connection is accepted and
// open until it is closed or hijacked (a dropped connection is hijacked,
// then closed by the fault that dropped it).
func (c *connCounter) track(_ net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch state {
	case http.StateNew:
		c.counts.Accepted++
		c.counts.Open++
		c.counts.MaxOpen = max(c.counts.MaxOpen, c.counts.Open)
	case http.StateClosed, http.StateHijacked:
		c.counts.Open--
	}
}

// serving wraps h to count the requests in progress.
func (c *connCounter) serving(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.counts.Streams++
		c.counts.MaxStreams = max(c.counts.MaxStreams, c.counts.Streams)
		c.mu.Unlock()
		defer func() {
			c.mu.Lock()
			c.counts.Streams--
			c.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

func (c *connCounter) snapshot() Conns {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts
}

// reset starts the totals and the maxima again from what is open now.
func (c *connCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts = Conns{
		Accepted: c.counts.Open, Open: c.counts.Open, MaxOpen: c.counts.Open,
		Streams: c.counts.Streams, MaxStreams: c.counts.Streams,
	}
}

// Conns returns the server's connection and stream counts so far.
func (s *Server) Conns() Conns { return s.conns.snapshot() }

// ResetConns starts the counts again: Accepted and the maxima count from
// what is open now, as if those connections had just been accepted.
func (s *Server) ResetConns() { s.conns.reset() }

// WithMaxConcurrentStreams sets how many requests one HTTP/2 connection
// may carry at once (the server's SETTINGS_MAX_CONCURRENT_STREAMS); a
// client with more requests in flight must open another connection or
// wait. It matters only with WithTLS. Default: Go's HTTP/2 server default
// (250). Real servers and load balancers commonly allow 100 to 256.
func WithMaxConcurrentStreams(n int) Option {
	return func(c *config) { c.maxStreams = n }
}

// WithoutHTTP2 makes a WithTLS server speak HTTP/1.1 only, as a server or
// proxy without HTTP/2 does: every request in flight then needs a
// connection of its own, and an open readiness stream holds one.
func WithoutHTTP2() Option {
	return func(c *config) { c.noHTTP2 = true }
}
