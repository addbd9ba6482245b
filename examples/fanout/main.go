// Command fanout runs a fleet through one Client: sandboxes created at
// once, each awaited, used and deleted concurrently, and prints what that
// cost the program and the API: time per step, requests, connections, and
// goroutines and memory per open wait.
//
// Against the embedded fake (MIOSA_API_KEY unset) it runs 1,000 sandboxes,
// then 1,000 more over HTTPS and HTTP/2, then two bad days for a fleet: an
// API that accepts 250 requests a second and refuses the rest with 429,
// and an API that answers 503 to everything. Against the real API it runs
// 20 sandboxes.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func main() {
	var client *miosa.Client
	if os.Getenv("MIOSA_API_KEY") != "" {
		var err error
		if client, err = miosa.NewClient(""); err != nil { // reads MIOSA_API_KEY (and MIOSA_BASE_URL)
			log.Fatal(err)
		}
		fmt.Println("using the MIOSA API at", client.BaseURL())
	} else {
		srv, err := miosatest.Start() // the fake API, in this process: nothing leaves the machine
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		client = srv.Client()
		fmt.Println("MIOSA_API_KEY is not set: using the embedded fake MIOSA API")
	}
	if err := run(client); err != nil {
		log.Fatal(err)
	}
}

// run runs a fleet on client: 20 sandboxes on the real API (a fleet costs
// money there), 1,000 on the fake. On the fake it then shows what the
// fleet cost the program and the API over HTTPS and HTTP/2, and two bad
// days: an API that refuses creates beyond a rate, and one that fails
// everything.
func run(client *miosa.Client) error {
	if os.Getenv("MIOSA_API_KEY") != "" {
		return runFleet(client, 20, nil)
	}
	if err := runFleet(client, 1000, nil); err != nil {
		return err
	}
	srv, err := miosatest.Start(miosatest.WithTLS(), miosatest.WithBootDelay(2*time.Second))
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println("\nthe same over HTTPS and HTTP/2, the sandboxes taking 2 s to boot:")
	if err := runFleet(srv.Client(), 1000, srv); err != nil {
		return err
	}
	if err := rateLimited(); err != nil {
		return err
	}
	return outage()
}

// timing is how long one sandbox spent in each step.
type timing struct{ create, ready, exec time.Duration }

// runFleet creates n sandboxes at once and, for each, waits until it is
// ready, runs a command in it and deletes it. srv, when not nil, is the
// fake, which also counts connections.
func runFleet(client *miosa.Client, n int, srv *miosatest.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	requests := &requestCounter{counts: map[string]int{}}
	logger := miosa.WithLogger(slog.New(requests)) // counts the requests, per call

	watch := newWaitWatch(n)
	start := time.Now()
	timings := make([]timing, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { timings[i], errs[i] = useSandbox(ctx, client, i, watch, logger) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("%d sandboxes created, ready, used and deleted in %s\n", n, time.Since(start).Round(time.Millisecond))
	report("create", timings, func(t timing) time.Duration { return t.create })
	report("ready ", timings, func(t timing) time.Duration { return t.ready })
	report("exec  ", timings, func(t timing) time.Duration { return t.exec })

	counts := requests.snapshot()
	fmt.Printf("requests: %d creates (%d refused with 429), %d readiness streams, %.2f health checks per wait beyond its stream, %d execs, %d deletes\n",
		counts["create"], counts["429"], counts["stream"], float64(counts["check"])/float64(n), counts["exec"], counts["delete"])
	if srv != nil {
		conns := srv.Conns()
		fmt.Printf("connections: %d opened, at most %d requests in flight at once\n", conns.Accepted, conns.MaxStreams)
	}
	if watch.measured.Load() {
		where := ""
		if srv != nil {
			where = " (this process holds the fake too)"
		}
		fmt.Printf("with all %d waits open: %.1f goroutines and %.1f KiB per open wait%s\n", n, watch.goroutines, watch.kib, where)
	}
	return nil
}

func useSandbox(ctx context.Context, client *miosa.Client, i int, watch *waitWatch, logger miosa.Option) (t timing, err error) {
	begin := time.Now()
	sb, err := client.Sandboxes.Create(ctx, miosa.ComputerCreateParams{Name: fmt.Sprintf("fanout-%04d", i)}, logger)
	if err != nil {
		return t, err
	}
	defer func() {
		err = errors.Join(err, client.Computers.Destroy(context.WithoutCancel(ctx), sb.ID, logger))
	}()
	t.create = time.Since(begin)

	begin = time.Now()
	watch.opened()
	ready, err := client.Sandboxes.WaitUntilReady(ctx, sb.ID, miosa.WaitOptions{}, logger)
	watch.closed()
	if err != nil {
		return t, err
	}
	if !ready {
		return t, fmt.Errorf("sandbox %s did not become ready", sb.ID)
	}
	t.ready = time.Since(begin)

	begin = time.Now()
	res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: fmt.Sprintf("echo %d", i)}, logger)
	if err != nil {
		return t, err
	}
	t.exec = time.Since(begin)
	return t, res.Err()
}

// rateLimited makes 500 creates at once against a fake that accepts 250
// requests a second and refuses the rest with 429 and Retry-After: the
// Client holds and paces every goroutine's requests, so none fails.
func rateLimited() error {
	const creates, perSecond = 500, 250
	srv, err := miosatest.Start(miosatest.WithRateLimit(perSecond), miosatest.WithBootDelay(0))
	if err != nil {
		return err
	}
	defer srv.Close()
	client := srv.Client()
	start := time.Now()
	var failed atomic.Int32
	var wg sync.WaitGroup
	for range creates {
		wg.Go(func() {
			if _, err := client.Sandboxes.Create(context.Background(), miosa.ComputerCreateParams{}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	ideal := time.Duration(creates / perSecond * int(time.Second))
	attempts := len(srv.RequestsTo("POST", "/computers"))
	fmt.Printf("rate limit: %d creates at once against %d accepted a second: %d failed, %.2f attempts per create, %s (%.2f× the ideal %s)\n",
		creates, perSecond, failed.Load(), float64(attempts)/creates, elapsed.Round(time.Millisecond), elapsed.Seconds()/ideal.Seconds(), ideal)
	return nil
}

// outage makes 200 calls at once against a fake that answers 503 to
// everything: the Client's retry budget keeps the retries to a fraction of
// its calls, rather than multiplying the outage by three.
func outage() error {
	const calls = 200
	srv, err := miosatest.Start()
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.Inject(miosatest.Fault{Status: 503, Times: miosatest.Always})
	client := srv.Client()
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() { _, _ = client.Computers.List(context.Background(), miosa.ComputerListParams{}) })
	}
	wg.Wait()
	fmt.Printf("outage: %d calls at once against an API answering 503: %.2f attempts per call\n", calls, float64(len(srv.Requests()))/calls)
	return nil
}

func report(step string, timings []timing, of func(timing) time.Duration) {
	ds := make([]time.Duration, len(timings))
	for i, t := range timings {
		ds[i] = of(t)
	}
	slices.Sort(ds)
	fmt.Printf("%s p50 %-8s p90 %-8s max %s\n", step,
		ds[len(ds)/2].Round(time.Microsecond*100),
		ds[len(ds)*9/10].Round(time.Microsecond*100),
		ds[len(ds)-1].Round(time.Microsecond*100))
}

// waitWatch measures the process once every wait is open: the goroutines
// and the live memory (heap and stacks) it holds beyond what it held
// before, per open wait.
type waitWatch struct {
	n          int
	open       atomic.Int32
	measured   atomic.Bool
	base       int
	baseBytes  uint64
	goroutines float64
	kib        float64
}

func newWaitWatch(n int) *waitWatch {
	w := &waitWatch{n: n, base: runtime.NumGoroutine()}
	runtime.GC()
	w.baseBytes = liveBytes()
	return w
}

func (w *waitWatch) opened() {
	if int(w.open.Add(1)) == w.n {
		// The last wait to open measures, a moment after its stream is
		// open, unless a wait has ended by then.
		go func() {
			time.Sleep(100 * time.Millisecond)
			if int(w.open.Load()) != w.n {
				return
			}
			g := runtime.NumGoroutine()
			runtime.GC()
			w.goroutines = float64(g-w.base) / float64(w.n)
			w.kib = float64(liveBytes()-w.baseBytes) / float64(w.n) / 1024
			w.measured.Store(true)
		}()
	}
}

func (w *waitWatch) closed() { w.open.Add(-1) }

func liveBytes() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// requestCounter is a slog.Handler that counts the Client's requests by
// what they were for, from its debug log (miosa.WithLogger writes one line
// per attempt, with its method, path and status).
type requestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *requestCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *requestCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *requestCounter) WithGroup(string) slog.Handler            { return c }

func (c *requestCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "miosa: request" {
		return nil
	}
	var method, path string
	var status int64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "method":
			method = a.Value.String()
		case "path":
			path = a.Value.String()
		case "status":
			status = a.Value.Int64()
		}
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case method == "POST" && path == "/computers":
		c.counts["create"]++
	case strings.HasSuffix(path, "/readiness/stream"):
		c.counts["stream"]++
	case method == "GET":
		c.counts["check"]++ // readiness polls and status reads
	case strings.Contains(path, "/exec"):
		c.counts["exec"]++
	case method == "DELETE":
		c.counts["delete"]++
	}
	if status == 429 {
		c.counts["429"]++
	}
	return nil
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}
