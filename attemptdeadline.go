package miosa

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// attemptDeadline is the context of one attempt of a unary call whose
// request timeout ends it before the caller's context would. It reports
// its deadline from the start, but arms it (a context.WithDeadline, with
// its timer) only when something first asks for Done: a deadline can act
// only through Done, so a transport that never watches the context (an
// in-memory one) is spared the timer, which is most of what such a call
// costs beyond the caller's own work. net/http's transport asks at once.
//
// Done, Err, Value and Deadline answer as the armed context does once it
// exists, and as the caller's context (with the deadline) before.
type attemptDeadline struct {
	parent   context.Context
	deadline time.Time
	armed    atomic.Value // the armed context.Context, once Done was asked for
	ended    atomic.Bool
	mu       sync.Mutex         // serialises arming with end
	cancel   context.CancelFunc // the armed context's; guarded by mu
}

// withAttemptDeadline returns parent bounded by deadline, for one attempt
// sent through transport, and the function that ends it. net/http's own
// transport watches Done at once, so its attempts get a plain
// context.WithDeadline: arming one lazily would only add a step (about
// 0.2 µs). Any other transport gets an attemptDeadline.
func withAttemptDeadline(parent context.Context, deadline time.Time, transport http.RoundTripper) (context.Context, func()) {
	switch transport.(type) {
	case nil, *http.Transport:
		return context.WithDeadline(parent, deadline)
	}
	a := newAttemptDeadline(parent, deadline)
	return a, a.end
}

func newAttemptDeadline(parent context.Context, deadline time.Time) *attemptDeadline {
	return &attemptDeadline{parent: parent, deadline: deadline}
}

func (a *attemptDeadline) Deadline() (time.Time, bool) { return a.deadline, true }

// armedContext returns the armed context, or nil before Done.
func (a *attemptDeadline) armedContext() context.Context {
	armed, _ := a.armed.Load().(context.Context)
	return armed
}

func (a *attemptDeadline) Done() <-chan struct{} {
	if armed := a.armedContext(); armed != nil {
		return armed.Done()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	armed := a.armedContext()
	if armed == nil {
		armed, a.cancel = context.WithDeadline(a.parent, a.deadline)
		a.armed.Store(armed)
		if a.ended.Load() {
			// Asked for after the attempt ended (by something that
			// outlived it): the context is over, and no timer is left.
			a.cancel()
		}
	}
	return armed.Done()
}

func (a *attemptDeadline) Err() error {
	if armed := a.armedContext(); armed != nil {
		return armed.Err()
	}
	if err := a.parent.Err(); err != nil {
		return err
	}
	if a.ended.Load() {
		return context.Canceled
	}
	if !time.Now().Before(a.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value answers from the armed context once there is one: the context
// package finds a parent's cancellation through Value, and a child derived
// from this context (as net/http derives one) must attach to the context
// whose Done it was given, or it would need a goroutine to watch it.
func (a *attemptDeadline) Value(key any) any {
	if armed := a.armedContext(); armed != nil {
		return armed.Value(key)
	}
	return a.parent.Value(key)
}

// end ends the attempt: an armed deadline is cancelled, releasing its
// timer, and Done called later returns a closed channel.
func (a *attemptDeadline) end() {
	a.ended.Store(true)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		a.cancel()
	}
}
