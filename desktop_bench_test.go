package miosa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/miosa-ai/miosa-go"
)

// benchScreen is a 1920 × 1080 PNG like a desktop's: flat areas, windows,
// and noisy regions (a photo, text) that do not compress, 1.65 MiB.
var benchScreen = func() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 1920, 1080))
	rng := rand.New(rand.NewPCG(1, 2))
	for y := range 1080 {
		for x := range 1920 {
			c := color.RGBA{0x2b, 0x5f, 0x75, 0xff}
			switch {
			case x > 200 && x < 1100 && y > 100 && y < 700: // a photo
				c = color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 0xff}
			case x > 1200 && x < 1800 && y > 150 && y < 900 && (y/14)%2 == 0 && rng.IntN(3) == 0: // text
				c = color.RGBA{0x20, 0x20, 0x20, 0xff}
			case x > 1200 && x < 1800 && y > 150 && y < 900:
				c = color.RGBA{0xf2, 0xf2, 0xf2, 0xff}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	return buf.Bytes()
}()

// desktopBenchServer answers screenshots with benchScreen and actions with
// {"success":true}, as a server does.
func desktopBenchServer(b *testing.B) string {
	b.Helper()
	length := strconv.Itoa(len(benchScreen))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Content-Length", length)
			_, _ = w.Write(benchScreen)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"success":true}`)
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/api/v1"
}

// rawScreenshot is what a hand-written client does: a GET whose body goes
// into w with io.Copy.
func rawScreenshot(ctx context.Context, hc *http.Client, base string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/computers/cmp_1/desktop/screenshot", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+scriptedKey)
	req.Header.Set("User-Agent", "miosa-go/"+miosa.Version)
	req.Header.Set("Accept", "image/png")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return io.Copy(w, resp.Body)
}

// rawClick is what a hand-written client does for a click: the JSON body,
// a POST, and a look at the answer's "success".
func rawClick(ctx context.Context, hc *http.Client, base string) error {
	body, err := json.Marshal(struct {
		X int `json:"x"`
		Y int `json:"y"`
	}{640, 400})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/computers/cmp_1/desktop/click", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+scriptedKey)
	req.Header.Set("User-Agent", "miosa-go/"+miosa.Version)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var result struct {
		Success *bool `json:"success"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(answer, &result) != nil || result.Success == nil || !*result.Success {
		return fmt.Errorf("status %d: %s", resp.StatusCode, answer)
	}
	return nil
}

// desktopBenchClients returns an SDK client and a plain one for the
// benchmark server at base. They share one transport, so that both use
// the same kept-alive connection: two connections can differ in speed for
// a whole run (the kernel sizes each one's buffers as it goes), which
// would be measured as a difference between the clients.
func desktopBenchClients(b *testing.B, base string) (*miosa.Client, *http.Client) {
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	client, err := miosa.NewClient(scriptedKey, miosa.WithBaseURL(base), miosa.WithHTTPClient(hc))
	if err != nil {
		b.Fatal(err)
	}
	return client, hc
}

// pairedRun is what pairTimes measured: each client's total time, and the
// median of the ratios sdk ÷ raw of each pair, which a load spike in one
// pair cannot move much on a busy machine.
type pairedRun struct {
	sdk, raw    time.Duration
	medianRatio float64
}

// pairTimes runs sdk and raw alternately, each first every other time so
// that order gives neither an advantage.
func pairTimes(b *testing.B, sdk, raw func() error) pairedRun {
	timed := func(op func() error) time.Duration {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var run pairedRun
	var ratios []float64
	sdkFirst := true
	for b.Loop() {
		var s, r time.Duration
		if sdkFirst {
			s, r = timed(sdk), timed(raw)
		} else {
			r, s = timed(raw), timed(sdk)
		}
		run.sdk, run.raw = run.sdk+s, run.raw+r
		ratios = append(ratios, s.Seconds()/r.Seconds())
		sdkFirst = !sdkFirst
	}
	slices.Sort(ratios)
	run.medianRatio = ratios[len(ratios)/2]
	return run
}

// BenchmarkDesktopScreenshotPaired alternates Desktop.Screenshot with
// rawScreenshot, both into a writer that keeps nothing, and reports the
// SDK's throughput as a fraction of raw's (above 1: the SDK is faster),
// the median over the pairs.
func BenchmarkDesktopScreenshotPaired(b *testing.B) {
	base := desktopBenchServer(b)
	client, hc := desktopBenchClients(b, base)
	size := int64(len(benchScreen))
	sdk := func() error {
		shot, err := client.Desktop.Screenshot(b.Context(), "cmp_1", &countingWriter{})
		if err == nil && (shot.Bytes != size || shot.Width != 1920 || shot.Height != 1080) {
			err = fmt.Errorf("got %+v", shot)
		}
		return err
	}
	raw := func() error { return checkSize(rawScreenshot(b.Context(), hc, base, &countingWriter{}))(size) }
	b.Run("1920x1080", func(b *testing.B) {
		b.SetBytes(2 * size)
		run := pairTimes(b, sdk, raw)
		b.ReportMetric(1/run.medianRatio, "sdk/raw-throughput")
		b.ReportMetric(float64(size*int64(b.N))/run.sdk.Seconds()/1e6, "sdk-MB/s")
		b.ReportMetric(float64(size*int64(b.N))/run.raw.Seconds()/1e6, "raw-MB/s")
	})
}

// BenchmarkDesktopScreenshot times each client alone with its memory: the
// heap's peak growth over the whole run (client and server) and the
// allocations per screenshot. (benchTransfer would name the runs by whole
// MiB; the image is 1.65 MiB.)
func BenchmarkDesktopScreenshot(b *testing.B) {
	base := desktopBenchServer(b)
	client, hc := desktopBenchClients(b, base)
	size := int64(len(benchScreen))
	for _, c := range []struct {
		name string
		op   func() error
	}{
		{"sdk", func() error {
			_, err := client.Desktop.Screenshot(b.Context(), "cmp_1", &countingWriter{})
			return err
		}},
		{"raw", func() error { return checkSize(rawScreenshot(b.Context(), hc, base, &countingWriter{}))(size) }},
	} {
		b.Run(c.name+"/1920x1080", func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			h := startHeapPeak()
			for b.Loop() {
				if err := c.op(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(h.growthMiB(), "peak-heap-MiB")
		})
	}
}

// BenchmarkDesktopActionPaired alternates Desktop.Click with rawClick and
// reports each one's time per call and their ratio. "caller-deadline"
// gives both a context that already has a deadline, so the SDK needs no
// attempt deadline of its own; "raw-deadline" gives the raw call the
// guarantee the SDK keeps instead, a deadline of its own per request.
func BenchmarkDesktopActionPaired(b *testing.B) {
	base := desktopBenchServer(b)
	run := func(b *testing.B, ctx context.Context, rawDeadline bool) {
		client, hc := desktopBenchClients(b, base)
		sdk := func() error { return client.Desktop.Click(ctx, "cmp_1", image.Pt(640, 400), miosa.ClickParams{}) }
		raw := func() error {
			if !rawDeadline {
				return rawClick(ctx, hc, base)
			}
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			return rawClick(ctx, hc, base)
		}
		run := pairTimes(b, sdk, raw)
		b.ReportMetric(float64(run.sdk.Nanoseconds())/float64(b.N), "sdk-ns/op")
		b.ReportMetric(float64(run.raw.Nanoseconds())/float64(b.N), "raw-ns/op")
		b.ReportMetric(run.medianRatio, "sdk/raw")
	}
	b.Run("loopback", func(b *testing.B) { run(b, b.Context(), false) })
	b.Run("loopback-caller-deadline", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second) // sooner than the SDK's 60 s
		defer cancel()
		run(b, ctx, false)
	})
	b.Run("loopback-raw-deadline", func(b *testing.B) { run(b, b.Context(), true) })
}
