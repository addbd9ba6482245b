package miosa_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
)

// scriptedKey is the API key of the clients the scripted server hands out.
const scriptedKey = "msk_test_scripted"

// reply is one scripted answer.
type reply struct {
	Status int
	Body   string
}

// scriptedServer answers requests with its replies in order, repeating the
// last one when they run out, and records them with the package's one
// request recorder.
type scriptedServer struct {
	*miosa.Recorder
	mu      sync.Mutex
	replies []reply
	onServe func(n int) // called with the 1-based request number, if set
}

// newScripted returns a scripted server answering with replies; serve it
// with httptest or in memory.
func newScripted(replies ...reply) *scriptedServer {
	s := &scriptedServer{replies: replies}
	s.Recorder = miosa.NewRecorder(s.respond)
	return s
}

func (s *scriptedServer) respond(w http.ResponseWriter, _ *http.Request, n int) {
	s.mu.Lock()
	reply := reply{Status: http.StatusOK, Body: "{}"}
	if len(s.replies) > 0 {
		reply = s.replies[min(n, len(s.replies))-1]
	}
	onServe := s.onServe
	s.mu.Unlock()
	if onServe != nil {
		onServe(n)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(reply.Status)
	_, _ = io.WriteString(w, reply.Body)
}

// onlyRequest returns the one request the server received.
func (s *scriptedServer) onlyRequest(t *testing.T) miosa.RecordedRequest {
	t.Helper()
	reqs := s.Requests()
	require.Len(t, reqs, 1)
	return reqs[0]
}

// newScriptedServer starts a loopback server answering with replies and a client
// pointed at it that retries without delay.
func newScriptedServer(t *testing.T, replies ...reply) (*scriptedServer, *miosa.Client) {
	t.Helper()
	fake := newScripted(replies...)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client, err := miosa.NewClient(scriptedKey, miosa.WithBaseURL(srv.URL), miosa.WithRetryDelay(0, 0))
	require.NoError(t, err)
	return fake, client
}
