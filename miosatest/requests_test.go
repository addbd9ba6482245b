package miosatest_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func TestRequests_RecordsEveryRequestInOrder(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	client := srv.Client(miosa.WithHeader("X-Trace", "t1"))
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{Name: "a"}, miosa.WithIdempotencyKey("key-1"))
	require.NoError(t, err)
	_, err = client.Computers.List(t.Context(), miosa.ComputerListParams{Status: miosa.StatusRunning, PerPage: 5})
	require.NoError(t, err)
	_, err = client.Exec.Run(t.Context(), c.ID, miosa.ExecParams{Command: "echo hi"})
	require.NoError(t, err)
	unauthorized, err := srv.HTTPClient().Get(srv.URL + "/computers")
	require.NoError(t, err)
	unauthorized.Body.Close()

	reqs := srv.Requests()
	require.Len(t, reqs, 4)
	for i, r := range reqs {
		assert.Equal(t, i+1, r.Seq)
		assert.NotEmpty(t, r.ID)
		assert.False(t, r.Time.IsZero())
	}
	create := reqs[0]
	assert.Equal(t, "POST", create.Method)
	assert.Equal(t, "/computers", create.Path, "paths are relative to the base URL")
	assert.Equal(t, "key-1", create.IdempotencyKey())
	assert.Equal(t, "t1", create.Header.Get("X-Trace"))
	assert.JSONEq(t, `{"name":"a"}`, string(create.Body))
	assert.Equal(t, http.StatusCreated, create.Status)

	assert.Equal(t, url.Values{"status": {"running"}, "per_page": {"5"}}, reqs[1].Query)
	assert.Nil(t, reqs[1].Body, "a GET has no body")
	assert.Equal(t, "/computers/"+c.ID+"/exec", reqs[2].Path)
	assert.Empty(t, reqs[2].IdempotencyKey(), "exec carries no key")
	assert.Equal(t, http.StatusUnauthorized, reqs[3].Status, "refused requests are logged too")
}

func TestRequests_CopiesCannotChangeTheLog(t *testing.T) {
	srv := miosatest.NewServer(t)
	call(t, srv, "POST", "/computers", `{"name":"a"}`)
	first := srv.Requests()
	first[0].Body[2] = 'X'
	first[0].Header.Set("Authorization", "changed")
	again := srv.Requests()
	assert.JSONEq(t, `{"name":"a"}`, string(again[0].Body))
	assert.Equal(t, "Bearer "+miosatest.TestAPIKey, again[0].Header.Get("Authorization"))
}

func TestRequests_FilterAndReset(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	id := call(t, srv, "POST", "/computers", "").object(t)["id"].(string)
	call(t, srv, "GET", "/computers/"+id, "")
	call(t, srv, "POST", "/computers/"+id+"/stop", "")
	call(t, srv, "POST", "/computers/"+id+"/start", "")

	assert.Len(t, srv.RequestsTo("POST", ""), 3)
	assert.Len(t, srv.RequestsTo("", "/computers/*"), 1)
	actions := srv.RequestsTo("post", "/computers/*/*")
	require.Len(t, actions, 2, "methods match in any case")
	assert.Equal(t, "/computers/"+id+"/stop", actions[0].Path)

	srv.ResetRequests()
	assert.Empty(t, srv.Requests())
	call(t, srv, "GET", "/computers", "")
	reqs := srv.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, 5, reqs[0].Seq, "sequence numbers keep counting")
}
