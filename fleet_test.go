package miosa_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"runtime"
	"strings"
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

// waitAll creates n sandboxes on client and waits until each is ready,
// from n goroutines; it returns the ids and the waits' errors.
func waitAll(t *testing.T, client *miosa.Client, n int) ([]string, []error) {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
		ids[i] = sb.ID
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			ready, err := client.Sandboxes.WaitUntilReady(t.Context(), id, miosa.WaitOptions{})
			if err == nil && !ready {
				err = fmt.Errorf("sandbox %s did not become ready", id)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	return ids, errs
}

// clientGoroutines counts the goroutines of this process that are not the
// fake server's: those serving a connection (net/http's conn.serve and its
// background read) are left out, as a server in another process would be.
func clientGoroutines() int {
	buf := make([]byte, 64<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "net/http.(*conn).serve") && !strings.Contains(g, "net/http.(*connReader).backgroundRead") {
			n++
		}
	}
	return n
}

// backgroundRequests counts the requests that checked on open waits: the
// readiness polls and the machine status reads.
func backgroundRequests(srv *miosatest.Server) int {
	return len(srv.RequestsTo(http.MethodGet, "/sandboxes/*/readiness")) + len(srv.RequestsTo(http.MethodGet, "/computers/*"))
}

func TestFleet_OpenWaitsShareABoundedRateOfHealthChecks(t *testing.T) {
	const waits, boot = 300, 5 * time.Second
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(boot))
		client := defaultClient(t, srv)
		base := clientGoroutines()
		var goroutines int
		time.AfterFunc(boot/2, func() { goroutines = clientGoroutines() - base })
		_, errs := waitAll(t, client, waits)
		for _, err := range errs {
			require.NoError(t, err)
		}
		perWait := float64(backgroundRequests(srv)) / waits
		t.Logf("%d waits, %s boot: %.2f requests per wait beyond the stream, %.2f goroutines per open wait",
			waits, boot, perWait, float64(goroutines)/waits)
		assert.LessOrEqual(t, perWait, 2.0)
		// The health checks run at most healthCheckRate a second, for all
		// waits together: at most two requests each, for 4 of the 5 s.
		assert.LessOrEqual(t, backgroundRequests(srv), 2*20*4+2*20)
		// The wait's own goroutine, and the two of its HTTP/1.1 connection.
		assert.LessOrEqual(t, float64(goroutines)/waits, 4.0)
		require.NoError(t, srv.Close())
	})
}

func TestFleet_AFailedSandboxAmongAHandfulOfWaitsIsReportedWithinASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(time.Hour))
		client := defaultClient(t, srv)
		ids := make([]string, 5)
		for i := range ids {
			sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
			require.NoError(t, err)
			ids[i] = sb.ID
		}
		start := time.Now()
		failed := make(chan time.Duration, 1)
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Go(func() {
				_, err := client.Sandboxes.WaitUntilReady(t.Context(), id, miosa.WaitOptions{Timeout: 10 * time.Second})
				if i == 0 {
					var stateErr *miosa.MachineStateError
					assert.ErrorAs(t, err, &stateErr)
					failed <- time.Since(start)
				}
			})
		}
		time.Sleep(100 * time.Millisecond)
		require.NoError(t, srv.SetStatus(ids[0], miosa.StatusError))
		assert.LessOrEqual(t, <-failed, 1100*time.Millisecond, "reported at the first check, a second after the stream opened")
		wg.Wait()
		require.NoError(t, srv.Close())
	})
}

func TestFleet_AnHTTP1StreamsConnectionIsReusedAfterItsVerdict(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	client := srv.Client()
	for range 10 {
		sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
		ready, err := client.Sandboxes.WaitUntilReady(t.Context(), sb.ID, miosa.WaitOptions{})
		require.NoError(t, err)
		require.True(t, ready)
	}
	assert.Equal(t, 1, srv.Conns().Accepted, "ten creates and ten streams, one after the other, over one connection")
}

func TestFleet_ABurstOfFirstCallsOverHTTP2SharesAConnection(t *testing.T) {
	const calls = 200
	burst := func(t *testing.T, client *miosa.Client) {
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				_, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
				assert.NoError(t, err)
			})
		}
		wg.Wait()
	}
	t.Run("the SDK's default transport", func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithTLS())
		burst(t, defaultClient(t, srv)) // miosatest's client is the SDK's default, trusting the fake's certificate
		t.Logf("%d first calls: %d connections", calls, srv.Conns().Accepted)
		assert.LessOrEqual(t, srv.Conns().Accepted, 4)
	})
	t.Run("a transport of the caller's", func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithTLS())
		transport := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true} // the fake's test certificate
		t.Cleanup(transport.CloseIdleConnections)
		burst(t, defaultClient(t, srv, miosa.WithHTTPClient(&http.Client{Transport: transport})))
		t.Logf("%d first calls: %d connections", calls, srv.Conns().Accepted)
		assert.LessOrEqual(t, srv.Conns().Accepted, 4)
	})
	t.Run("beyond the server's stream limit", func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithTLS(), miosatest.WithMaxConcurrentStreams(50))
		burst(t, defaultClient(t, srv))
		t.Logf("%d first calls, 50 streams a connection: %d connections", calls, srv.Conns().Accepted)
		assert.LessOrEqual(t, srv.Conns().Accepted, 8, "a connection is dialled when every one is full, one at a time")
	})
}
