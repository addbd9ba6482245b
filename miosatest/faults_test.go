package miosatest_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func TestIdempotency_SameKeySameBodyReplaysTheFirstAnswer(t *testing.T) {
	srv := miosatest.NewServer(t)
	first := call(t, srv, "POST", "/computers", `{"name":"a","size":"small"}`, "Idempotency-Key: k1")
	require.Equal(t, http.StatusCreated, first.status)
	again := call(t, srv, "POST", "/computers", `{ "size": "small", "name": "a" }`, "Idempotency-Key: k1")
	assert.Equal(t, http.StatusCreated, again.status)
	assert.Equal(t, string(first.body), string(again.body), "same status, same body")
	assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	assert.Empty(t, first.header.Get("Idempotent-Replayed"))
	items, _ := call(t, srv, "GET", "/computers", "").list(t)
	assert.Len(t, items, 1, "one resource however many retries")

	other := call(t, srv, "POST", "/computers", `{"name":"a"}`, "Idempotency-Key: k2")
	assert.NotEqual(t, first.object(t)["id"], other.object(t)["id"], "a new key is a new call")
}

func TestIdempotency_SameKeyDifferentBodyIsRefused(t *testing.T) {
	srv := miosatest.NewServer(t)
	require.Equal(t, http.StatusCreated, call(t, srv, "POST", "/computers", `{"name":"a"}`, "Idempotency-Key: k").status)
	for name, req := range map[string][2]string{
		"different body":     {"/computers", `{"name":"b"}`},
		"different endpoint": {"/sandbox-templates", `{"name":"a","build_spec":{"runtime":"go"}}`},
	} {
		res := call(t, srv, "POST", req[0], req[1], "Idempotency-Key: k")
		assert.Equal(t, http.StatusUnprocessableEntity, res.status, name)
		code, msg := res.errorCode(t)
		assert.Equal(t, "IDEMPOTENCY_KEY_REUSED", code, name)
		assert.Contains(t, msg, "POST /computers", name)
	}
}

func TestIdempotency_ConcurrentRetriesMakeOneResource(t *testing.T) {
	srv := miosatest.NewServer(t)
	// The first request is held, so the others arrive while it is in flight.
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/sandbox-templates", Delay: 50 * time.Millisecond})
	var wg sync.WaitGroup
	ids := make([]any, 8)
	for i := range ids {
		wg.Go(func() {
			res := call(t, srv, "POST", "/sandbox-templates", `{"name":"t","build_spec":{"runtime":"go"}}`, "Idempotency-Key: same")
			if assert.Equal(t, http.StatusCreated, res.status) {
				ids[i] = res.object(t)["id"]
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
	items, _ := call(t, srv, "GET", "/sandbox-templates", "").list(t)
	assert.Len(t, items, 1)
}

func TestIdempotency_SDKRetryAfterDroppedAnswerCreatesOneComputer(t *testing.T) {
	srv := miosatest.NewServer(t)
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers", Drop: miosatest.DropAfterAct})
	c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{Name: "once"})
	require.NoError(t, err)

	creates := srv.RequestsTo("POST", "/computers")
	require.Len(t, creates, 2, "the dropped attempt and its retry")
	assert.Zero(t, creates[0].Status, "the first answer was lost")
	assert.Equal(t, http.StatusCreated, creates[1].Status)
	assert.Equal(t, creates[0].IdempotencyKey(), creates[1].IdempotencyKey())
	list, err := srv.Client().Computers.List(t.Context(), miosa.ComputerListParams{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, c.ID, list[0].ID)
}

func TestFaults_StatusAnswersWithoutActingThenStops(t *testing.T) {
	srv := miosatest.NewServer(t)
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers", Status: http.StatusServiceUnavailable, Times: 2})
	c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err, "the SDK's two retries outlast two faults")
	creates := srv.RequestsTo("POST", "/computers")
	require.Len(t, creates, 3)
	assert.Equal(t, []int{503, 503, 201}, []int{creates[0].Status, creates[1].Status, creates[2].Status})
	list, err := srv.Client().Computers.List(t.Context(), miosa.ComputerListParams{})
	require.NoError(t, err)
	assert.Len(t, list, 1, "faulted requests did not act")
	assert.Equal(t, c.ID, list[0].ID)
}

func TestFaults_StatusCarriesRetryAfterHeaderAndBody(t *testing.T) {
	srv := miosatest.NewServer(t)
	srv.Inject(miosatest.Fault{Path: "/computers", Status: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond})
	res := call(t, srv, "GET", "/computers", "")
	assert.Equal(t, http.StatusTooManyRequests, res.status)
	assert.Equal(t, "2", res.header.Get("Retry-After"), "whole seconds, rounded up")
	code, _ := res.errorCode(t)
	assert.Equal(t, "RATE_LIMITED", code)

	srv.Inject(miosatest.Fault{Path: "/computers", Status: http.StatusBadGateway, Body: []byte("Bad Gateway\n")})
	res = call(t, srv, "GET", "/computers", "")
	assert.Equal(t, http.StatusBadGateway, res.status)
	assert.Equal(t, "Bad Gateway\n", string(res.body))
	assert.Contains(t, res.header.Get("Content-Type"), "text/plain")

	srv.Inject(miosatest.Fault{Path: "/computers", Status: http.StatusPaymentRequired,
		Body: []byte(`{"error":"Insufficient credits","code":"INSUFFICIENT_CREDITS"}`)})
	_, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	assert.ErrorIs(t, err, miosa.ErrInsufficientCredits)

	assert.Equal(t, http.StatusOK, call(t, srv, "GET", "/computers", "").status, "every fault is used up")
}

func TestFaults_MatchMethodAndPathPattern(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers/*/exec", Status: http.StatusTeapot, Times: miosatest.Always})

	assert.Equal(t, http.StatusOK, call(t, srv, "GET", "/computers/"+c.ID, "").status, "other paths pass")
	assert.Equal(t, http.StatusOK, call(t, srv, "POST", "/computers/"+c.ID+"/exec/python", `{"code":"1"}`).status, "segment count must match")
	for range 3 {
		assert.Equal(t, http.StatusTeapot, call(t, srv, "POST", "/computers/"+c.ID+"/exec", `{"command":"echo"}`).status)
	}
	srv.ClearFaults()
	assert.Equal(t, http.StatusOK, call(t, srv, "POST", "/computers/"+c.ID+"/exec", `{"command":"echo"}`).status)
}

func TestFaults_DropBeforeActNeverRunsTheCommand(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	var runs atomic.Int32
	srv.HandleExecFunc(func(context.Context, miosatest.ExecRequest) miosatest.ExecResult {
		runs.Add(1)
		return miosatest.ExecResult{}
	})
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)

	srv.Inject(miosatest.Fault{Path: "/computers/*/exec", Drop: miosatest.DropBeforeAct})
	_, err = client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "make"})
	assert.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
	assert.Zero(t, runs.Load())

	srv.Inject(miosatest.Fault{Path: "/computers/*/exec", Drop: miosatest.DropAfterAct})
	_, err = client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "make"})
	assert.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
	assert.EqualValues(t, 1, runs.Load(), "the command ran; only its answer was lost")
	assert.Len(t, srv.RequestsTo("POST", "/computers/*/exec"), 2, "exec is never retried")
}

func TestFaults_DelayHoldsTheAnswer(t *testing.T) {
	srv := miosatest.NewServer(t)
	srv.Inject(miosatest.Fault{Path: "/computers", Delay: time.Hour})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err := srv.Client(miosa.WithMaxRetries(0)).Computers.List(ctx, miosa.ComputerListParams{})
	assert.ErrorIs(t, err, context.DeadlineExceeded, "the answer is held past the caller's deadline")

	srv.Inject(miosatest.Fault{Path: "/computers", Delay: time.Millisecond})
	_, err = srv.Client().Computers.List(t.Context(), miosa.ComputerListParams{})
	assert.NoError(t, err, "after the delay the request is served")
}

func TestFaults_InjectPanicsOnAFaultThatCannotApply(t *testing.T) {
	srv := miosatest.NewServer(t)
	for name, f := range map[string]miosatest.Fault{
		"nothing to do":     {Path: "/computers"},
		"two actions":       {Status: 500, Drop: miosatest.DropBeforeAct},
		"bad status":        {Status: 42},
		"relative path":     {Path: "computers", Status: 500},
		"negative delay":    {Delay: -time.Second, Status: 500},
		"stream elsewhere":  {Path: "/computers", Stream: miosatest.StreamStall},
		"unknown drop mode": {Drop: miosatest.Drop(9)},
	} {
		assert.Panics(t, func() { srv.Inject(f) }, name)
	}
}

func TestIdempotency_AppliesToEveryCreateTypeEndpoint(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0), miosatest.WithBuildStepDelay(0))
	src := call(t, srv, "POST", "/computers", "").object(t)["id"].(string)
	tpl := call(t, srv, "POST", "/sandbox-templates", `{"name":"base","build_spec":{"runtime":"go"}}`).object(t)["id"].(string)
	for _, tc := range []struct {
		name, path, body string
		status           int
	}{
		{"computer create", "/computers", `{"name":"c"}`, http.StatusCreated},
		{"fork", "/sandboxes/" + src + "/fork", `{"name":"f"}`, http.StatusOK},
		{"template create", "/sandbox-templates", `{"name":"t","build_spec":{"runtime":"node"}}`, http.StatusCreated},
		{"build create", "/sandbox-templates/" + tpl + "/builds", `{}`, http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "Idempotency-Key: " + tc.name
			first := call(t, srv, "POST", tc.path, tc.body, key)
			require.Equal(t, tc.status, first.status, string(first.body))
			again := call(t, srv, "POST", tc.path, tc.body, key)
			assert.Equal(t, first.object(t)["id"], again.object(t)["id"])
			assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
			assert.Equal(t, http.StatusUnprocessableEntity, call(t, srv, "POST", tc.path, `{"name":"other"}`, key).status)
		})
	}
	machines, _ := call(t, srv, "GET", "/computers", "").list(t)
	assert.Len(t, machines, 3, "source, one computer, one fork")
	assert.Len(t, buildsOf(t, srv, tpl), 1)
}

func TestFaults_HeaderIsAddedToTheAnswer(t *testing.T) {
	srv := miosatest.NewServer(t)
	srv.Inject(miosatest.Fault{Path: "/computers", Status: http.StatusForbidden, Header: http.Header{"X-Reason": {"policy"}}})
	res := call(t, srv, "GET", "/computers", "")
	assert.Equal(t, http.StatusForbidden, res.status)
	assert.Equal(t, "policy", res.header.Get("X-Reason"))
	code, _ := res.errorCode(t)
	assert.Equal(t, "FORBIDDEN", code)
}
