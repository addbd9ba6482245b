package miosa

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type ctxKey struct{}

func isClosed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func TestAttemptDeadline_UnwatchedStillReportsAndKeepsItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent := context.WithValue(t.Context(), ctxKey{}, "v")
		deadline := time.Now().Add(5 * time.Second)
		a := newAttemptDeadline(parent, deadline)
		defer a.end()

		got, ok := a.Deadline()
		assert.True(t, ok)
		assert.Equal(t, deadline, got)
		assert.Equal(t, "v", a.Value(ctxKey{}), "the caller's values pass through")
		assert.NoError(t, a.Err())
		time.Sleep(5 * time.Second)
		assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "no timer ran, yet the deadline has passed")
		assert.True(t, isClosed(a.Done()), "asked for after its deadline, Done is closed at once")
	})
}

func TestAttemptDeadline_WatchedEndsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent := context.WithValue(t.Context(), ctxKey{}, "v")
		a := newAttemptDeadline(parent, time.Now().Add(5*time.Second))
		defer a.end()
		done := a.Done()
		assert.Equal(t, "v", a.Value(ctxKey{}), "values pass through once armed")
		time.Sleep(5*time.Second - time.Nanosecond)
		assert.False(t, isClosed(done))
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.True(t, isClosed(done))
		assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
		assert.ErrorIs(t, context.Cause(a), context.DeadlineExceeded)
	})
}

func TestAttemptDeadline_CallerCancellationEndsIt(t *testing.T) {
	for _, watched := range []bool{false, true} {
		t.Run(map[bool]string{false: "unwatched", true: "watched"}[watched], func(t *testing.T) {
			parent, cancel := context.WithCancelCause(t.Context())
			a := newAttemptDeadline(parent, time.Now().Add(time.Minute))
			defer a.end()
			if watched {
				_ = a.Done()
			}
			why := errors.New("caller gave up")
			cancel(why)
			assert.True(t, isClosed(a.Done()))
			assert.ErrorIs(t, a.Err(), context.Canceled)
			assert.ErrorIs(t, context.Cause(a), why)
		})
	}
}

// A context derived from the attempt's (as net/http derives one for every
// request) must attach to it directly: one that could not would cost a
// goroutine per request.
func TestAttemptDeadline_DerivedContextNeedsNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAttemptDeadline(t.Context(), time.Now().Add(5*time.Second))
		defer a.end()
		before := runtime.NumGoroutine()
		child, cancel := context.WithCancel(a)
		defer cancel()
		assert.Equal(t, before, runtime.NumGoroutine())
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.True(t, isClosed(child.Done()), "the deadline reaches the derived context")
		assert.ErrorIs(t, child.Err(), context.DeadlineExceeded)
	})
}

func TestAttemptDeadline_EndReleasesIt(t *testing.T) {
	for _, watched := range []bool{false, true} {
		t.Run(map[bool]string{false: "unwatched", true: "watched"}[watched], func(t *testing.T) {
			a := newAttemptDeadline(t.Context(), time.Now().Add(time.Minute))
			var done <-chan struct{}
			if watched {
				done = a.Done()
			}
			a.end()
			if watched {
				assert.True(t, isClosed(done))
			}
			assert.True(t, isClosed(a.Done()), "Done asked for after the end is closed")
			assert.ErrorIs(t, a.Err(), context.Canceled)
		})
	}
}

// Done and end may race: a transport's goroutines watch the context while
// the attempt returns. Every watcher must see the one context end.
func TestAttemptDeadline_DoneRacingEndSeesOneContextEnd(t *testing.T) {
	for range 50 {
		a := newAttemptDeadline(t.Context(), time.Now().Add(time.Minute))
		var wg sync.WaitGroup
		seen := make([]<-chan struct{}, 8)
		for i := range seen {
			wg.Go(func() { seen[i] = a.Done() })
		}
		a.end()
		wg.Wait()
		for _, done := range seen {
			require.True(t, isClosed(done))
			require.Equal(t, seen[0], done, "one armed context, however many asked")
		}
	}
}

// net/http's transport watches Done at once, so arming lazily would only
// cost it; any other transport may never watch, and gets the lazy deadline.
func TestWithAttemptDeadline_LazyOnlyWhereItCanSaveTheTimer(t *testing.T) {
	deadline := time.Now().Add(time.Minute)
	for name, tc := range map[string]struct {
		transport http.RoundTripper
		lazy      bool
	}{
		"default transport":  {nil, false},
		"net/http transport": {&http.Transport{}, false},
		"any other":          {roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil }), true},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, end := withAttemptDeadline(t.Context(), deadline, tc.transport)
			_, lazy := ctx.(*attemptDeadline)
			assert.Equal(t, tc.lazy, lazy)
			got, ok := ctx.Deadline()
			assert.True(t, ok)
			assert.True(t, got.Equal(deadline))
			end()
			assert.ErrorIs(t, ctx.Err(), context.Canceled, "end ends it")
		})
	}
}

// The context contract: once Err has said why a context ended, it says so
// ever after, even when, unwatched, it saw its deadline pass before its
// caller's context was cancelled.
func TestAttemptDeadline_ErrKeepsItsFirstAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		parent, cancel := context.WithCancel(t.Context())
		a := newAttemptDeadline(parent, time.Now().Add(time.Second))
		defer a.end()
		time.Sleep(time.Second)
		require.ErrorIs(t, a.Err(), context.DeadlineExceeded)
		cancel()
		assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
		<-a.Done()
		assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "arming afterwards changes nothing")
	})
}
