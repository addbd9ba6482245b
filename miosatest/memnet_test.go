package miosatest_test

import (
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

func TestInMemoryNetwork_BootsInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(time.Minute))
		client := srv.Client()
		start := time.Now()
		c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
		got, err := client.Computers.WaitForStatus(t.Context(), c.ID, miosa.StatusRunning,
			miosa.WaitOptions{PollInterval: 7 * time.Second})
		require.NoError(t, err)
		assert.Equal(t, miosa.StatusRunning, got.Status)
		assert.Equal(t, 63*time.Second, time.Since(start), "the first poll after the one-minute boot")
	})
}

func TestInMemoryNetwork_StreamTimesOutInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(time.Hour),
			miosatest.WithHeartbeatInterval(10*time.Second))
		c, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{})
		require.NoError(t, err)
		start := time.Now()
		req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/sandboxes/"+c.ID+"/readiness/stream", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+miosatest.TestAPIKey)
		resp, err := srv.HTTPClient().Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, 30*time.Second, time.Since(start), "the server's default 30 s wait")
		assert.Contains(t, string(body), `event: timeout`+"\n"+`data: {"reason":"not_ready_after_30s"}`)
	})
}

func TestInMemoryNetwork_IsReachableOnlyThroughItsClients(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithInMemoryNetwork(), miosatest.WithBootDelay(0))
	_, err := srv.Client().Computers.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	_, err = http.DefaultClient.Get(srv.URL + "/computers")
	assert.Error(t, err, "nothing listens on the URL's port")
	_, err = miosatest.Start(miosatest.WithInMemoryNetwork(), miosatest.WithTLS())
	assert.Error(t, err)
}
