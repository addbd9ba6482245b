package miosa

import (
	"context"
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
	armed    atomic.Pointer[armedDeadline]
	ended    atomic.Bool
	mu       sync.Mutex // serialises arming with end
}

type armedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newAttemptDeadline(parent context.Context, deadline time.Time) *attemptDeadline {
	return &attemptDeadline{parent: parent, deadline: deadline}
}

func (a *attemptDeadline) Deadline() (time.Time, bool) { return a.deadline, true }

func (a *attemptDeadline) Done() <-chan struct{} {
	if armed := a.armed.Load(); armed != nil {
		return armed.ctx.Done()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	armed := a.armed.Load()
	if armed == nil {
		ctx, cancel := context.WithDeadline(a.parent, a.deadline)
		armed = &armedDeadline{ctx: ctx, cancel: cancel}
		a.armed.Store(armed)
		if a.ended.Load() {
			// Asked for after the attempt ended (by something that
			// outlived it): the context is over, and no timer is left.
			cancel()
		}
	}
	return armed.ctx.Done()
}

func (a *attemptDeadline) Err() error {
	if armed := a.armed.Load(); armed != nil {
		return armed.ctx.Err()
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
	if armed := a.armed.Load(); armed != nil {
		return armed.ctx.Value(key)
	}
	return a.parent.Value(key)
}

// end ends the attempt: an armed deadline is cancelled, releasing its
// timer, and Done called later returns a closed channel.
func (a *attemptDeadline) end() {
	a.ended.Store(true)
	a.mu.Lock()
	armed := a.armed.Load()
	a.mu.Unlock()
	if armed != nil {
		armed.cancel()
	}
}
