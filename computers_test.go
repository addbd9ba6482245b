package miosa

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestComputers_RequestShapes(t *testing.T) {
	cases := []struct {
		name   string
		call   func(ctx context.Context, c *Client) error
		method string
		uri    string
		body   string // "" means no body
		keyed  bool
	}{
		{"create with every field", func(ctx context.Context, c *Client) error {
			_, err := c.Computers.Create(ctx, ComputerCreateParams{
				Name: "box", TemplateType: "miosa-desktop", Size: "large", Metadata: map[string]any{"team": "a"},
				ExternalWorkspaceID: "ew", ExternalUserID: "eu", ExternalProjectID: "ep",
			})
			return err
		}, "POST", "/api/v1/computers",
			`{"name":"box","template_type":"miosa-desktop","size":"large","metadata":{"team":"a"},"external_workspace_id":"ew","external_user_id":"eu","external_project_id":"ep"}`, true},
		{"create with the sandbox settings", func(ctx context.Context, c *Client) error {
			_, err := c.Computers.Create(ctx, ComputerCreateParams{
				Tags: []string{"ci", "eval"}, AlwaysOn: true, Timeout: 90*time.Second + time.Millisecond, IdleTimeout: 10 * time.Minute,
			})
			return err
		}, "POST", "/api/v1/computers", `{"tags":["ci","eval"],"always_on":true,"timeout_sec":91,"idle_timeout_sec":600}`, true},
		{"create with empty tags", func(ctx context.Context, c *Client) error {
			_, err := c.Computers.Create(ctx, ComputerCreateParams{Tags: []string{}})
			return err
		}, "POST", "/api/v1/computers", `{"tags":[]}`, true},
		{"create with nothing set", func(ctx context.Context, c *Client) error {
			_, err := c.Computers.Create(ctx, ComputerCreateParams{})
			return err
		}, "POST", "/api/v1/computers", `{}`, true},
		{"get", func(ctx context.Context, c *Client) error {
			_, err := c.Computers.Get(ctx, "cmp_1")
			return err
		}, "GET", "/api/v1/computers/cmp_1", "", false},
		{"list without filters", func(ctx context.Context, c *Client) error {
			_, err := c.Computers.List(ctx, ComputerListParams{})
			return err
		}, "GET", "/api/v1/computers", "", false},
		{"list with filters", func(ctx context.Context, c *Client) error {
			_, err := c.Computers.List(ctx, ComputerListParams{Status: StatusRunning, Page: 2, PerPage: 50})
			return err
		}, "GET", "/api/v1/computers?page=2&per_page=50&status=running", "", false},
		{"delete", func(ctx context.Context, c *Client) error { return c.Computers.Delete(ctx, "cmp_1") },
			"DELETE", "/api/v1/computers/cmp_1", "", false},
		{"destroy", func(ctx context.Context, c *Client) error { return c.Computers.Destroy(ctx, "cmp_1") },
			"DELETE", "/api/v1/computers/cmp_1?force=true", "", false},
		{"start", func(ctx context.Context, c *Client) error { return c.Computers.Start(ctx, "cmp_1") },
			"POST", "/api/v1/computers/cmp_1/start", "", false},
		{"stop", func(ctx context.Context, c *Client) error { return c.Computers.Stop(ctx, "cmp_1") },
			"POST", "/api/v1/computers/cmp_1/stop", "", false},
		{"restart", func(ctx context.Context, c *Client) error { return c.Computers.Restart(ctx, "cmp_1") },
			"POST", "/api/v1/computers/cmp_1/restart", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if r.Method == http.MethodGet && r.URL.Path == "/api/v1/computers" {
					writeJSON(w, 200, `{"data":[]}`)
					return
				}
				writeJSON(w, 200, computerJSON)
			})
			require.NoError(t, tc.call(t.Context(), newTestClient(t, base)))
			reqs := rec.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, tc.method, r.Method)
			assert.Equal(t, tc.uri, r.RequestURI)
			if tc.body == "" {
				assert.Empty(t, r.Body)
				assert.Empty(t, r.Header.Get("Content-Type"))
			} else {
				assert.JSONEq(t, tc.body, string(r.Body))
			}
			assert.Equal(t, tc.keyed, r.Header.Get("Idempotency-Key") != "")
		})
	}
}

func TestComputers_GetDecodesEveryField(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{"data":`+computerJSON+`}`) })
	got, err := newTestClient(t, base).Computers.Get(t.Context(), "cmp_1")
	require.NoError(t, err)
	assert.Equal(t, "cmp_1", got.ID)
	assert.Equal(t, "box", got.Name)
	assert.Equal(t, "box", got.Slug)
	assert.Equal(t, StatusRunning, got.Status)
	assert.Equal(t, "miosa-desktop", got.TemplateType)
	assert.Equal(t, "small", got.Size)
	assert.Equal(t, "10.0.0.2", got.IPAddress)
	assert.Equal(t, "https://vnc.test/cmp_1", got.VNCURL)
	assert.Equal(t, "private", got.Visibility)
	assert.Equal(t, "t_1", got.TenantID)
	assert.Equal(t, "w_1", got.WorkspaceID)
	assert.Equal(t, map[string]any{"team": "a"}, got.Metadata)
	assert.Equal(t, "ew", got.ExternalWorkspaceID)
	assert.Equal(t, "eu", got.ExternalUserID)
	assert.Equal(t, "ep", got.ExternalProjectID)
	assert.Equal(t, time.Date(2026, 5, 18, 10, 0, 0, 0, time.UTC), got.CreatedAt.UTC())
	assert.Equal(t, time.Date(2026, 5, 18, 10, 0, 1, 5e8, time.UTC), got.UpdatedAt.UTC())
	assert.Contains(t, string(got.Raw), "future_field", "unknown fields stay reachable")
}

func TestComputers_UnknownStatusIsKept(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"id":"c","status":"hibernating","created_at":"","updated_at":null}`)
	})
	got, err := newTestClient(t, base).Computers.Get(t.Context(), "c")
	require.NoError(t, err)
	assert.Equal(t, ComputerStatus("hibernating"), got.Status)
	assert.True(t, got.CreatedAt.IsZero())
}

func TestComputers_MalformedTimestampIsAnError(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"id":"c","created_at":"yesterday"}`)
	})
	_, err := newTestClient(t, base).Computers.Get(t.Context(), "c")
	require.Error(t, err)
}

func TestComputers_CreateRefusesUnknownSizesAndNegativeTimeoutsBeforeAnyRequest(t *testing.T) {
	rec, base := newRecordingServer(t, nil)
	c := newTestClient(t, base)
	for _, bad := range []ComputerCreateParams{{Size: "huge"}, {Timeout: -time.Second}, {IdleTimeout: -time.Nanosecond}} {
		_, err := c.Computers.Create(t.Context(), bad)
		require.ErrorIs(t, err, ErrInvalidParams)
		_, err = c.Sandboxes.Create(t.Context(), bad)
		require.ErrorIs(t, err, ErrInvalidParams)
	}
	_, err := c.Computers.List(t.Context(), ComputerListParams{Page: -1})
	require.ErrorIs(t, err, ErrInvalidParams)
	assert.Zero(t, rec.count())
	for _, size := range []string{"xs", "small", "medium", "large", "xl"} {
		_, err := ComputerCreateParams{Size: size}.body()
		assert.NoError(t, err)
	}
}

func TestComputers_CreateDecodesTheComputerEnvelope(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 201, `{"computer":`+computerJSON+`}`)
	})
	got, err := newTestClient(t, base).Computers.Create(t.Context(), ComputerCreateParams{})
	require.NoError(t, err)
	assert.Equal(t, "cmp_1", got.ID)
}

func TestComputers_DeleteAcceptsOKAndNoContent(t *testing.T) {
	for _, answer := range []func(w http.ResponseWriter){
		func(w http.ResponseWriter) { writeJSON(w, 200, `{"ok":true}`) },
		func(w http.ResponseWriter) { w.WriteHeader(204) },
	} {
		_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { answer(w) })
		c := newTestClient(t, base)
		assert.NoError(t, c.Computers.Delete(t.Context(), "cmp_1"))
		assert.NoError(t, c.Computers.Destroy(t.Context(), "cmp_1"))
	}
}

func TestComputers_NotFoundMatchesErrNotFound(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 404, `{"error":{"code":"NOT_FOUND","message":"Host not found"}}`)
	})
	_, err := newTestClient(t, base).Computers.Get(t.Context(), "nope")
	require.ErrorIs(t, err, ErrNotFound)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "NOT_FOUND", apiErr.Code)
}

// idMethods calls every id-taking method of Computers and Exec with id.
func idMethods() map[string]func(ctx context.Context, c *Client, id string) error {
	return map[string]func(ctx context.Context, c *Client, id string) error{
		"Computers.Get": func(ctx context.Context, c *Client, id string) error {
			_, err := c.Computers.Get(ctx, id)
			return err
		},
		"Computers.Delete":  func(ctx context.Context, c *Client, id string) error { return c.Computers.Delete(ctx, id) },
		"Computers.Destroy": func(ctx context.Context, c *Client, id string) error { return c.Computers.Destroy(ctx, id) },
		"Computers.Start":   func(ctx context.Context, c *Client, id string) error { return c.Computers.Start(ctx, id) },
		"Computers.Stop":    func(ctx context.Context, c *Client, id string) error { return c.Computers.Stop(ctx, id) },
		"Computers.Restart": func(ctx context.Context, c *Client, id string) error { return c.Computers.Restart(ctx, id) },
		"Computers.WaitForStatus": func(ctx context.Context, c *Client, id string) error {
			_, err := c.Computers.WaitForStatus(ctx, id, StatusRunning, WaitOptions{})
			return err
		},
		"Exec.Run": func(ctx context.Context, c *Client, id string) error {
			_, err := c.Exec.Run(ctx, id, ExecParams{Command: "true"})
			return err
		},
		"Exec.Python": func(ctx context.Context, c *Client, id string) error {
			_, err := c.Exec.Python(ctx, id, PythonParams{Code: "pass"})
			return err
		},
	}
}

func TestIDs_MalformedIdsFailBeforeAnyRequest(t *testing.T) {
	rec, base := newRecordingServer(t, nil)
	c := newTestClient(t, base)
	for name, call := range idMethods() {
		for _, id := range []string{"", "  ", ".", "..", "a\nb", "a\rb", "a\x00b", "\x7f", "a\tb"} {
			err := call(t.Context(), c, id)
			assert.ErrorIs(t, err, ErrInvalidParams, "%s(%q)", name, id)
		}
	}
	assert.Zero(t, rec.count(), "no request may be sent for a malformed id")
}

func TestIDs_AreEscapedIntoOneSegment(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if strings.Contains(r.URL.Path, "/exec") {
			writeJSON(w, 200, `{"output":""}`)
			return
		}
		writeJSON(w, 200, `{"id":"x","status":"running"}`)
	})
	c := newTestClient(t, base)
	ids := map[string]string{
		"a/../b":   "a%2F..%2Fb",
		"../x":     "..%2Fx",
		"a b":      "a%20b",
		"a?force=": "a%3Fforce=",
		"a#frag":   "a%23frag",
		"%2F":      "%252F",
	}
	suffix := map[string]string{
		"Computers.Start": "/start", "Computers.Stop": "/stop", "Computers.Restart": "/restart",
		"Exec.Run": "/exec", "Exec.Python": "/exec/python",
	}
	for name, call := range idMethods() {
		for id, escaped := range ids {
			before := rec.count()
			require.NoError(t, call(t.Context(), c, id), "%s(%q)", name, id)
			reqs := rec.requests()
			require.Greater(t, len(reqs), before)
			uri := reqs[before].RequestURI
			want := "/api/v1/computers/" + escaped + suffix[name]
			assert.Equal(t, want, strings.Split(uri, "?")[0], "%s(%q)", name, id)
		}
	}
}

func TestComputersAll_WalksEveryPageLazily(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		items := []string{}
		for i := range 2 {
			if id := (page-1)*2 + i; id < 5 {
				items = append(items, fmt.Sprintf(`{"id":"c%d"}`, id))
			}
		}
		writeJSON(w, 200, fmt.Sprintf(`{"computers":[%s],"meta":{"total":5,"page":%d,"per_page":2}}`, strings.Join(items, ","), page))
	})
	c := newTestClient(t, base)
	params := ComputerListParams{Status: StatusRunning, PerPage: 2}
	seq := c.Computers.All(t.Context(), params)
	assert.Zero(t, rec.count(), "nothing is fetched before the loop starts")

	var ids []string
	for comp, err := range seq {
		require.NoError(t, err)
		ids = append(ids, comp.ID)
	}
	assert.Equal(t, []string{"c0", "c1", "c2", "c3", "c4"}, ids)
	reqs := rec.requests()
	require.Len(t, reqs, 3)
	for i, r := range reqs {
		assert.Equal(t, fmt.Sprintf("/api/v1/computers?page=%d&per_page=2&status=running", i+1), r.RequestURI)
	}
	assert.Equal(t, ComputerListParams{Status: StatusRunning, PerPage: 2}, params, "the caller's params are not modified")
}

func TestComputersAll_StopsAfterOnePageWithoutMeta(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `[{"id":"a"},{"id":"b"}]`)
	})
	n := 0
	for _, err := range newTestClient(t, base).Computers.All(t.Context(), ComputerListParams{}) {
		require.NoError(t, err)
		n++
	}
	assert.Equal(t, 2, n)
	assert.Equal(t, 1, rec.count())
}

func TestComputersAll_EndsWithAnErrorWhenTheServerIgnoresThePage(t *testing.T) {
	for _, total := range []int{3, 1 << 30} {
		t.Run(fmt.Sprintf("total %d", total), func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				// Always page 1, always claiming more.
				writeJSON(w, 200, fmt.Sprintf(`{"data":[{"id":"a"},{"id":"b"}],"meta":{"total":%d,"page":1,"per_page":2}}`, total))
			})
			var ids []string
			var errs []error
			for comp, err := range newTestClient(t, base).Computers.All(t.Context(), ComputerListParams{}) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				ids = append(ids, comp.ID)
			}
			assert.Equal(t, []string{"a", "b"}, ids, "the repeated page is not yielded again")
			require.Len(t, errs, 1)
			assert.ErrorContains(t, errs[0], "page 2 repeats page 1")
			assert.Equal(t, 2, rec.count())
		})
	}
}

func TestComputersAll_ARepeatedPageAfterTheWholeTotalIsNoError(t *testing.T) {
	// A server that ignores page and per_page sends everything at once.
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"data":[{"id":"a"},{"id":"b"},{"id":"c"}],"meta":{"total":3,"page":1,"per_page":1}}`)
	})
	var ids []string
	for comp, err := range newTestClient(t, base).Computers.All(t.Context(), ComputerListParams{}) {
		require.NoError(t, err)
		ids = append(ids, comp.ID)
	}
	assert.Equal(t, []string{"a", "b", "c"}, ids)
	assert.Equal(t, 2, rec.count())
}

func TestComputersAll_PagesThatOverlapKeepGoing(t *testing.T) {
	// Offset paging while a computer is created shifts one item onto the
	// next page: that page still brings something new.
	pages := []string{`{"id":"a"},{"id":"b"}`, `{"id":"b"},{"id":"c"}`, `{"id":"d"}`}
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, fmt.Sprintf(`{"data":[%s],"meta":{"total":5,"page":%d,"per_page":2}}`, pages[n-1], n))
	})
	var ids []string
	for comp, err := range newTestClient(t, base).Computers.All(t.Context(), ComputerListParams{}) {
		require.NoError(t, err)
		ids = append(ids, comp.ID)
	}
	assert.Equal(t, []string{"a", "b", "b", "c", "d"}, ids)
	assert.Equal(t, 3, rec.count())
}

func TestComputersAll_StopsAfterMaxListPages(t *testing.T) {
	// Every page is new and the total never runs out. In memory, because
	// the walk takes maxListPages requests.
	var requests atomic.Int64
	endless := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		requests.Add(1)
		body := `{"data":[{"id":"c` + r.URL.Query().Get("page") + `"}],"meta":{"total":2147483647,"page":1,"per_page":1}}`
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	})
	c := newTestClient(t, "https://api.test/api/v1", WithHTTPClient(&http.Client{Transport: endless}))
	items := 0
	var errs []error
	for _, err := range c.Computers.All(t.Context(), ComputerListParams{}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		items++
	}
	assert.Equal(t, maxListPages, items)
	assert.EqualValues(t, maxListPages, requests.Load())
	require.Len(t, errs, 1)
	assert.ErrorContains(t, errs[0], "stopped after 10000 pages")
}

func TestComputersAll_ToleratesUnreadableMeta(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"data":[{"id":"a"}],"meta":{"total":"1","page":1.0,"per_page":null}}`)
	})
	var ids []string
	for comp, err := range newTestClient(t, base).Computers.All(t.Context(), ComputerListParams{}) {
		require.NoError(t, err)
		ids = append(ids, comp.ID)
	}
	assert.Equal(t, []string{"a"}, ids)
}

func TestComputersAll_BreakStopsWithoutAnotherRequest(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"data":[{"id":"a"},{"id":"b"}],"meta":{"total":100,"page":1,"per_page":2}}`)
	})
	for range newTestClient(t, base).Computers.All(t.Context(), ComputerListParams{}) {
		break
	}
	assert.Equal(t, 1, rec.count())
}

func TestComputersAll_YieldsOneErrorAndStops(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			writeJSON(w, 200, `{"data":[{"id":"a"}],"meta":{"total":10,"page":1,"per_page":1}}`)
			return
		}
		writeJSON(w, 403, `{"error":"Forbidden"}`)
	})
	var errs []error
	items := 0
	for _, err := range newTestClient(t, base).Computers.All(t.Context(), ComputerListParams{}) {
		if err != nil {
			errs = append(errs, err)
			continue // even a loop that goes on gets no more
		}
		items++
	}
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], ErrForbidden)
	assert.Equal(t, 1, items)
	assert.Equal(t, 2, rec.count())
}

func TestComputersAll_StopsWhenTheContextEnds(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, fmt.Sprintf(`{"data":[{"id":"c%d"}],"meta":{"total":100,"page":%d,"per_page":1}}`, n, n))
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errs []error
	items := 0
	for _, err := range newTestClient(t, base).Computers.All(ctx, ComputerListParams{}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		items++
		if items == 2 {
			cancel()
		}
	}
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], context.Canceled)
	assert.Equal(t, 2, items)
	assert.Equal(t, 2, rec.count(), "no request after the context ended")
}

// statusServer answers GET /computers/{id} with the statuses in order, the
// last one forever; an entry that is a number is answered as that status.
func statusServer(answers ...string) *recorder {
	return &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) {
		a := answers[min(n, len(answers))-1]
		if code, err := strconv.Atoi(a); err == nil {
			writeJSON(w, code, `{"error":"status `+a+`"}`)
			return
		}
		writeJSON(w, 200, `{"data":{"id":"cmp_1","status":"`+a+`"}}`)
	}}
}

func TestWaitForStatus(t *testing.T) {
	cases := []struct {
		name     string
		answers  []string
		want     ComputerStatus
		polls    int
		elapsed  time.Duration
		check    func(t *testing.T, c *Computer, err error)
		waitOpts WaitOptions
	}{
		{"reaches the wanted status", []string{"creating", "starting", "running"}, StatusRunning, 3, 4 * time.Second,
			func(t *testing.T, c *Computer, err error) {
				require.NoError(t, err)
				assert.Equal(t, StatusRunning, c.Status)
			}, WaitOptions{}},
		{"already there", []string{"stopped"}, StatusStopped, 1, 0,
			func(t *testing.T, c *Computer, err error) { require.NoError(t, err) }, WaitOptions{}},
		{"error status ends the wait", []string{"creating", "error"}, StatusRunning, 2, 2 * time.Second,
			func(t *testing.T, c *Computer, err error) {
				var stateErr *MachineStateError
				require.ErrorAs(t, err, &stateErr)
				assert.Equal(t, &MachineStateError{ID: "cmp_1", Status: StatusError, kind: "computer", want: `"running"`}, stateErr)
				assert.Equal(t, `miosa: computer cmp_1 is in state "error" while waiting for "running"`, err.Error())
				assert.NotErrorIs(t, err, ErrWaitTimeout)
				require.NotNil(t, c)
				assert.Equal(t, StatusError, c.Status)
			}, WaitOptions{}},
		{"destroying ends the wait", []string{"stopping", "destroying"}, StatusStopped, 2, 2 * time.Second,
			func(t *testing.T, c *Computer, err error) {
				var stateErr *MachineStateError
				require.ErrorAs(t, err, &stateErr)
				assert.Equal(t, StatusDestroying, stateErr.Status)
			}, WaitOptions{}},
		{"destroyed ends the wait", []string{"destroyed"}, StatusRunning, 1, 0,
			func(t *testing.T, c *Computer, err error) {
				var stateErr *MachineStateError
				require.ErrorAs(t, err, &stateErr)
				assert.Equal(t, StatusDestroyed, stateErr.Status)
			}, WaitOptions{}},
		{"a wait for destroyed passes through error and destroying", []string{"error", "destroying", "destroyed"}, StatusDestroyed, 3, 4 * time.Second,
			func(t *testing.T, c *Computer, err error) { require.NoError(t, err) }, WaitOptions{}},
		{"waiting for error reaches it", []string{"error"}, StatusError, 1, 0,
			func(t *testing.T, c *Computer, err error) { require.NoError(t, err) }, WaitOptions{}},
		{"timeout", []string{"creating"}, StatusRunning, 5, 9 * time.Second,
			func(t *testing.T, c *Computer, err error) {
				require.ErrorIs(t, err, ErrWaitTimeout)
				assert.Contains(t, err.Error(), "cmp_1")
				assert.Contains(t, err.Error(), "creating")
				assert.NotErrorIs(t, err, context.DeadlineExceeded)
			}, WaitOptions{Timeout: 9 * time.Second}},
		{"default timeout is five minutes", []string{"creating"}, StatusRunning, 150, 5 * time.Minute,
			func(t *testing.T, c *Computer, err error) { require.ErrorIs(t, err, ErrWaitTimeout) }, WaitOptions{}},
		{"custom interval", []string{"creating", "creating", "running"}, StatusRunning, 3, 200 * time.Millisecond,
			func(t *testing.T, c *Computer, err error) { require.NoError(t, err) }, WaitOptions{PollInterval: 100 * time.Millisecond}},
		{"401 ends the wait", []string{"creating", "401"}, StatusRunning, 2, 2 * time.Second,
			func(t *testing.T, c *Computer, err error) { require.ErrorIs(t, err, ErrUnauthorized) }, WaitOptions{}},
		{"403 ends the wait", []string{"403"}, StatusRunning, 1, 0,
			func(t *testing.T, c *Computer, err error) { require.ErrorIs(t, err, ErrForbidden) }, WaitOptions{}},
		{"404 ends the wait: the computer is gone", []string{"creating", "404"}, StatusRunning, 2, 2 * time.Second,
			func(t *testing.T, c *Computer, err error) {
				require.ErrorIs(t, err, ErrNotFound)
				var stateErr *MachineStateError
				require.ErrorAs(t, err, &stateErr)
				assert.Equal(t, StatusDestroyed, stateErr.Status)
				assert.Contains(t, err.Error(), "computer cmp_1 is gone")
			}, WaitOptions{}},
		{"503 keeps polling", []string{"503", "503", "500", "running"}, StatusRunning, 4, 6 * time.Second,
			func(t *testing.T, c *Computer, err error) { require.NoError(t, err) }, WaitOptions{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := statusServer(tc.answers...)
				c := newFakeClient(t, rec)
				start := time.Now()
				got, err := c.Computers.WaitForStatus(t.Context(), "cmp_1", tc.want, tc.waitOpts)
				tc.check(t, got, err)
				assert.Equal(t, tc.elapsed, time.Since(start))
				if tc.name == "default timeout is five minutes" {
					// The poll due at the very instant the timeout expires
					// may or may not be sent.
					assert.InDelta(t, tc.polls, rec.count(), 1, "polls")
				} else {
					assert.Equal(t, tc.polls, rec.count(), "polls")
				}
				for _, r := range rec.requests() {
					assert.Equal(t, "GET", r.Method)
					assert.Equal(t, "/api/v1/computers/cmp_1", r.RequestURI)
				}
			})
		})
	}
}

func TestWaitForStatus_PollsAreNotRetriedByThePipeline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := statusServer("503", "running")
		c := newFakeClient(t, rec, WithRetryDelay(time.Hour, time.Hour))
		start := time.Now()
		_, err := c.Computers.WaitForStatus(t.Context(), "cmp_1", StatusRunning, WaitOptions{})
		require.NoError(t, err)
		assert.Equal(t, 2*time.Second, time.Since(start), "the poll interval, not the retry backoff, paces the wait")
	})
}

func TestWaitForStatus_CancelReturnsTheContextError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := statusServer("creating")
		c := newFakeClient(t, rec)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(3*time.Second, cancel)
		start := time.Now()
		_, err := c.Computers.WaitForStatus(ctx, "cmp_1", StatusRunning, WaitOptions{})
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, ErrWaitTimeout)
		assert.Equal(t, 3*time.Second, time.Since(start))
		assert.Equal(t, 2, rec.count())
	})
}

func TestWaitForStatus_CallerDeadlineIsNotALocalTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFakeClient(t, statusServer("creating"))
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := c.Computers.WaitForStatus(ctx, "cmp_1", StatusRunning, WaitOptions{Timeout: time.Minute})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.NotErrorIs(t, err, ErrWaitTimeout)
	})
}

func TestWaitForStatus_RefusesBadArgumentsBeforeAnyRequest(t *testing.T) {
	rec, base := newRecordingServer(t, nil)
	c := newTestClient(t, base)
	_, err := c.Computers.WaitForStatus(t.Context(), "cmp_1", "", WaitOptions{})
	assert.ErrorIs(t, err, ErrInvalidParams)
	_, err = c.Computers.WaitForStatus(t.Context(), "cmp_1", StatusRunning, WaitOptions{Timeout: -1})
	assert.ErrorIs(t, err, ErrInvalidParams)
	_, err = c.Computers.WaitForStatus(t.Context(), "cmp_1", StatusRunning, WaitOptions{PollInterval: -1})
	assert.ErrorIs(t, err, ErrInvalidParams)
	assert.Zero(t, rec.count())
}

func TestWaitForStatus_TransportFailuresKeepPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := statusServer("running")
		hc, calls := flakyTransport(2, errors.New("connection reset by peer"), rec)
		c := newFakeClient(t, rec, WithHTTPClient(hc))
		got, err := c.Computers.WaitForStatus(t.Context(), "cmp_1", StatusRunning, WaitOptions{})
		require.NoError(t, err)
		assert.Equal(t, StatusRunning, got.Status)
		assert.Equal(t, int32(3), calls.Load())
	})
}

func TestComputers_DeleteRetriedAfterALostAnswerCountsA404AsDone(t *testing.T) {
	for _, name := range []string{"Delete", "Destroy"} {
		t.Run(name, func(t *testing.T) {
			reqs, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 1 {
					writeJSON(w, 503, `{"error":"deleted, then the proxy failed"}`)
					return
				}
				writeJSON(w, 404, `{"error":{"code":"NOT_FOUND","message":"Host not found"}}`)
			})
			c := newTestClient(t, base)
			del := map[string]func(context.Context, string, ...Option) error{"Delete": c.Computers.Delete, "Destroy": c.Computers.Destroy}[name]
			require.NoError(t, del(t.Context(), "cmp_1"))
			assert.Equal(t, 2, reqs.count())
		})
	}
}

func TestComputers_DeleteAnswered404AtOnceIsNotFound(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 404, `{"error":{"code":"NOT_FOUND","message":"Host not found"}}`)
	})
	assert.ErrorIs(t, newTestClient(t, base).Computers.Delete(t.Context(), "cmp_1"), ErrNotFound)
}
