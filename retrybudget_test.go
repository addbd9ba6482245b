package miosa

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRetryBudget_AFloorPlusAFifthOfTheCallsOfTheLastTenSeconds(t *testing.T) {
	var b retryBudget
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range retryBudgetFloor {
		require.True(t, b.withdraw(now), "the floor needs no calls")
	}
	require.False(t, b.withdraw(now), "the floor is spent")
	for range 4 {
		b.deposit(now)
	}
	require.False(t, b.withdraw(now), "four calls earn four fifths of a retry")
	b.deposit(now)
	require.True(t, b.withdraw(now), "the fifth call earns a whole one")
	require.False(t, b.withdraw(now))

	later := now.Add(retryBudgetWindow - time.Second)
	require.False(t, b.withdraw(later), "still within the window")
	later = now.Add(retryBudgetWindow)
	for range retryBudgetFloor {
		require.True(t, b.withdraw(later), "what was spent ten seconds ago is forgotten")
	}
	require.False(t, b.withdraw(later), "and so is what was earned")
}

func TestRetryBudget_ASpentBudgetReturnsTheLastErrorSayingSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
			w.Header().Set("X-Request-ID", "req_x")
			writeJSON(w, http.StatusServiceUnavailable, `{"error":{"code":"UNAVAILABLE","message":"down"}}`)
		}}
		var logs bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c := newFakeClient(t, rec, WithLogger(logger), WithRetryDelay(0, 0))
		// The floor pays for the retries of the first five calls (two
		// each), with one earned by those five calls left over.
		for i := range 5 {
			_, err := c.Computers.Get(t.Context(), "cmp_1")
			require.ErrorIs(t, err, ErrServer)
			assert.NotContains(t, err.Error(), "budget", "call %d", i)
		}
		require.Equal(t, 15, rec.count())
		_, err := c.Computers.Get(t.Context(), "cmp_1")
		require.Equal(t, 17, rec.count(), "one retry was left")
		require.ErrorIs(t, err, ErrServer)
		assert.Contains(t, err.Error(), "miosa: GET /computers/cmp_1: 503 UNAVAILABLE: down (request_id=req_x); not retried: the client's retry budget is spent")
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr, "the last answer is still the error")
		assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
		assert.Contains(t, logs.String(), `not_retried="the client's retry budget is spent`)

		_, err = c.Computers.Get(t.Context(), "cmp_1")
		require.Equal(t, 18, rec.count(), "no retry at all")
		assert.Contains(t, err.Error(), "retry budget is spent")

		// Ten seconds later the budget is full again.
		time.Sleep(retryBudgetWindow)
		_, err = c.Computers.Get(t.Context(), "cmp_1")
		require.Equal(t, 21, rec.count(), "two retries again")
		assert.NotContains(t, err.Error(), "budget")
	})
}

func TestRetryBudget_OnlyServerAndNetworkFailuresSpendIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		seen := map[string]int{} // requests per kind of answer
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
			kind := r.Header.Get("X-Answer")
			seen[kind]++
			switch {
			case kind == "429" && seen[kind] == 1:
				writeJSON(w, http.StatusTooManyRequests, `{"error":"slow down"}`)
			case kind == "starting" && seen[kind] == 1:
				writeJSON(w, http.StatusConflict, `{"error":{"code":"SANDBOX_STARTING","message":"booting","retryable":true,"retry_after_ms":10}}`)
			case kind == "":
				writeJSON(w, http.StatusBadGateway, `{"error":"bad gateway"}`)
			default:
				writeJSON(w, http.StatusOK, `{"data":[],"meta":{}}`)
			}
		}}
		c := newFakeClient(t, rec, WithRetryDelay(0, 0))
		for range retryBudgetFloor {
			c.traffic.budget.withdraw(time.Now())
		}
		require.False(t, c.traffic.budget.withdraw(time.Now()), "the floor is spent")
		_, err := c.Computers.List(t.Context(), ComputerListParams{})
		require.ErrorIs(t, err, ErrServer)
		assert.Contains(t, err.Error(), "retry budget is spent", "a 502 is not retried")
		n := rec.count()

		_, err = c.Computers.List(t.Context(), ComputerListParams{}, WithHeader("X-Answer", "429"))
		require.NoError(t, err, "a 429 is retried: the pacer deals with it")
		_, err = c.Computers.List(t.Context(), ComputerListParams{}, WithHeader("X-Answer", "starting"))
		require.NoError(t, err, "an answer the server declared retryable is retried")
		assert.Equal(t, n+4, rec.count())
	})
}

func TestSpendsRetryBudget(t *testing.T) {
	for _, tc := range []struct {
		failure error
		spends  bool
	}{
		{&APIError{StatusCode: http.StatusInternalServerError}, true},
		{&APIError{StatusCode: http.StatusServiceUnavailable, Retryable: true}, true},
		{&APIError{StatusCode: http.StatusRequestTimeout}, true},
		{&APIError{StatusCode: http.StatusTooManyRequests}, false},
		{&APIError{StatusCode: http.StatusConflict, Retryable: true}, false},
		{errors.New("connection reset by peer"), true},
	} {
		assert.Equal(t, tc.spends, spendsRetryBudget(tc.failure), "%v", tc.failure)
	}
}
