package retry

import (
	"context"
	"math"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRetryableStatus(t *testing.T) {
	for code := 100; code < 600; code++ {
		want := code == 408 || code == 429 || code == 500 || code == 502 || code == 503 || code == 504
		assert.Equal(t, want, RetryableStatus(code), code)
	}
}

func TestBackoff_StaysWithinBoundsAndGrows(t *testing.T) {
	const minD, maxD = 500 * time.Millisecond, 8 * time.Second
	for retry := range 12 {
		hi := minD << (retry + 1)
		if hi > maxD || hi <= 0 {
			hi = maxD
		}
		lo := max(hi/2, minD)
		seen := map[time.Duration]bool{}
		for range 500 {
			d := Backoff(retry, minD, maxD)
			assert.GreaterOrEqual(t, d, lo, "retry %d", retry)
			assert.LessOrEqual(t, d, hi, "retry %d", retry)
			seen[d] = true
		}
		assert.Greater(t, len(seen), 100, "retry %d is not jittered", retry)
	}
}

func TestBackoff_EdgeCases(t *testing.T) {
	assert.Zero(t, Backoff(0, 0, 0))
	assert.Zero(t, Backoff(3, 0, time.Second), "a zero minimum disables the backoff")
	assert.Equal(t, time.Second, Backoff(5, time.Second, time.Second), "min == max is a fixed delay")
	assert.Equal(t, time.Second, Backoff(0, time.Second, time.Millisecond), "max below min acts as min")
	huge := time.Duration(math.MaxInt64)
	for _, retry := range []int{0, 1, 62, 63, 64, 1000} {
		d := Backoff(retry, time.Hour, huge)
		assert.GreaterOrEqual(t, d, time.Hour, "retry %d overflowed", retry)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 18, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"", 0, false},
		{"  ", 0, false},
		{"0", 0, true},
		{"5", 5 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"-Inf", 0, false},
		{"Inf", MaxHint, true},
		{"1e300", MaxHint, true},
		{"1e400", MaxHint, true},    // beyond float64: ParseFloat's range error
		{"40000000", MaxHint, true}, // more than a year
		{now.AddDate(5, 0, 0).Format(http.TimeFormat), MaxHint, true},
		{"soon", 0, false},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second, true},
	}
	for _, tc := range cases {
		got, ok := ParseRetryAfter(tc.value, now)
		assert.Equal(t, tc.ok, ok, "%q", tc.value)
		assert.Equal(t, tc.want, got, "%q", tc.value)
	}
}

func TestSeconds(t *testing.T) {
	d, ok := Seconds(2.25)
	assert.True(t, ok)
	assert.Equal(t, 2250*time.Millisecond, d)
	for _, bad := range []float64{-0.1, math.NaN(), math.Inf(-1)} {
		_, ok := Seconds(bad)
		assert.False(t, ok, bad)
	}
	for _, huge := range []float64{math.Inf(1), 1e12, MaxHint.Seconds()} {
		d, ok := Seconds(huge)
		assert.True(t, ok, huge)
		assert.Equal(t, MaxHint, d, huge)
	}
}

func TestSleep_ReturnsAtOnceForNonPositiveDurationsAndEndedContexts(t *testing.T) {
	assert.NoError(t, Sleep(t.Context(), 0))
	assert.NoError(t, Sleep(t.Context(), -time.Second))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, Sleep(ctx, 0), context.Canceled)
	assert.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
}

func TestSleep_WaitsTheWholeDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		require.NoError(t, Sleep(t.Context(), 3*time.Second))
		assert.Equal(t, 3*time.Second, time.Since(start))
	})
}
