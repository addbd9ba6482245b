package miosa_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// fleetServerEnv makes TestFleetServerProcess serve instead of skipping:
// "h2" for HTTPS with HTTP/2, "h1" for HTTPS with HTTP/1.1 only.
const fleetServerEnv = "MIOSA_FLEET_BENCH_SERVER"

// fleetBoot is how long the fleet benchmark's sandboxes take to boot.
const fleetBoot = 5 * time.Second

// TestFleetServerProcess is the server half of BenchmarkFleet_OpenWaits:
// miosatest, in a child process so that the benchmark measures the client
// alone, with a control server beside it that reports and resets the
// request log and the connection counts, and boots sandboxes (which do
// not boot on their own) fleetBoot after it is asked to.
func TestFleetServerProcess(t *testing.T) {
	mode := os.Getenv(fleetServerEnv)
	if mode == "" {
		t.Skip("the server process of a benchmark")
	}
	opts := []miosatest.Option{miosatest.WithTLS(), miosatest.WithBootDelay(time.Hour)}
	if mode == "h1" {
		opts = append(opts, miosatest.WithoutHTTP2())
	}
	srv := miosatest.NewServer(t, opts...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(fleetCounts{
			Streams:  len(srv.RequestsTo(http.MethodGet, "/sandboxes/*/readiness/stream")),
			Polls:    len(srv.RequestsTo(http.MethodGet, "/sandboxes/*/readiness")),
			Statuses: len(srv.RequestsTo(http.MethodGet, "/computers/*")),
			Conns:    srv.Conns(),
		})
	})
	mux.HandleFunc("POST /boot", func(w http.ResponseWriter, r *http.Request) {
		var ids []string
		if err := json.NewDecoder(r.Body).Decode(&ids); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		time.AfterFunc(fleetBoot, func() {
			for _, id := range ids {
				_ = srv.SetStatus(id, miosa.StatusRunning)
			}
		})
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		srv.ResetRequests()
		srv.ResetConns()
	})
	control := httptest.NewServer(mux)
	defer control.Close()
	fmt.Println(srv.URL, control.URL)
	_, _ = io.Copy(io.Discard, os.Stdin) // serve until the parent goes away
}

// fleetCounts is what the server process saw since its last reset.
type fleetCounts struct {
	Streams, Polls, Statuses int
	Conns                    miosatest.Conns
}

// BenchmarkFleet_OpenWaits waits for 2,000 sandboxes at once, from 2,000
// goroutines, with the SDK's default client against miosatest in a child
// process over HTTPS: h2 with HTTP/2 (Go's server default of 250 streams a
// connection), h1 with HTTP/1.1 only. Once every wait's stream is open the
// sandboxes take fleetBoot (5 s) to boot. Halfway through, it counts the
// goroutines and the live memory (heap after a collection, and stacks) the
// waits add, the caller's goroutine included; at the end, the requests
// beyond the streams (readiness polls and status reads) and the
// connections the server accepted since the creates.
func BenchmarkFleet_OpenWaits(b *testing.B) {
	const waits = 2000
	for _, mode := range []string{"h2", "h1"} {
		b.Run(mode, func(b *testing.B) {
			line, stop := startServerProcess(b, "TestFleetServerProcess", fleetServerEnv, mode)
			defer stop()
			base, control, _ := strings.Cut(line, " ")
			hc := miosa.NewHTTPClient(&tls.Config{InsecureSkipVerify: true}) // the child's test certificate
			defer hc.CloseIdleConnections()
			client, err := miosa.NewClient(miosatest.TestAPIKey, miosa.WithBaseURL(base), miosa.WithHTTPClient(hc))
			if err != nil {
				b.Fatal(err)
			}
			var (
				counts     fleetCounts
				goroutines float64
				memory     float64
			)
			for range b.N {
				// The creates go 50 at a time, so that over HTTP/1.1 they
				// do not open 2,000 connections before the waits do.
				ids := make([]string, waits)
				var wg sync.WaitGroup
				for w := range 50 {
					wg.Go(func() {
						for i := w; i < waits; i += 50 {
							sb, err := client.Sandboxes.Create(context.Background(), miosa.ComputerCreateParams{})
							if err != nil {
								b.Error(err)
								return
							}
							ids[i] = sb.ID
						}
					})
				}
				wg.Wait()
				fleetControl(b, http.MethodPost, control+"/reset", nil, nil)
				runtime.GC()
				var before, during runtime.MemStats
				runtime.ReadMemStats(&before)
				baseGoroutines := runtime.NumGoroutine()

				var notReady atomic.Int32
				for _, id := range ids {
					wg.Go(func() {
						ready, err := client.Sandboxes.WaitUntilReady(context.Background(), id, miosa.WaitOptions{})
						if err != nil || !ready {
							notReady.Add(1)
						}
					})
				}
				// Every wait's stream is opened first (over HTTP/1.1 that is
				// 2,000 TLS handshakes, slow on a busy machine); then the
				// sandboxes boot in fleetBoot, and halfway through the
				// waits are measured.
				var open fleetCounts
				for opened := time.Now(); open.Conns.Streams < waits; time.Sleep(50 * time.Millisecond) {
					if time.Since(opened) > time.Minute {
						b.Fatalf("only %d of %d streams open after a minute", open.Conns.Streams, waits)
					}
					fleetControl(b, http.MethodGet, control+"/counts", nil, &open)
				}
				fleetControl(b, http.MethodPost, control+"/boot", ids, nil)
				time.Sleep(fleetBoot / 2)
				goroutines = float64(runtime.NumGoroutine()-baseGoroutines) / waits
				runtime.GC()
				runtime.ReadMemStats(&during)
				memory = float64(int64(during.HeapAlloc+during.StackInuse)-int64(before.HeapAlloc+before.StackInuse)) / waits
				wg.Wait()
				if n := notReady.Load(); n > 0 {
					b.Fatalf("%d of %d waits did not report ready", n, waits)
				}
				fleetControl(b, http.MethodGet, control+"/counts", nil, &counts)
				hc.CloseIdleConnections()
			}
			b.ReportMetric(float64(counts.Polls+counts.Statuses)/waits, "requests/wait")
			b.ReportMetric(goroutines, "goroutines/wait")
			b.ReportMetric(memory/1024, "KiB/wait")
			b.ReportMetric(float64(counts.Conns.Accepted), "connections")
		})
	}
}

// fleetControl asks the server process's control server, sending body as
// JSON and decoding the answer into into, when they are not nil.
func fleetControl(b *testing.B, method, url string, body, into any) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			b.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(payload))
	if err != nil {
		b.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	if into != nil {
		if err := json.NewDecoder(res.Body).Decode(into); err != nil {
			b.Fatal(err)
		}
	}
}
