package miosa_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
)

// ssePipeServer answers the readiness endpoints in memory, so that a wait runs
// inside a synctest bubble: time is fake, and synctest.Wait tells exactly
// when the client has consumed everything it was sent. A bubble also fails
// the test if any goroutine is left blocked when it ends, which makes every
// test here a leak test.
type ssePipeServer struct {
	// stream answers a stream request; nil answers 404.
	stream func(r *http.Request) (*http.Response, error)
	// poll answers poll number n (from 1); nil answers ready.
	poll func(n int) *http.Response
	// status answers GET /computers/{id} number n (from 1); nil answers a
	// running machine.
	status func(n int) *http.Response

	mu        sync.Mutex
	streams   int
	polls     int
	statuses  int
	inFlight  int
	maxFlight int
	pollTimes []time.Time
}

func (p *ssePipeServer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	if err := r.Context().Err(); err != nil {
		return nil, err // as a real transport does: nothing is sent
	}
	p.mu.Lock()
	p.inFlight++
	p.maxFlight = max(p.maxFlight, p.inFlight)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.inFlight--
		p.mu.Unlock()
	}()
	if strings.HasSuffix(r.URL.Path, "/readiness/stream") {
		p.mu.Lock()
		p.streams++
		p.mu.Unlock()
		if p.stream == nil {
			return ssePipeJSON(r, http.StatusNotFound, `{"error":"not found"}`), nil
		}
		return p.stream(r)
	}
	if strings.Contains(r.URL.Path, "/computers/") {
		p.mu.Lock()
		p.statuses++
		n := p.statuses
		p.mu.Unlock()
		if p.status == nil {
			return ssePipeJSON(r, http.StatusOK, `{"data":{"id":"sb_1","status":"running"}}`), nil
		}
		res := p.status(n)
		res.Request = r
		return res, nil
	}
	p.mu.Lock()
	p.polls++
	n := p.polls
	p.pollTimes = append(p.pollTimes, time.Now())
	p.mu.Unlock()
	if p.poll == nil {
		return ssePipeJSON(r, http.StatusOK, `{"ready":true}`), nil
	}
	res := p.poll(n)
	res.Request = r
	return res, nil
}

func (p *ssePipeServer) counts() (streams, polls int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streams, p.polls
}

func (p *ssePipeServer) client(t *testing.T) *miosa.Client {
	c, err := miosa.NewClient(sseTestKey,
		miosa.WithBaseURL("http://127.0.0.1/api/v1"),
		miosa.WithHTTPClient(&http.Client{Transport: p}),
		miosa.WithRetryDelay(0, 0))
	require.NoError(t, err)
	return c
}

func ssePipeJSON(r *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
		Request:    r,
	}
}

// ssePipeStream answers an open event stream and returns the writer that feeds
// it. Like a real transport, ending the request's context fails the body.
func ssePipeStream(r *http.Request) (*http.Response, *io.PipeWriter) {
	return ssePipeAnswer(r, http.StatusOK, "text/event-stream")
}

// ssePipeAnswer answers with status and content type, and a body fed by the
// returned writer.
func ssePipeAnswer(r *http.Request, status int, contentType string) (*http.Response, *io.PipeWriter) {
	pr, pw := io.Pipe()
	stop := context.AfterFunc(r.Context(), func() { pr.CloseWithError(r.Context().Err()) })
	return &http.Response{
		StatusCode: status,
		Header:     http.Header{"Content-Type": {contentType}},
		Body:       &ssePipeBody{PipeReader: pr, stop: stop},
		Request:    r,
	}, pw
}

type ssePipeBody struct {
	*io.PipeReader
	stop func() bool
}

func (b *ssePipeBody) Close() error {
	b.stop()
	return b.PipeReader.Close()
}

// ssePipeOpenStreams makes a ssePipeServer whose streams are handed to the test,
// which writes their frames itself.
func ssePipeOpenStreams() (*ssePipeServer, <-chan *io.PipeWriter) {
	writers := make(chan *io.PipeWriter, 1)
	return &ssePipeServer{stream: func(r *http.Request) (*http.Response, error) {
		res, pw := ssePipeStream(r)
		writers <- pw
		return res, nil
	}}, writers
}

type sseWaitResult struct {
	ready bool
	err   error
	at    time.Time
}

func sseStartWait(ctx context.Context, c *miosa.Client, wait miosa.WaitOptions) <-chan sseWaitResult {
	done := make(chan sseWaitResult, 1)
	go func() {
		ready, err := c.Sandboxes.WaitUntilReady(ctx, "sb_1", wait)
		done <- sseWaitResult{ready, err, time.Now()}
	}()
	return done
}

func TestWaitUntilReady_CancelAfterEventReturnsAtOnceAndLeavesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, writers := ssePipeOpenStreams()
		ctx, cancel := context.WithCancel(t.Context())
		done := sseStartWait(ctx, srv.client(t), miosa.WaitOptions{})

		pw := <-writers
		_, err := io.WriteString(pw, "id: 1\nevent: progress\ndata: 50\n\n")
		require.NoError(t, err)
		synctest.Wait() // the client has read and handled the event
		cancelAt := time.Now()
		cancel()
		res := <-done

		require.ErrorIs(t, res.err, context.Canceled)
		assert.False(t, res.ready)
		assert.Equal(t, cancelAt, res.at, "no time may pass between cancel and return")
		streams, polls := srv.counts()
		assert.Equal(t, 1, streams)
		assert.Zero(t, polls)
		_, err = io.WriteString(pw, "event: ready\n\n")
		assert.Error(t, err, "the stream's body must have been closed")
	})
}

// ssePipeNotReady answers every poll: not ready yet.
func ssePipeNotReady(int) *http.Response {
	return ssePipeJSON(nil, http.StatusOK, `{"data":{"ready":false,"status":"booting"}}`)
}

func TestWaitUntilReady_DeadlineWhileStreamingReturnsDeadlineError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, writers := ssePipeOpenStreams()
		srv.poll = ssePipeNotReady
		start := time.Now()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		done := sseStartWait(ctx, srv.client(t), miosa.WaitOptions{})
		pw := <-writers
		_, err := io.WriteString(pw, ": keepalive\n\nevent: progress\n\n")
		require.NoError(t, err)

		res := <-done
		require.ErrorIs(t, res.err, context.DeadlineExceeded)
		assert.False(t, res.ready)
		assert.Equal(t, 5*time.Second, res.at.Sub(start))
		streams, polls := srv.counts()
		assert.Equal(t, 1, streams)
		assert.InDelta(t, 4, polls, 1, "a probe a second while the stream is silent")
	})
}

func TestWaitUntilReady_CancelBeforeHeadersReturnsContextError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arrived := make(chan struct{})
		srv := &ssePipeServer{stream: func(r *http.Request) (*http.Response, error) {
			close(arrived)
			<-r.Context().Done() // headers never come
			return nil, r.Context().Err()
		}}
		ctx, cancel := context.WithCancel(t.Context())
		done := sseStartWait(ctx, srv.client(t), miosa.WaitOptions{})
		<-arrived
		synctest.Wait()
		cancelAt := time.Now()
		cancel()
		res := <-done
		require.ErrorIs(t, res.err, context.Canceled)
		assert.Equal(t, cancelAt, res.at)
		streams, polls := srv.counts()
		assert.Equal(t, 1, streams)
		assert.Zero(t, polls)
	})
}

func TestWaitUntilReady_LocalTimeoutEndsASilentStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, writers := ssePipeOpenStreams()
		srv.poll = ssePipeNotReady
		start := time.Now()
		done := sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{Timeout: 3 * time.Second})
		<-writers
		res := <-done
		require.NoError(t, res.err)
		assert.False(t, res.ready)
		assert.Equal(t, 3*time.Second, res.at.Sub(start))
		streams, _ := srv.counts()
		assert.Equal(t, 1, streams)
	})
}

func TestWaitUntilReady_DefaultLocalTimeoutIsThirtySeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &ssePipeServer{poll: func(int) *http.Response {
			return ssePipeJSON(nil, http.StatusOK, `{"data":{"ready":false}}`)
		}}
		start := time.Now()
		res := <-sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{PollOnly: true})
		require.NoError(t, res.err)
		assert.False(t, res.ready)
		assert.Equal(t, 30*time.Second, res.at.Sub(start))
	})
}

func TestWaitUntilReady_LocalTimeoutBoundsStreamAndPollingTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, writers := ssePipeOpenStreams()
		srv.poll = ssePipeNotReady
		start := time.Now()
		done := sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{Timeout: 3 * time.Second})
		pw := <-writers
		time.Sleep(900 * time.Millisecond) // before the first probe
		require.NoError(t, pw.Close())     // the stream ends without a verdict

		res := <-done
		require.NoError(t, res.err)
		assert.False(t, res.ready)
		assert.Equal(t, 3*time.Second, res.at.Sub(start), "the 3 s cover the stream and the polls")
		srv.mu.Lock()
		defer srv.mu.Unlock()
		require.NotEmpty(t, srv.pollTimes)
		assert.Equal(t, 900*time.Millisecond, srv.pollTimes[0].Sub(start), "polling starts when the stream ends")
		// One poll every 10 ms for the remaining 2.1 s; the poll due at the
		// very instant of the deadline may or may not start.
		assert.InDelta(t, 210, srv.polls, 1)
	})
}

func TestWaitUntilReady_PollsOneAtATimeAtTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &ssePipeServer{poll: func(n int) *http.Response {
			if n < 4 {
				return ssePipeJSON(nil, http.StatusOK, `{"ready":false}`)
			}
			return ssePipeJSON(nil, http.StatusOK, `{"status":"ready"}`)
		}}
		start := time.Now()
		res := <-sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{PollOnly: true, PollInterval: 250 * time.Millisecond})
		require.NoError(t, res.err)
		assert.True(t, res.ready)
		assert.Equal(t, 750*time.Millisecond, res.at.Sub(start))
		streams, polls := srv.counts()
		assert.Zero(t, streams)
		assert.Equal(t, 4, polls)
		assert.Equal(t, 1, srv.maxFlight)
	})
}

func TestWaitUntilReady_PollingHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &ssePipeServer{poll: func(n int) *http.Response {
			if n == 1 {
				res := ssePipeJSON(nil, http.StatusTooManyRequests, `{"message":"slow down","code":"RATE_LIMITED"}`)
				res.Header.Set("Retry-After", "2")
				return res
			}
			return ssePipeJSON(nil, http.StatusOK, `{"data":{"ready":true}}`)
		}}
		start := time.Now()
		res := <-sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{})
		require.NoError(t, res.err)
		assert.True(t, res.ready)
		assert.Equal(t, 2*time.Second, res.at.Sub(start), "the second poll waits out the server's hint")
		streams, polls := srv.counts()
		assert.Equal(t, 1, streams)
		assert.Equal(t, 2, polls)
	})
}

func TestWaitUntilReady_CancelWhilePollingReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &ssePipeServer{poll: func(int) *http.Response {
			return ssePipeJSON(nil, http.StatusOK, `{"ready":false}`)
		}}
		ctx, cancel := context.WithCancel(t.Context())
		done := sseStartWait(ctx, srv.client(t), miosa.WaitOptions{PollInterval: time.Second})
		time.Sleep(2500 * time.Millisecond)
		cancelAt := time.Now()
		cancel()
		res := <-done
		require.ErrorIs(t, res.err, context.Canceled)
		assert.False(t, res.ready)
		assert.Equal(t, cancelAt, res.at)
		_, polls := srv.counts()
		assert.Equal(t, 3, polls)
	})
}

func TestWaitUntilReady_VerdictEventsReturnAtOnceAndCloseTheStream(t *testing.T) {
	tests := []struct {
		frame     string
		wantReady bool
	}{
		{"event: ready\ndata: {}\n\n", true},
		{"event: timeout\ndata: {\"reason\":\"not_ready_after_30s\"}\n\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.frame, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, writers := ssePipeOpenStreams()
				done := sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{})
				pw := <-writers
				time.Sleep(500 * time.Millisecond) // before the first probe
				sentAt := time.Now()
				_, err := io.WriteString(pw, ": hb\n\n"+tt.frame)
				require.NoError(t, err)

				// The server keeps the stream open: only the verdict can end the wait.
				res := <-done
				require.NoError(t, res.err)
				assert.Equal(t, tt.wantReady, res.ready)
				assert.Equal(t, sentAt, res.at, "the verdict must end the wait without waiting for the stream to close")
				_, err = io.WriteString(pw, ": more\n\n")
				assert.Error(t, err, "the stream's body must have been closed")
				streams, polls := srv.counts()
				assert.Equal(t, 1, streams)
				assert.Zero(t, polls)
			})
		})
	}
}

// sseEndlessBody is a response body that never ends and never runs dry.
type sseEndlessBody struct{}

func (sseEndlessBody) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func (sseEndlessBody) Close() error { return nil }

func TestWaitUntilReady_RefusedStreamWithEndlessBodyFallsBackAtOnce(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		flood       bool          // the body pours bytes forever; otherwise it never sends one
		wantAt      time.Duration // when polling decides
	}{
		{"404 whose body never comes", http.StatusNotFound, "application/json", false, miosa.DrainTimeout},
		{"200 JSON whose body never comes", http.StatusOK, "application/json", false, miosa.DrainTimeout},
		{"404 whose body never ends", http.StatusNotFound, "text/plain", true, 0},
		{"200 HTML whose body never ends", http.StatusOK, "text/html", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				writers := make(chan *io.PipeWriter, 1)
				srv := &ssePipeServer{stream: func(r *http.Request) (*http.Response, error) {
					res, pw := ssePipeAnswer(r, tt.status, tt.contentType)
					if tt.flood {
						res.Body = sseEndlessBody{}
					}
					writers <- pw
					return res, nil
				}}
				start := time.Now()
				res := <-sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{})
				require.NoError(t, res.err)
				assert.True(t, res.ready, "polling says ready")
				assert.Equal(t, tt.wantAt, res.at.Sub(start), "the refused body is cut off, not read to the end")
				streams, polls := srv.counts()
				assert.Equal(t, 1, streams)
				assert.Equal(t, 1, polls)
				if !tt.flood {
					_, err := io.WriteString(<-writers, "late")
					assert.Error(t, err, "the refused body must have been closed")
				}
			})
		})
	}
}

func TestWaitUntilReady_SilentOpenStreamIsProbedEverySecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A buffering proxy: the stream opens and then nothing arrives.
		srv, writers := ssePipeOpenStreams()
		srv.poll = func(n int) *http.Response {
			if n < 3 {
				return ssePipeNotReady(n)
			}
			return ssePipeJSON(nil, http.StatusOK, `{"data":{"ready":true}}`)
		}
		start := time.Now()
		done := sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{})
		pw := <-writers
		res := <-done
		require.NoError(t, res.err)
		assert.True(t, res.ready)
		assert.Equal(t, 3*time.Second, res.at.Sub(start), "probes at 1, 2 and 3 s")
		streams, polls := srv.counts()
		assert.Equal(t, 1, streams)
		assert.Equal(t, 3, polls)
		assert.Equal(t, 1, srv.maxFlight, "one probe request at a time")
		_, err := io.WriteString(pw, "event: ready\n\n")
		assert.Error(t, err, "the stream's body must have been closed")
	})
}

func TestWaitUntilReady_ProbesFollowALongerPollInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, writers := ssePipeOpenStreams()
		start := time.Now()
		done := sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{PollInterval: 5 * time.Second})
		<-writers
		res := <-done
		require.NoError(t, res.err)
		assert.True(t, res.ready)
		assert.Equal(t, 5*time.Second, res.at.Sub(start))
	})
}

// TestWaitUntilReady_MachineThatCannotBecomeReadyEndsTheWait covers every way
// the server can say a sandbox will never be ready, in every mode: the
// stream open and silent, the stream refused (404, then polling), and
// polling only.
func TestWaitUntilReady_MachineThatCannotBecomeReadyEndsTheWait(t *testing.T) {
	notFound := func(int) *http.Response {
		return ssePipeJSON(nil, http.StatusNotFound, `{"error":{"code":"NOT_FOUND","message":"no such computer"}}`)
	}
	machine := func(status string) func(int) *http.Response {
		return func(int) *http.Response {
			return ssePipeJSON(nil, http.StatusOK, `{"data":{"id":"sb_1","status":"`+status+`"}}`)
		}
	}
	signals := []struct {
		name       string
		poll       func(int) *http.Response
		status     func(int) *http.Response
		wantStatus miosa.ComputerStatus
		gone       bool
		// when polling learns it: readiness carrying the status is read at
		// the first poll; the machine's own status is asked after 1 s.
		pollAt time.Duration
	}{
		{"readiness says error", func(int) *http.Response {
			return ssePipeJSON(nil, http.StatusOK, `{"data":{"ready":false,"status":"error"}}`)
		}, nil, miosa.StatusError, false, 0},
		{"readiness says destroyed", func(int) *http.Response {
			return ssePipeJSON(nil, http.StatusOK, `{"ready":false,"status":"destroyed"}`)
		}, nil, miosa.StatusDestroyed, false, 0},
		{"the machine says error", func(int) *http.Response {
			return ssePipeJSON(nil, http.StatusOK, `{"data":{"ready":false}}`)
		}, machine("error"), miosa.StatusError, false, time.Second},
		{"the machine is being destroyed", func(int) *http.Response {
			return ssePipeJSON(nil, http.StatusOK, `{"data":{"ready":false}}`)
		}, machine("destroying"), miosa.StatusDestroying, false, time.Second},
		{"deleted: everything answers 404", notFound, notFound, miosa.StatusDestroyed, true, 0},
	}
	modes := []struct {
		name   string
		stream func(r *http.Request) (*http.Response, error)
		wait   miosa.WaitOptions
	}{
		{"silent stream", func(r *http.Request) (*http.Response, error) {
			res, _ := ssePipeStream(r)
			return res, nil
		}, miosa.WaitOptions{}},
		{"refused stream", nil, miosa.WaitOptions{}},
		{"poll only", nil, miosa.WaitOptions{PollOnly: true}},
	}
	for _, mode := range modes {
		for _, sig := range signals {
			t.Run(mode.name+"/"+sig.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					srv := &ssePipeServer{stream: mode.stream, poll: sig.poll, status: sig.status}
					start := time.Now()
					res := <-sseStartWait(t.Context(), srv.client(t), mode.wait)

					assert.False(t, res.ready)
					var stateErr *miosa.MachineStateError
					require.ErrorAs(t, res.err, &stateErr)
					assert.Equal(t, "sb_1", stateErr.ID)
					assert.Equal(t, sig.wantStatus, stateErr.Status)
					assert.Equal(t, sig.gone, errors.Is(res.err, miosa.ErrNotFound))
					assert.NotErrorIs(t, res.err, miosa.ErrWaitTimeout)
					assert.Contains(t, res.err.Error(), "sb_1")
					want := sig.pollAt
					if mode.stream != nil {
						want = time.Second // the first probe
					}
					assert.Equal(t, want, res.at.Sub(start), "ended as soon as the server said so")
				})
			})
		}
	}
}

func TestWaitUntilReady_SandboxDeletedWhilePollingEndsAtTheNextPoll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &ssePipeServer{poll: func(n int) *http.Response {
			if n <= 3 {
				return ssePipeNotReady(n)
			}
			return ssePipeJSON(nil, http.StatusNotFound, `{"error":"sandbox not found"}`)
		}, status: func(int) *http.Response {
			return ssePipeJSON(nil, http.StatusNotFound, `{"error":"computer not found"}`)
		}}
		start := time.Now()
		res := <-sseStartWait(t.Context(), srv.client(t), miosa.WaitOptions{PollOnly: true})
		var stateErr *miosa.MachineStateError
		require.ErrorAs(t, res.err, &stateErr)
		assert.ErrorIs(t, res.err, miosa.ErrNotFound)
		assert.Equal(t, 30*time.Millisecond, res.at.Sub(start), "the fourth poll, 10 ms apart")
		assert.Equal(t, 1, srv.maxFlight, "one request at a time")
	})
}
