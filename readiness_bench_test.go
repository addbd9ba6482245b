package miosa_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miosa-ai/miosa-go"
)

// sseReportLatencies reports the median and 99th percentile of d in ms.
func sseReportLatencies(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		i := min(int(p*float64(len(d))), len(d)-1)
		return float64(d[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkWaitUntilReady_StreamLatency measures the time from the server
// flushing "event: ready" to WaitUntilReady returning true.
func BenchmarkWaitUntilReady_StreamLatency(b *testing.B) {
	flushed := make(chan time.Time, 1)
	stream := func(w http.ResponseWriter, r *http.Request) {
		sseOpen(w)
		sseSend(w, ": connected\n\n")
		// Let the client reach its read loop, so the measurement starts at
		// the ready event rather than at the response headers.
		time.Sleep(2 * time.Millisecond)
		flushed <- time.Now()
		sseSend(w, "event: ready\ndata: {}\n\n")
		<-r.Context().Done()
	}
	f := newSSEFake(b, stream, sseStatus(http.StatusGone))
	c := f.client(b)
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		ready, err := c.Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
		returned := time.Now()
		if err != nil || !ready {
			b.Fatalf("ready=%v err=%v", ready, err)
		}
		latencies = append(latencies, returned.Sub(<-flushed))
	}
	b.StopTimer()
	if f.polls.Load() != 0 {
		b.Fatalf("%d polls; the stream should decide", f.polls.Load())
	}
	sseReportLatencies(b, latencies)
}

// BenchmarkWaitUntilReady_PollLatency measures the same for the polling
// fallback (stream 404, 10 ms interval): the sandbox turns ready at a random
// moment between polls, and the wait notices at the next one.
func BenchmarkWaitUntilReady_PollLatency(b *testing.B) {
	var (
		mu      sync.Mutex
		readyAt time.Time
	)
	firstPoll := make(chan struct{}, 1)
	poll := func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ready := !readyAt.IsZero()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if ready {
			fmt.Fprint(w, `{"data":{"ready":true}}`)
			return
		}
		select {
		case firstPoll <- struct{}{}:
		default:
		}
		fmt.Fprint(w, `{"data":{"ready":false}}`)
	}
	f := newSSEFake(b, sseStatus(http.StatusNotFound), poll)
	c := f.client(b)
	latencies := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		mu.Lock()
		readyAt = time.Time{}
		mu.Unlock()
		done := make(chan time.Time, 1)
		go func() {
			ready, err := c.Sandboxes.WaitUntilReady(context.Background(), "sb_1", miosa.WaitOptions{})
			if err != nil || !ready {
				panic(fmt.Sprintf("ready=%v err=%v", ready, err))
			}
			done <- time.Now()
		}()
		<-firstPoll
		time.Sleep(rand.N(10 * time.Millisecond))
		mu.Lock()
		readyAt = time.Now()
		at := readyAt
		mu.Unlock()
		latencies = append(latencies, (<-done).Sub(at))
	}
	b.StopTimer()
	b.ReportMetric(float64(f.polls.Load())/float64(b.N), "polls/op")
	sseReportLatencies(b, latencies)
}

// BenchmarkWaitUntilReady_Concurrent runs 1,000 waits at once on one client
// against one server. Every stream is held open until all 1,000 have
// arrived, which is when the heap is measured; then all are released. The
// heap figure covers both ends of every connection (client and the
// in-process server), so the client's own share is smaller.
func BenchmarkWaitUntilReady_Concurrent(b *testing.B) {
	const waiters = 1000
	for _, tc := range []struct {
		name string
		opts []sseFakeOption
	}{
		{"HTTP1", nil},
		// Go's server allows 250 streams per HTTP/2 connection by default;
		// past that the client's transport dials more connections.
		{"HTTP2", []sseFakeOption{sseOverTLS}},
		{"HTTP2-1000streams", []sseFakeOption{sseOverTLS, sseMaxStreams(waiters)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var (
				arrived atomic.Int64
				release chan struct{}
				all     chan struct{}
			)
			stream := func(w http.ResponseWriter, r *http.Request) {
				sseOpen(w)
				if arrived.Add(1) == waiters {
					close(all)
				}
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				sseSend(w, "event: ready\ndata: {}\n\n")
				<-r.Context().Done()
			}
			f := newSSEFake(b, stream, sseStatus(http.StatusGone), tc.opts...)
			c := f.client(b)
			conns := f.newConns.Load()
			var peakPerWaiter, goroutinesPerWaiter float64
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				arrived.Store(0)
				release, all = make(chan struct{}), make(chan struct{})
				f.httpClient.CloseIdleConnections()
				// One finished request, so that the waits find a connection
				// to share (HTTP/2) instead of all dialling at once.
				_, _ = c.Sandboxes.Readiness(context.Background(), "warm-up")
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				baseGoroutines := runtime.NumGoroutine()
				b.StartTimer()

				var wg sync.WaitGroup
				var notReady atomic.Int64
				for i := range waiters {
					wg.Go(func() {
						ready, err := c.Sandboxes.WaitUntilReady(context.Background(), fmt.Sprintf("sb_%d", i), miosa.WaitOptions{})
						if err != nil || !ready {
							notReady.Add(1)
						}
					})
				}
				<-all
				var peak runtime.MemStats
				runtime.ReadMemStats(&peak)
				goroutinesPerWaiter = float64(runtime.NumGoroutine()-baseGoroutines) / waiters
				grown := int64(peak.HeapAlloc) - int64(before.HeapAlloc) + int64(peak.StackInuse) - int64(before.StackInuse)
				peakPerWaiter = float64(grown) / waiters
				close(release)
				wg.Wait()
				b.StopTimer()
				if n := notReady.Load(); n > 0 {
					b.Fatalf("%d of %d waits did not report ready", n, waiters)
				}
				if !sseWaitForGoroutines(f, baseGoroutines) {
					b.Fatalf("goroutines did not return to baseline: %d now, %d before", runtime.NumGoroutine(), baseGoroutines)
				}
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(peakPerWaiter/1024, "peak-KiB/waiter")
			b.ReportMetric(goroutinesPerWaiter, "goroutines/waiter")
			b.ReportMetric(float64(f.newConns.Load()-conns)/float64(b.N), "conns/op")
		})
	}
}

// sseWaitForGoroutines closes idle connections until the goroutine count is
// back to base, for up to ten seconds.
func sseWaitForGoroutines(f *sseFake, base int) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		f.httpClient.CloseIdleConnections()
		if runtime.NumGoroutine() <= base && f.openConns.Load() == 0 {
			return true
		}
	}
	return false
}

// sseServerProcessEnv makes TestSSEBenchServerProcess serve instead of
// skipping: "h1" for HTTP/1.1, "h2" for HTTP/2 over TLS.
const sseServerProcessEnv = "MIOSA_SSE_BENCH_SERVER"

// TestSSEBenchServerProcess is the server half of
// BenchmarkWaitUntilReady_ConcurrentClientHeap, run in a child process so
// that the benchmark's heap holds the client alone. Streams are held open
// until /control/release; /control/arrived counts them.
func TestSSEBenchServerProcess(t *testing.T) {
	mode := os.Getenv(sseServerProcessEnv)
	if mode == "" {
		t.Skip("the server process of a benchmark")
	}
	var (
		mu      sync.Mutex
		release = make(chan struct{})
		arrived atomic.Int64
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/sandboxes/{id}/readiness/stream", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		wait := release
		mu.Unlock()
		sseOpen(w)
		arrived.Add(1)
		select {
		case <-wait:
		case <-r.Context().Done():
			return
		}
		sseSend(w, "event: ready\ndata: {}\n\n")
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /control/arrived", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, arrived.Load())
	})
	mux.HandleFunc("POST /control/release", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		close(release)
		release = make(chan struct{})
		arrived.Store(0)
		mu.Unlock()
	})
	srv := httptest.NewUnstartedServer(mux)
	if mode == "h2" {
		srv.EnableHTTP2 = true
		srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 2000}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	defer srv.Close()
	fmt.Println(srv.URL)
	_, _ = io.Copy(io.Discard, os.Stdin) // serve until the parent goes away
}

// BenchmarkWaitUntilReady_ConcurrentClientHeap is BenchmarkWaitUntilReady_Concurrent
// with the server in another process, so the heap and goroutines measured
// are the client's own.
func BenchmarkWaitUntilReady_ConcurrentClientHeap(b *testing.B) {
	const waiters = 1000
	for _, mode := range []string{"h1", "h2"} {
		b.Run(mode, func(b *testing.B) {
			base, stop := startServerProcess(b, "TestSSEBenchServerProcess", sseServerProcessEnv, mode)
			defer stop()
			transport := http.DefaultTransport.(*http.Transport).Clone()
			transport.ForceAttemptHTTP2 = true
			transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} // the child's test certificate
			hc := &http.Client{Transport: transport}
			defer hc.CloseIdleConnections()
			control := &http.Client{Transport: transport.Clone()}
			defer control.CloseIdleConnections()
			c, err := miosa.NewClient(sseTestKey, miosa.WithBaseURL(base+"/api/v1"), miosa.WithHTTPClient(hc))
			if err != nil {
				b.Fatal(err)
			}

			var heapPerWaiter, stackPerWaiter, goroutinesPerWaiter float64
			for range b.N {
				hc.CloseIdleConnections()
				_, _ = c.Sandboxes.Readiness(context.Background(), "warm-up")
				runtime.GC()
				var before, peak runtime.MemStats
				runtime.ReadMemStats(&before)
				baseGoroutines := runtime.NumGoroutine()

				var wg sync.WaitGroup
				var notReady atomic.Int64
				for i := range waiters {
					wg.Go(func() {
						ready, err := c.Sandboxes.WaitUntilReady(context.Background(), fmt.Sprintf("sb_%d", i), miosa.WaitOptions{})
						if err != nil || !ready {
							notReady.Add(1)
						}
					})
				}
				for sseControlGet(b, control, base+"/control/arrived") != fmt.Sprint(waiters) {
					time.Sleep(time.Millisecond)
				}
				runtime.ReadMemStats(&peak)
				goroutinesPerWaiter = float64(runtime.NumGoroutine()-baseGoroutines) / waiters
				heapPerWaiter = float64(int64(peak.HeapAlloc)-int64(before.HeapAlloc)) / waiters
				stackPerWaiter = float64(int64(peak.StackInuse)-int64(before.StackInuse)) / waiters
				res, err := control.Post(base+"/control/release", "", nil)
				if err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
				wg.Wait()
				if n := notReady.Load(); n > 0 {
					b.Fatalf("%d of %d waits did not report ready", n, waiters)
				}
				settled := false
				for deadline := time.Now().Add(10 * time.Second); !settled && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
					hc.CloseIdleConnections()
					settled = runtime.NumGoroutine() <= baseGoroutines
				}
				if !settled {
					b.Fatalf("goroutines did not return to baseline: %d now, %d before", runtime.NumGoroutine(), baseGoroutines)
				}
			}
			b.ReportMetric(heapPerWaiter/1024, "client-heap-KiB/waiter")
			b.ReportMetric(stackPerWaiter/1024, "client-stack-KiB/waiter")
			b.ReportMetric((heapPerWaiter+stackPerWaiter)/1024, "client-peak-KiB/waiter")
			b.ReportMetric(goroutinesPerWaiter, "client-goroutines/waiter")
		})
	}
}

// startServerProcess runs the test named test in a child process, with
// env set to mode, and returns the first line it prints (where it serves)
// and the function that stops it.
func startServerProcess(b *testing.B, test, env, mode string) (string, func()) {
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+mode)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() {
		stdin.Close()
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		b.Fatalf("server process: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return strings.TrimSpace(line), stop
}

func sseControlGet(b *testing.B, c *http.Client, url string) string {
	res, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		b.Fatal(err)
	}
	return string(body)
}
