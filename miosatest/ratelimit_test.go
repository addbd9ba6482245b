package miosatest_test

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go/miosatest"
)

func TestRateLimit_AcceptsNASecondAndRefusesTheRestWithRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithRateLimit(5))
		var statuses []int
		for range 7 {
			statuses = append(statuses, call(t, srv, "GET", "/computers", "").status)
		}
		assert.Equal(t, []int{200, 200, 200, 200, 200, 429, 429}, statuses, "a burst of 5, then refusals")
		refused := call(t, srv, "POST", "/computers", `{"name":"a"}`)
		require.Equal(t, http.StatusTooManyRequests, refused.status)
		assert.Equal(t, "1", refused.header.Get("Retry-After"))
		code, _ := refused.errorCode(t)
		assert.Equal(t, "RATE_LIMITED", code)

		time.Sleep(200 * time.Millisecond)
		assert.Equal(t, http.StatusOK, call(t, srv, "GET", "/computers", "").status, "one more a fifth of a second later")
		assert.Equal(t, http.StatusTooManyRequests, call(t, srv, "GET", "/computers", "").status)
		time.Sleep(time.Second)
		items, _ := call(t, srv, "GET", "/computers", "").list(t)
		assert.Empty(t, items, "the refused create was not acted on")
		for range 4 {
			assert.Equal(t, http.StatusOK, call(t, srv, "GET", "/computers", "").status, "the bucket refilled")
		}

		var logged []int
		for _, r := range srv.Requests() {
			logged = append(logged, r.Status)
		}
		assert.Equal(t, []int{200, 200, 200, 200, 200, 429, 429, 429, 200, 429, 200, 200, 200, 200, 200}, logged,
			"refused requests are in the request log with their 429")
		require.NoError(t, srv.Close())
	})
}

func TestRateLimit_ZeroMeansNone(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithRateLimit(0))
	for range 50 {
		require.Equal(t, http.StatusOK, call(t, srv, "GET", "/computers", "").status)
	}
}
