package miosa

import (
	"context"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refusingServer answers 429 with Retry-After hint to GET
// /computers/refused and a computer to everything else; every request is
// recorded with its arrival time.
func refusingServer(hint string) *recorder {
	return &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
		if strings.HasSuffix(r.URL.Path, "/refused") {
			w.Header().Set("Retry-After", hint)
			writeJSON(w, http.StatusTooManyRequests, `{"error":"slow down"}`)
			return
		}
		writeJSON(w, http.StatusOK, computerJSON)
	}}
}

// getConcurrently makes n calls of Computers.Get from n goroutines at
// once and returns their errors.
func getConcurrently(ctx context.Context, c *Client, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = c.Computers.Get(ctx, "cmp_1") })
	}
	wg.Wait()
	return errs
}

// arrivals returns when the requests after the first skip reached rec.
func arrivals(rec *recorder, skip int) []time.Time {
	var at []time.Time
	for _, r := range rec.requests()[skip:] {
		at = append(at, r.At)
	}
	return at
}

func TestPacing_A429HoldsEveryGoroutineUntilItsRetryAfterThenPacesThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := refusingServer("3")
		// No retries: the hold is the Client's, whether or not the refused
		// call is retried, and waiting for a turn is not a retry.
		c := newFakeClient(t, rec, WithMaxRetries(0))
		for _, err := range getConcurrently(t.Context(), c, 30) {
			require.NoError(t, err)
		}
		_, err := c.Computers.Get(t.Context(), "refused")
		require.ErrorIs(t, err, ErrRateLimited)
		refusedAt := time.Now()

		for _, err := range getConcurrently(t.Context(), c, 5) {
			require.NoError(t, err, "a paced call is sent when its turn comes")
		}
		at := arrivals(rec, 31)
		require.Len(t, at, 5, "each call sent once")
		assert.Equal(t, refusedAt.Add(3*time.Second), at[0], "nothing was sent before the Retry-After passed")
		// The server accepted 30 in the 3 s window of the refusal: 10 a
		// second. The pace starts at 70 % of it and grows back.
		first := time.Duration(math.Round(float64(time.Second) / (paceBeta * 10)))
		assert.InDelta(t, first, at[1].Sub(at[0]), 1, "paced one at a time")
		for i := 2; i < len(at); i++ {
			gap := at[i].Sub(at[i-1])
			assert.Less(t, gap, at[i-1].Sub(at[i-2]), "request %d: the pace grows", i)
			assert.Greater(t, gap, 100*time.Millisecond, "request %d: still below the accepted rate", i)
		}
	})
}

func TestPacing_TheHoldIsAtMostWithMaxRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := refusingServer("3600")
		c := newFakeClient(t, rec, WithMaxRetryAfter(2*time.Second))
		_, err := c.Computers.Get(t.Context(), "refused")
		require.ErrorIs(t, err, ErrRateLimited, "a hint past the cap is returned, not slept")
		start := time.Now()
		_, err = c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
		assert.Equal(t, 2*time.Second, time.Since(start), "the Client held requests for the capped hint")
	})
}

func TestPacing_ThePaceGrowsBackPastTheAcceptedRateWhileNothingIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := refusingServer("1")
		c := newFakeClient(t, rec, WithMaxRetries(0))
		for _, err := range getConcurrently(t.Context(), c, 100) {
			require.NoError(t, err)
		}
		_, err := c.Computers.Get(t.Context(), "refused")
		require.ErrorIs(t, err, ErrRateLimited)
		holdEnd := time.Now().Add(time.Second)

		// 50 goroutines call as fast as they are let for 10 s, until a
		// turn would come too late.
		ctx, cancel := context.WithTimeout(t.Context(), 11*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				for {
					if _, err := c.Computers.Get(ctx, "cmp_1"); err != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		perSecond := make([]int, 10)
		for _, at := range arrivals(rec, 101) {
			if s := int(at.Sub(holdEnd) / time.Second); s >= 0 && s < len(perSecond) {
				perSecond[s]++
			} else if s < 0 {
				t.Errorf("a request was sent during the hold, at %s", at)
			}
		}
		t.Logf("requests per second after the hold: %v", perSecond)
		// 100 accepted in the second before: the pace starts at 70 a
		// second, is back at 100 after cbrt(100·0.3/0.4) = 4.2 s, and
		// grows faster after that. Second s holds the curve's integral
		// from s to s+1: 79, ..., 100, ..., 159.
		assert.InDelta(t, 79, perSecond[0], 2)
		for s := 1; s < len(perSecond); s++ {
			assert.GreaterOrEqual(t, perSecond[s], perSecond[s-1], "the pace grows while nothing is refused")
		}
		assert.InDelta(t, 100, perSecond[4], 2)
		assert.InDelta(t, 159, perSecond[9], 3)
	})
}

func TestPacing_AWaitThatWouldOutlastTheDeadlineFailsAtOnceUnsent(t *testing.T) {
	t.Run("held", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := refusingServer("10")
			c := newFakeClient(t, rec, WithMaxRetries(0))
			_, _ = c.Computers.Get(t.Context(), "refused")
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			_, err := c.Computers.Get(ctx, "cmp_1")
			assert.Zero(t, time.Since(start), "the call waited for a turn it could not get in time")
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorIs(t, err, ErrRateLimited, "the server's 429 is why")
			assert.Contains(t, err.Error(), "miosa: GET /computers/cmp_1: not sent: its turn would come in 10s, after the context's deadline")
			assert.Equal(t, 1, rec.count(), "nothing sent")
		})
	})
	t.Run("paced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := refusingServer("1")
			c := newFakeClient(t, rec, WithMaxRetries(0))
			// Refused before anything was accepted: the slowest pace.
			_, _ = c.Computers.Get(t.Context(), "refused")
			time.Sleep(time.Second)
			_, err := c.Computers.Get(t.Context(), "cmp_1")
			require.NoError(t, err, "the first turn after the hold is at once")
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			start := time.Now()
			_, err = c.Computers.Get(ctx, "cmp_1")
			assert.Zero(t, time.Since(start))
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.ErrorIs(t, err, ErrRateLimited)
			assert.Equal(t, 2, rec.count())

			// The turn it gave back is the next call's: one interval of
			// the slowest pace after the first.
			start = time.Now()
			_, err = c.Computers.Get(t.Context(), "cmp_1")
			require.NoError(t, err)
			assert.Equal(t, time.Duration(float64(time.Second)/paceMin), time.Since(start))
		})
	})
	t.Run("a retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := refusingServer("10")
			c := newFakeClient(t, rec, WithMaxRetryAfter(time.Hour))
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			start := time.Now()
			_, err := c.Computers.Get(ctx, "refused")
			assert.Zero(t, time.Since(start))
			require.ErrorIs(t, err, ErrRateLimited, "the last answer is returned")
			assert.Equal(t, 1, rec.count())
		})
	})
}

func TestPacing_CancellingTheContextEndsTheWaitAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := refusingServer("10")
		c := newFakeClient(t, rec, WithMaxRetries(0))
		_, _ = c.Computers.Get(t.Context(), "refused")
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, err := c.Computers.Get(ctx, "cmp_1")
		assert.Equal(t, time.Second, time.Since(start))
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), "not sent")
		assert.Equal(t, 1, rec.count())
	})
}

func TestPacing_ANewRefusalHoldsRequestsAlreadyWaitingForTheirTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
			switch {
			case strings.HasSuffix(r.URL.Path, "/slow"):
				time.Sleep(1500 * time.Millisecond)
				fallthrough
			case n == 1:
				w.Header().Set("Retry-After", "2")
				writeJSON(w, http.StatusTooManyRequests, `{"error":"slow down"}`)
			default:
				writeJSON(w, http.StatusOK, computerJSON)
			}
		}}
		c := newFakeClient(t, rec, WithMaxRetries(0))
		t0 := time.Now()
		_, _ = c.Computers.Get(t.Context(), "cmp_1") // refused: hold until 2 s, then paced at the slowest pace
		time.Sleep(2 * time.Second)
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = c.Computers.Get(t.Context(), "slow") }) // sent at 2 s, refused at 3.5 s: hold until 5.5 s
		synctest.Wait()
		wg.Go(func() {
			_, err := c.Computers.Get(t.Context(), "cmp_1") // its turn was at 4 s
			assert.NoError(t, err)
		})
		wg.Wait()
		at := arrivals(rec, 2)
		require.Len(t, at, 1)
		assert.Equal(t, t0.Add(5500*time.Millisecond), at[0], "the waiting call was held by the new refusal, then sent at once")
	})
}

func TestWithRateLimit_CapsWhatEveryGoroutineTogetherStarts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := refusingServer("1")
		c := newFakeClient(t, rec, WithRateLimit(10, 5))
		start := time.Now()
		for _, err := range getConcurrently(t.Context(), c, 25) {
			require.NoError(t, err)
		}
		at := arrivals(rec, 0)
		require.Len(t, at, 25)
		for i, a := range at {
			want := time.Duration(max(0, i-4)) * 100 * time.Millisecond // a burst of 5, then 10 a second
			assert.Equal(t, want, a.Sub(start), "request %d", i)
		}
	})
}

func TestWithRateLimit_ATurnPastTheDeadlineFailsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := refusingServer("1")
		c := newFakeClient(t, rec, WithRateLimit(1, 1))
		_, err := c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err = c.Computers.Get(ctx, "cmp_1")
		assert.Zero(t, time.Since(start))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, ErrRateLimited, "the server refused nothing")
		assert.Contains(t, err.Error(), "WithRateLimit")
		start = time.Now()
		_, err = c.Computers.Get(t.Context(), "cmp_1")
		require.NoError(t, err)
		assert.Equal(t, time.Second, time.Since(start), "the token the refused call did not use is the next call's")
	})
}

func TestWithRateLimit_InvalidValuesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perSecond float64
		burst     int
	}{
		{"zero rate", 0, 1},
		{"negative rate", -1, 1},
		{"NaN rate", math.NaN(), 1},
		{"infinite rate", math.Inf(1), 1},
		{"zero burst", 1, 0},
		{"negative burst", 1, -3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewClient(testKey, WithRateLimit(tc.perSecond, tc.burst))
			require.ErrorIs(t, err, ErrInvalidParams)
			assert.Contains(t, err.Error(), "WithRateLimit")
		})
	}
	t.Run("per call", func(t *testing.T) {
		rec := refusingServer("1")
		c := newFakeClient(t, rec, WithRateLimit(10, 1))
		_, err := c.Computers.Get(t.Context(), "cmp_1", WithRateLimit(10, 1))
		require.ErrorIs(t, err, ErrInvalidParams)
		assert.Contains(t, err.Error(), "WithRateLimit is a client option")
		assert.Zero(t, rec.count())
	})
	_, err := NewClient(testKey, WithRateLimit(0.5, 1))
	require.NoError(t, err, "less than one a second is a rate")
}

func TestCubicRate_StartsBelowThePeakRegainsItAndGrows(t *testing.T) {
	const peak = 100.0
	k := time.Duration(math.Cbrt(peak*(1-paceBeta)/paceGrowth) * float64(time.Second))
	assert.InDelta(t, paceBeta*peak, cubicRate(peak, 0), 1e-9)
	assert.InDelta(t, peak, cubicRate(peak, k), 1e-9)
	assert.Less(t, cubicRate(peak, k/2), peak)
	assert.Greater(t, cubicRate(peak, 2*k), peak)
	assert.Equal(t, float64(paceMin), cubicRate(0, 0), "never slower than paceMin")
}
