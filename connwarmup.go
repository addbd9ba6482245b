package miosa

import (
	"context"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// connWarmup makes a burst of calls to an https origin the client has no
// connection to share the first one. Go's HTTP client dials a connection
// for every request that finds none idle, before it knows whether the
// server speaks HTTP/2: 200 goroutines calling at once open 200 TLS
// connections, of which HTTP/2 keeps one and closes the rest. (Configuring
// golang.org/x/net/http2 on the transport changes nothing here: it, too,
// learns the protocol only from a finished handshake.) So while an origin
// is cold, one call leads: it connects, and the calls that arrive
// meanwhile wait until it has its answer's headers, or, if its answer is
// slow, for as long again as its connection took to set up (at least
// minLeadHold) — by then an HTTP/2 server has said how many streams it
// allows, and the calls multiplex on the one connection. Over HTTP/1.1
// they then dial their own, having waited one connection set-up. This
// works with any transport, but only for a burst that finds no
// connection; once the connections are at the server's stream limit, the
// SDK's default transport dials one at a time by itself (transport.go).
//
// An origin is warm for warmFor after a leader had its connection; after
// that the next call leads again, which costs nothing when a connection
// is still pooled (it has it at once), and holds the next burst when the
// pool has emptied meanwhile. Plain-http origins are never held: they do
// not speak HTTP/2.
type connWarmup struct {
	// home is the warm-up of the Client's own base URL, homeURL (nil for
	// plain http); base URLs given per call have theirs in origins.
	homeURL string
	home    *originWarmup
	origins sync.Map // base URL → *originWarmup
}

func (w *connWarmup) init(baseURL string) {
	w.homeURL = baseURL
	if isHTTPS(baseURL) {
		w.home = &originWarmup{}
	}
}

func isHTTPS(baseURL string) bool {
	return len(baseURL) > 6 && strings.EqualFold(baseURL[:6], "https:")
}

// warmFor is how long an origin counts as warm after a call had a
// connection to it.
const warmFor = time.Second

// minLeadHold is the least the rest wait after the leader has its
// connection, when its answer is slow: enough for a busy machine to read
// the server's settings.
const minLeadHold = 100 * time.Millisecond

// originWarmup is the warm-up of one origin.
type originWarmup struct {
	warmUntil atomic.Int64 // Unix nanoseconds
	mu        sync.Mutex
	leading   chan struct{} // open while a leader connects; closed to let the rest go
}

// enter returns at once (with now) when calls to baseURL may go; returns a
// lead when this call must connect first; waits for the leader otherwise,
// and returns when it stopped waiting. It fails only when ctx ends while
// it waits.
func (w *connWarmup) enter(ctx context.Context, baseURL string, now time.Time) (time.Time, *connLead, error) {
	o := w.home
	if baseURL != w.homeURL {
		o = w.origin(baseURL)
	}
	if o == nil || now.UnixNano() < o.warmUntil.Load() {
		return now, nil, nil
	}
	o.mu.Lock()
	if leading := o.leading; leading != nil {
		o.mu.Unlock()
		select {
		case <-leading:
			return time.Now(), nil, nil
		case <-ctx.Done():
			return now, nil, ctx.Err()
		}
	}
	lead := &connLead{origin: o, done: make(chan struct{}), start: now}
	o.leading = lead.done
	o.mu.Unlock()
	return now, lead, nil
}

// origin returns the warm-up of a base URL other than the Client's own;
// nil for plain http.
func (w *connWarmup) origin(baseURL string) *originWarmup {
	if !isHTTPS(baseURL) {
		return nil
	}
	if o, ok := w.origins.Load(baseURL); ok {
		return o.(*originWarmup)
	}
	o, _ := w.origins.LoadOrStore(baseURL, &originWarmup{})
	return o.(*originWarmup)
}

// connLead is a call that connects to a cold origin while others wait.
type connLead struct {
	origin *originWarmup
	done   chan struct{}
	start  time.Time
	once   sync.Once
	mu     sync.Mutex
	timer  *time.Timer // lets the rest go if the answer is slow
	ended  bool
}

// trace returns ctx with the hook that sees the leader's connection.
func (l *connLead) trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: l.gotConn})
}

// gotConn marks the origin warm and gives the rest as long again as the
// connection took (at least minLeadHold) before they go anyway.
func (l *connLead) gotConn(httptrace.GotConnInfo) {
	now := time.Now()
	l.origin.warmUntil.Store(now.Add(warmFor).UnixNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ended && l.timer == nil {
		l.timer = time.AfterFunc(max(now.Sub(l.start), minLeadHold), func() { l.release(false) })
	}
}

// release lets the waiting calls go, once; the leader calls it when its
// attempt is over, saying whether it had an answer (which came over a
// connection, whether or not the transport reported it).
func (l *connLead) release(answered bool) {
	if l == nil {
		return
	}
	if answered {
		l.origin.warmUntil.Store(time.Now().Add(warmFor).UnixNano())
	}
	l.once.Do(func() {
		l.mu.Lock()
		l.ended = true
		if l.timer != nil {
			l.timer.Stop()
		}
		l.mu.Unlock()
		l.origin.mu.Lock()
		l.origin.leading = nil
		l.origin.mu.Unlock()
		close(l.done)
	})
}
