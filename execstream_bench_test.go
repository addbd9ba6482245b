package miosa_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/miosa-ai/miosa-go"
)

// execBenchFrame is one stdout event as a server sends it: a line about as
// long as a compiler's.
var execBenchFrame = "event: stdout\ndata: " + mustJSON(map[string]string{
	"line": "ok  \tgithub.com/example/project/internal/pkg\t0.123s\tcoverage: 81.2% of statements",
}) + "\n\n"

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// execRawStream is what a hand-written client does with the streamed exec:
// POST, then read lines with bufio, decoding each stdout/stderr data line,
// until the exit event. onLine is called for each line; it returns the
// number of lines read.
func execRawStream(hc *http.Client, base string, onLine func(string)) (int, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/sandboxes/sb_1/exec/stream",
		strings.NewReader(`{"command":"make"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+scriptedKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return rawStreamLines(resp.Body, onLine)
}

// rawStreamLines reads an output stream as a hand-written client does:
// lines with bufio, each stdout/stderr data line decoded with
// encoding/json, until the exit event.
func rawStreamLines(body io.Reader, onLine func(string)) (int, error) {
	r := bufio.NewReader(body)
	var (
		n     int
		event string
		out   struct {
			Line string `json:"line"`
		}
	)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return n, fmt.Errorf("after %d lines: %w", n, err)
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[len("event: "):])
		case bytes.HasPrefix(line, []byte("data: ")) && event == "exit":
			return n, nil
		case bytes.HasPrefix(line, []byte("data: ")):
			if err := json.Unmarshal(line[len("data: "):], &out); err != nil {
				return n, err
			}
			onLine(out.Line)
			n++
		}
	}
}

// BenchmarkExecStream_LineLatency measures, line by line, the time from the
// server flushing an output line to the loop body receiving it. Server and
// loop take turns (the server sends the next line once the loop has the
// previous one), so no line waits behind another: b.N lines through one
// stream, p50 and p99 reported. The raw case reads the same stream with
// bufio and encoding/json.
func BenchmarkExecStream_LineLatency(b *testing.B) {
	for _, reader := range []string{"sdk", "raw"} {
		b.Run(reader, func(b *testing.B) {
			flushed := make(chan time.Time, 1)
			received := make(chan struct{})
			lines := b.N
			f := newExecStreamFake(b, func(w http.ResponseWriter, r *http.Request) {
				sseOpen(w)
				for range lines {
					flushed <- time.Now()
					sseSend(w, execBenchFrame)
					select {
					case <-received:
					case <-r.Context().Done():
						return
					}
				}
				sseSend(w, execExit0)
			}, nil)
			latencies := make([]time.Duration, 0, b.N)
			onLine := func(string) {
				latencies = append(latencies, time.Since(<-flushed))
				received <- struct{}{}
			}
			b.ResetTimer()
			var n int
			if reader == "raw" {
				var err error
				if n, err = execRawStream(f.httpClient, f.srv.URL+"/api/v1", onLine); err != nil {
					b.Fatal(err)
				}
			} else {
				for ev, err := range f.client(b).Exec.Stream(context.Background(), "sb_1", miosa.ExecParams{Command: "make"}) {
					if err != nil {
						b.Fatal(err)
					}
					if ev.Kind == miosa.ExecStdout {
						onLine(ev.Line)
						n++
					}
				}
			}
			b.StopTimer()
			if n != lines {
				b.Fatalf("%d lines, want %d", n, lines)
			}
			sseReportLatencies(b, latencies)
		})
	}
}

// BenchmarkExecStream_Throughput streams execBenchLines lines through one
// stream as fast as the server writes them, once with the SDK and once with
// a raw net/http reader of the same stream, in turns, so both see the same
// machine load. It reports lines per second for each and their ratio
// (sdk/raw; 1 means as fast as the raw reader). "flush-each" flushes every
// line on its own, as a server relaying a slow command does; "bulk" lets
// the server's buffer fill before it is written, as for a command that
// prints faster than the network carries.
func BenchmarkExecStream_Throughput(b *testing.B) {
	const execBenchLines = 2000
	for _, flush := range []string{"flush-each", "bulk"} {
		b.Run(flush, func(b *testing.B) {
			f := newExecStreamFake(b, func(w http.ResponseWriter, r *http.Request) {
				sseOpen(w)
				for range execBenchLines {
					if _, err := io.WriteString(w, execBenchFrame); err != nil {
						return
					}
					if flush == "flush-each" {
						w.(http.Flusher).Flush()
					}
				}
				sseSend(w, execExit0)
			}, nil)
			client := f.client(b)
			sdk := func() (int, error) {
				n := 0
				for ev, err := range client.Exec.Stream(context.Background(), "sb_1", miosa.ExecParams{Command: "make"}) {
					if err != nil {
						return n, err
					}
					if ev.Kind == miosa.ExecStdout {
						n++
					}
				}
				return n, nil
			}
			raw := func() (int, error) {
				return execRawStream(f.httpClient, f.srv.URL+"/api/v1", func(string) {})
			}
			var sdkTime, rawTime time.Duration
			b.ResetTimer()
			for i := range b.N {
				// Alternate which goes first, so neither always finds the
				// other's garbage to collect.
				order := []*time.Duration{&sdkTime, &rawTime}
				if i%2 == 1 {
					order[0], order[1] = order[1], order[0]
				}
				for _, total := range order {
					read := raw
					if total == &sdkTime {
						read = sdk
					}
					start := time.Now()
					n, err := read()
					*total += time.Since(start)
					if err != nil || n != execBenchLines {
						b.Fatalf("%d lines, want %d (%v)", n, execBenchLines, err)
					}
				}
			}
			b.StopTimer()
			lines := float64(b.N * execBenchLines)
			b.ReportMetric(lines/sdkTime.Seconds(), "sdk-lines/s")
			b.ReportMetric(lines/rawTime.Seconds(), "raw-lines/s")
			b.ReportMetric(rawTime.Seconds()/sdkTime.Seconds(), "sdk/raw")
		})
	}
}
