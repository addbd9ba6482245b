package miosa

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// connectingTransport stands for a transport over the network, in a
// synctest bubble: every request takes connect to get its connection (and
// reports it to the request's trace, as net/http does), then answerIn(n)
// (n counting requests from 1) to answer. fail, when set, fails request n
// before it has a connection.
type connectingTransport struct {
	connect  time.Duration
	answerIn func(n int) time.Duration
	fail     func(n int) bool

	mu     sync.Mutex
	starts []time.Time // when each request reached the transport
}

func (ct *connectingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ct.mu.Lock()
	ct.starts = append(ct.starts, time.Now())
	n := len(ct.starts)
	ct.mu.Unlock()
	if err := sleepCtx(r.Context(), ct.connect); err != nil {
		return nil, err
	}
	if ct.fail != nil && ct.fail(n) {
		return nil, errors.New("connection refused")
	}
	if trace := httptrace.ContextClientTrace(r.Context()); trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{})
	}
	if ct.answerIn != nil {
		if err := sleepCtx(r.Context(), ct.answerIn(n)); err != nil {
			return nil, err
		}
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(computerJSON)), Request: r}, nil
}

func (ct *connectingTransport) startTimes() []time.Time {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return append([]time.Time(nil), ct.starts...)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func warmupClient(t *testing.T, ct *connectingTransport, baseURL string) *Client {
	t.Helper()
	c, err := NewClient(testKey, WithBaseURL(baseURL), WithHTTPClient(&http.Client{Transport: ct}), WithMaxRetries(0))
	require.NoError(t, err)
	return c
}

// startedAt counts the requests that reached the transport at each offset
// from start.
func startedAt(ct *connectingTransport, start time.Time) map[time.Duration]int {
	counts := map[time.Duration]int{}
	for _, at := range ct.startTimes() {
		counts[at.Sub(start)]++
	}
	return counts
}

func TestConnWarmup_ABurstToAColdOriginWaitsForTheFirstCallsAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ct := &connectingTransport{connect: 20 * time.Millisecond, answerIn: func(int) time.Duration { return 5 * time.Millisecond }}
		c := warmupClient(t, ct, "https://api.test/api/v1")
		start := time.Now()
		for _, err := range getConcurrently(t.Context(), c, 10) {
			require.NoError(t, err)
		}
		assert.Equal(t, map[time.Duration]int{0: 1, 25 * time.Millisecond: 9}, startedAt(ct, start),
			"one call connects; the rest go when it has its answer")

		// The origin is warm now: a burst goes at once.
		start = time.Now()
		for _, err := range getConcurrently(t.Context(), c, 10) {
			require.NoError(t, err)
		}
		assert.Equal(t, 10, startedAt(ct, start)[0])
	})
}

func TestConnWarmup_ASlowFirstAnswerHoldsTheRestOnlyBriefly(t *testing.T) {
	for _, tc := range []struct {
		connect, hold time.Duration
	}{
		{20 * time.Millisecond, minLeadHold},             // at least minLeadHold
		{300 * time.Millisecond, 300 * time.Millisecond}, // as long again as connecting took
	} {
		synctest.Test(t, func(t *testing.T) {
			ct := &connectingTransport{connect: tc.connect, answerIn: func(n int) time.Duration {
				if n == 1 {
					return time.Hour // a long exec, say
				}
				return 0
			}}
			c := warmupClient(t, ct, "https://api.test/api/v1")
			start := time.Now()
			var wg sync.WaitGroup
			wg.Go(func() { _, _ = c.Computers.Get(t.Context(), "slow") })
			synctest.Wait()
			for _, err := range getConcurrently(t.Context(), c, 5) {
				require.NoError(t, err)
			}
			assert.Equal(t, map[time.Duration]int{0: 1, tc.connect + tc.hold: 5}, startedAt(ct, start),
				"connecting in %s, the rest went %s after the first had its connection", tc.connect, tc.hold)
			wg.Wait()
		})
	}
}

func TestConnWarmup_AFirstCallThatFailsLetsTheRestGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ct := &connectingTransport{connect: 20 * time.Millisecond, fail: func(n int) bool { return n == 1 }}
		c := warmupClient(t, ct, "https://api.test/api/v1")
		start := time.Now()
		var wg sync.WaitGroup
		wg.Go(func() {
			_, err := c.Computers.Get(t.Context(), "first")
			assert.Error(t, err)
		})
		synctest.Wait()
		for _, err := range getConcurrently(t.Context(), c, 5) {
			require.NoError(t, err)
		}
		wg.Wait()
		assert.Equal(t, map[time.Duration]int{0: 1, 20 * time.Millisecond: 5}, startedAt(ct, start))
	})
}

func TestConnWarmup_AWaitingCallEndsWithItsContextUnsent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ct := &connectingTransport{connect: time.Hour}
		c := warmupClient(t, ct, "https://api.test/api/v1")
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = c.Computers.Get(ctx, "first") })
		synctest.Wait()
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, err := c.Computers.Get(ctx, "second")
		assert.Equal(t, time.Second, time.Since(start))
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "miosa: GET /computers/second: not sent: context canceled while waiting for the first connection")
		assert.NotErrorIs(t, err, ErrOutcomeUnknown)
		wg.Wait()
		assert.Len(t, ct.startTimes(), 1)
	})
}

func TestConnWarmup_PlainHTTPIsNeverHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ct := &connectingTransport{connect: 20 * time.Millisecond}
		c := warmupClient(t, ct, "http://127.0.0.1:1/api/v1")
		start := time.Now()
		for _, err := range getConcurrently(t.Context(), c, 10) {
			require.NoError(t, err)
		}
		assert.Equal(t, map[time.Duration]int{0: 10}, startedAt(ct, start), "HTTP/1.1 needs a connection per call anyway")
	})
}
