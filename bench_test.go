package miosa

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// benchBody is a realistic GET /computers/{id} answer, in the "data"
// envelope; bareBenchBody is the same computer bare, as the official SDKs'
// fixtures answer it.
const (
	benchBody     = `{"data":` + computerJSON + `}`
	bareBenchBody = computerJSON
)

func newBenchServer(b *testing.B, body string) *httptest.Server {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-ID", "req_bench")
		_, _ = io.WriteString(w, body)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// rawComputer is what a hand-written client would decode into.
type rawComputer struct {
	ID                  string         `json:"id"`
	Name                string         `json:"name"`
	Slug                string         `json:"slug"`
	Status              string         `json:"status"`
	TemplateType        string         `json:"template_type"`
	Size                string         `json:"size"`
	IPAddress           string         `json:"ip_address"`
	VNCURL              string         `json:"vnc_url"`
	Visibility          string         `json:"visibility"`
	TenantID            string         `json:"tenant_id"`
	WorkspaceID         string         `json:"workspace_id"`
	Metadata            map[string]any `json:"metadata"`
	ExternalWorkspaceID string         `json:"external_workspace_id"`
	ExternalUserID      string         `json:"external_user_id"`
	ExternalProjectID   string         `json:"external_project_id"`
	CreatedAt           time.Time      `json:"created_at"`
	UpdatedAt           time.Time      `json:"updated_at"`
}

// rawGet is what a hand-written client does for GET /computers/{id}, whose
// answer it knows to be in the "data" envelope, or bare.
func rawGet(ctx context.Context, hc *http.Client, url string, bare bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	var env struct {
		Data rawComputer `json:"data"`
	}
	into := any(&env)
	if bare {
		into = &env.Data
	}
	if err := json.Unmarshal(body, into); err != nil {
		return err
	}
	if env.Data.ID != "cmp_1" {
		return fmt.Errorf("id %q", env.Data.ID)
	}
	return nil
}

// BenchmarkComputersGetPaired runs the SDK call and the raw baseline
// alternately, each against its own copy of the same answer, and reports
// each one's time per call, their ratio, and the allocations the SDK makes
// beyond raw. Pairing makes the comparison robust on a busy machine, where
// two separate benchmarks see different load. "loopback" goes through a
// real socket to an httptest server; "memory" answers from memory, so it
// times the client side alone. "caller-deadline" gives both a context that
// already has a deadline (as a server's request context often does), so the
// SDK needs no attempt timer of its own. "raw-deadline" gives the raw call
// the SDK's guarantee instead: a deadline of its own for every request.
// "bare" answers with the computer bare instead of in the "data" envelope.
func BenchmarkComputersGetPaired(b *testing.B) {
	enveloped := pairedAnswer{body: benchBody}
	bare := pairedAnswer{body: bareBenchBody, bare: true}
	loopback := func(b *testing.B, ctx context.Context, answer pairedAnswer, rawTimeout time.Duration) {
		srv := newBenchServer(b, answer.body)
		benchPaired(b, ctx, srv.URL, NewHTTPClient(nil), NewHTTPClient(nil), answer, rawTimeout)
	}
	memory := func(b *testing.B, ctx context.Context, answer pairedAnswer, rawTimeout time.Duration) {
		benchPaired(b, ctx, "https://api.test", memoryClient(answer.body), memoryClient(answer.body), answer, rawTimeout)
	}
	b.Run("loopback", func(b *testing.B) { loopback(b, b.Context(), enveloped, 0) })
	b.Run("loopback-caller-deadline", func(b *testing.B) { loopback(b, withDeadline(b), enveloped, 0) })
	b.Run("loopback-raw-deadline", func(b *testing.B) { loopback(b, b.Context(), enveloped, defaultRequestTimeout) })
	b.Run("loopback-bare", func(b *testing.B) { loopback(b, b.Context(), bare, 0) })
	b.Run("memory", func(b *testing.B) { memory(b, b.Context(), enveloped, 0) })
	b.Run("memory-caller-deadline", func(b *testing.B) { memory(b, withDeadline(b), enveloped, 0) })
	b.Run("memory-raw-deadline", func(b *testing.B) { memory(b, b.Context(), enveloped, defaultRequestTimeout) })
	b.Run("memory-bare", func(b *testing.B) { memory(b, b.Context(), bare, 0) })
}

// pairedAnswer is the answer both clients get, and whether it is bare.
type pairedAnswer struct {
	body string
	bare bool
}

// withDeadline is b's context with a deadline sooner than the SDK's
// attempt timeout.
func withDeadline(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
	b.Cleanup(cancel)
	return ctx
}

// benchPaired pairs the SDK's call with the raw one; a non-zero rawTimeout
// bounds each raw request with a deadline of its own, as the SDK bounds
// each attempt.
func benchPaired(b *testing.B, ctx context.Context, origin string, sdkHTTP, rawHTTP *http.Client, answer pairedAnswer, rawTimeout time.Duration) {
	c, err := NewClient(testKey, WithBaseURL(origin+"/api/v1"), WithHTTPClient(sdkHTTP))
	if err != nil {
		b.Fatal(err)
	}
	url := origin + "/api/v1/computers/cmp_1"
	sdkGet := func() error { _, err := c.Computers.Get(ctx, "cmp_1"); return err }
	rawGet := func() error {
		if rawTimeout == 0 {
			return rawGet(ctx, rawHTTP, url, answer.bare)
		}
		ctx, cancel := context.WithTimeout(ctx, rawTimeout)
		defer cancel()
		return rawGet(ctx, rawHTTP, url, answer.bare)
	}
	var sdk, raw time.Duration
	timed := func(total *time.Duration, get func() error) {
		start := time.Now()
		if err := get(); err != nil {
			b.Fatal(err)
		}
		*total += time.Since(start)
	}
	sdkFirst := true
	for b.Loop() {
		// Alternating which goes first cancels any advantage of order.
		if sdkFirst {
			timed(&sdk, sdkGet)
			timed(&raw, rawGet)
		} else {
			timed(&raw, rawGet)
			timed(&sdk, sdkGet)
		}
		sdkFirst = !sdkFirst
	}
	b.StopTimer()
	count := func(get func() error) float64 { return testing.AllocsPerRun(200, func() { _ = get() }) }
	b.ReportMetric(float64(sdk.Nanoseconds())/float64(b.N), "sdk-ns/op")
	b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(sdk)/float64(raw), "sdk/raw")
	b.ReportMetric(count(sdkGet)-count(rawGet), "extra-allocs/op")
}

// memoryClient answers every request with body from memory, so the
// pipeline benchmarks time the client side alone.
func memoryClient(body string) *http.Client {
	header := http.Header{"Content-Type": {"application/json"}}
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: header, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r}, nil
	})}
}
