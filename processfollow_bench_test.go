package miosa_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miosa-ai/miosa-go"
)

// BenchmarkProcessesFollow_LineLatency measures, line by line, the time from
// the server flushing a process's output line to the loop body receiving
// it, for Processes.Follow and for a raw net/http reader of the same
// stream, interleaved: each round sends one line to each reader in turn
// (alternating which goes first), and a line is sent only once the reader
// has the one before, so no line waits behind another and both readers see
// the same machine load. It reports p50 and p99 of each, and the ratio of
// the medians (sdk/raw).
func BenchmarkProcessesFollow_LineLatency(b *testing.B) {
	type reader struct {
		name     string
		next     chan struct{}  // the bench asks the server for a line
		flushed  chan time.Time // when the server flushed it
		received chan struct{}  // the reader has it
		latency  []time.Duration
	}
	readers := map[string]*reader{}
	for _, name := range []string{"sdk", "raw"} {
		readers[name] = &reader{name: name, next: make(chan struct{}), flushed: make(chan time.Time, 1),
			received: make(chan struct{}), latency: make([]time.Duration, 0, b.N)}
	}
	done := make(chan struct{})
	f := newFollowFake(b, false, func(w http.ResponseWriter, r *http.Request, _ int) {
		rd := readers[r.Header.Get("X-Reader")]
		sseOpen(w)
		for id := 1; ; id++ {
			select {
			case <-rd.next:
				rd.flushed <- time.Now()
				sseSend(w, "event: stdout\nid: "+strconv.Itoa(id)+"\n"+strings.TrimPrefix(execBenchFrame, "event: stdout\n"))
			case <-done:
				sseSend(w, execExit0)
				return
			case <-r.Context().Done():
				return
			}
		}
	}, nil)
	onLine := func(rd *reader) func(string) {
		return func(string) {
			rd.latency = append(rd.latency, time.Since(<-rd.flushed))
			rd.received <- struct{}{}
		}
	}
	errs := make(chan error, 2)
	go func() {
		sdk := readers["sdk"]
		c := f.client(b, miosa.WithHeader("X-Reader", "sdk"))
		for ev, err := range c.Processes.Follow(context.Background(), "sb_1", "7") {
			if err != nil {
				errs <- err
				return
			}
			if ev.Kind == miosa.ExecStdout {
				onLine(sdk)(ev.Line)
			}
		}
		errs <- nil
	}()
	go func() {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, f.srv.URL+"/api/v1/sandboxes/sb_1/processes/7/stream", nil)
		if err != nil {
			errs <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+scriptedKey)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("X-Reader", "raw")
		resp, err := f.httpClient.Do(req)
		if err != nil {
			errs <- err
			return
		}
		defer resp.Body.Close()
		_, err = rawStreamLines(resp.Body, onLine(readers["raw"]))
		errs <- err
	}()
	order := []*reader{readers["sdk"], readers["raw"]}
	b.ResetTimer()
	for i := range b.N {
		for j := range order {
			rd := order[(i+j)%2]
			rd.next <- struct{}{}
			<-rd.received
		}
	}
	b.StopTimer()
	close(done)
	for range 2 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	p50 := map[string]float64{}
	for name, rd := range readers {
		slices.Sort(rd.latency)
		pct := func(p float64) float64 {
			return float64(rd.latency[min(int(p*float64(len(rd.latency))), len(rd.latency)-1)]) / float64(time.Millisecond)
		}
		p50[name] = pct(0.5)
		b.ReportMetric(pct(0.5), name+"-p50-ms")
		b.ReportMetric(pct(0.99), name+"-p99-ms")
	}
	b.ReportMetric(p50["sdk"]/p50["raw"], "p50-sdk/raw")
}
