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

// recordedRequest is what the fake server received.
type recordedRequest struct {
	Method string
	Path   string // escaped, as on the wire
	Query  string
	Header http.Header
	Body   []byte
}

// scriptedKey is the API key of the clients the scripted server hands out.
const scriptedKey = "msk_test_scripted"

// reply is one scripted answer.
type reply struct {
	Status int
	Body   string
}

// scriptedServer records every request and answers them with its replies in
// order, repeating the last one when they run out.
type scriptedServer struct {
	mu      sync.Mutex
	replies []reply
	reqs    []recordedRequest
	onServe func(n int) // called with the 1-based request number, if set
}

func (s *scriptedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, recordedRequest{
		Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body,
	})
	n := len(s.reqs)
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

func (s *scriptedServer) requests() []recordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordedRequest(nil), s.reqs...)
}

// onlyRequest returns the one request the server received.
func (s *scriptedServer) onlyRequest(t *testing.T) recordedRequest {
	t.Helper()
	reqs := s.requests()
	require.Len(t, reqs, 1)
	return reqs[0]
}

// newScriptedServer starts a loopback server answering with replies and a client
// pointed at it that retries without delay.
func newScriptedServer(t *testing.T, replies ...reply) (*scriptedServer, *miosa.Client) {
	t.Helper()
	fake := &scriptedServer{replies: replies}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	client, err := miosa.NewClient(scriptedKey, miosa.WithBaseURL(srv.URL), miosa.WithRetryDelay(0, 0))
	require.NoError(t, err)
	return fake, client
}
