package miosa

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The deadlines an attempt runs under: a unary call's request timeout
// (attemptDeadline, or a plain context.WithDeadline), a streamed call's wait
// for its headers (headerDeadline), and an upload's stall limit
// (uploadProgress). A streamed body itself is bounded by the caller's
// context alone.

// attemptDeadline is the context of one attempt of a unary call whose
// request timeout ends it before the caller's context would. It reports
// its deadline from the start, but arms it (a context.WithDeadline, with
// its timer) only when something first asks for Done: a deadline can act
// only through Done, so a transport that never watches the context (an
// in-memory one) is spared the timer, which is most of what such a call
// costs beyond the caller's own work.
//
// Done, Err, Value and Deadline answer as the armed context does once it
// exists, and as the caller's context (with the deadline) before.
type attemptDeadline struct {
	parent   context.Context
	deadline time.Time
	armed    atomic.Value // the armed context.Context, once Done was asked for
	ended    atomic.Bool
	err      atomic.Pointer[error] // the first error Err returned, returned ever after
	mu       sync.Mutex            // serialises arming with end
	cancel   context.CancelFunc    // the armed context's; guarded by mu
}

// withAttemptDeadline returns parent bounded by deadline, for one attempt
// sent through transport, and the function that ends it. net/http's own
// transport and the SDK's default one (whose HTTP/2 half is
// golang.org/x/net/http2's) watch Done at once, so their attempts get a plain
// context.WithDeadline: arming one lazily would only add a step (about
// 0.2 µs). Any other transport gets an attemptDeadline.
func withAttemptDeadline(parent context.Context, deadline time.Time, transport http.RoundTripper) (context.Context, func()) {
	switch transport.(type) {
	case nil, *http.Transport, *defaultTransport:
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

// Err keeps to the first error it returned, as the context contract asks:
// before arming, the deadline passing and the parent ending are seen in
// the order Err is called, which the armed context may not repeat.
func (a *attemptDeadline) Err() error {
	if first := a.err.Load(); first != nil {
		return *first
	}
	var err error
	if armed := a.armedContext(); armed != nil {
		err = armed.Err()
	} else if err = a.parent.Err(); err == nil {
		switch {
		case a.ended.Load():
			err = context.Canceled
		case !time.Now().Before(a.deadline):
			err = context.DeadlineExceeded
		}
	}
	if err == nil {
		return nil
	}
	a.err.CompareAndSwap(nil, &err)
	return *a.err.Load()
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

// transferStallLimit ends a transfer (an upload, or a download) that makes
// no progress for this long: the connection is open but nothing moves.
const transferStallLimit = 30 * time.Second

// errUploadStalled is an upload whose body was not read for
// transferStallLimit: the server stopped taking bytes.
var errUploadStalled = fmt.Errorf("the server took no bytes of the upload for %s: %w", transferStallLimit, context.DeadlineExceeded)

// errNoHeaders is the attempt deadline of a streamed answer passing before
// its headers came.
var errNoHeaders = fmt.Errorf("no answer within the request timeout: %w", context.DeadlineExceeded)

// headerDeadline is the attempt deadline of a streamed call: once started,
// it ends the attempt unless stopped within timeout.
type headerDeadline struct {
	timeout time.Duration
	expire  func()
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool
}

// start starts the deadline, unless it was started or stopped before.
func (d *headerDeadline) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer == nil && !d.stopped {
		d.timer = time.AfterFunc(d.timeout, d.expire)
	}
}

// stop ends the deadline, reporting false if it had already passed.
func (d *headerDeadline) stop() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	return d.timer == nil || d.timer.Stop()
}

// uploadProgress is an upload's request body as the transport reads it.
// The stall timer runs only while the transport is not asking for bytes (a
// slow reader of the caller's is not the server stalling): it stops during
// each read and restarts after it. Once the body has been read to the end,
// the timer stops for good and done starts the wait for the answer.
type uploadProgress struct {
	io.ReadCloser
	stall *time.Timer
	done  func()
	once  sync.Once
	sent  atomic.Int64 // bytes the transport has taken
	whole atomic.Bool  // the body was read to its end
}

func (b *uploadProgress) Read(p []byte) (int, error) {
	b.stall.Stop()
	n, err := b.ReadCloser.Read(p)
	b.sent.Add(int64(n))
	if err != io.EOF {
		b.stall.Reset(transferStallLimit)
		return n, err
	}
	b.whole.Store(true)
	b.once.Do(b.done)
	return n, err
}

// errAnsweredEarly is a success answered to an upload before its body was
// read to its end: the transport reads the last byte (and the end) before
// the server can have them, so the server cannot have stored the whole
// form, whatever its status says.
var errAnsweredEarly = errors.New("the server answered before the whole upload was sent")

// answeredEarly returns errAnsweredEarly for a success with status that
// came before the transport took the body's last byte, and nil otherwise.
// With a declared length the transport takes exactly length bytes and
// looks for the end only afterwards, possibly after the answer came: the
// last byte is then the mark, not the end.
func (b *uploadProgress) answeredEarly(status int, length int64) error {
	if b.whole.Load() || (length > 0 && b.sent.Load() >= length) {
		return nil
	}
	of := ""
	if length > 0 {
		of = fmt.Sprintf(" of %d", length)
	}
	return fmt.Errorf("%w: it said %d %s after %d%s bytes of the form", errAnsweredEarly, status, http.StatusText(status), b.sent.Load(), of)
}
