package miosa_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// defaultClient is a client with every setting at its default, talking to
// srv: what a user gets from NewClient.
func defaultClient(t testing.TB, srv *miosatest.Server, opts ...miosa.Option) *miosa.Client {
	t.Helper()
	c, err := miosa.NewClient(miosatest.TestAPIKey, append([]miosa.Option{miosa.WithBaseURL(srv.URL), miosa.WithHTTPClient(srv.HTTPClient())}, opts...)...)
	require.NoError(t, err)
	return c
}

func TestFleet_RateLimitedBurstOfCreatesAllSucceed(t *testing.T) {
	const creates, perSecond = 500, 100
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithRateLimit(perSecond), miosatest.WithBootDelay(0))
		client := defaultClient(t, srv)
		start := time.Now()
		var failed atomic.Int32
		var wg sync.WaitGroup
		for range creates {
			wg.Go(func() {
				if _, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{}); err != nil {
					failed.Add(1)
					t.Log(err)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		attempts := len(srv.RequestsTo(http.MethodPost, "/computers"))
		ideal := time.Duration(creates/perSecond) * time.Second
		t.Logf("%d creates against %d/s: %d failed, %.2f attempts per call, %s (%.2f× the ideal %s)",
			creates, perSecond, failed.Load(), float64(attempts)/creates, elapsed, elapsed.Seconds()/ideal.Seconds(), ideal)
		assert.Zero(t, failed.Load())
		assert.LessOrEqual(t, attempts, 2*creates)
		assert.LessOrEqual(t, elapsed, ideal*3/2)
		require.NoError(t, srv.Close())
	})
}

func TestFleet_ServerFailingEverythingIsNotMultiplied(t *testing.T) {
	const calls = 200
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork())
		srv.Inject(miosatest.Fault{Status: http.StatusServiceUnavailable, Times: miosatest.Always})
		client := defaultClient(t, srv)
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				_, err := client.Computers.Get(t.Context(), "cmp_1")
				assert.ErrorIs(t, err, miosa.ErrServer)
			})
		}
		wg.Wait()
		attempts := len(srv.Requests())
		t.Logf("%d calls against a server failing everything: %.2f attempts per call", calls, float64(attempts)/calls)
		assert.LessOrEqual(t, attempts, calls*3/2)
		require.NoError(t, srv.Close())
	})
}
