package miosa

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// eventStreamAnswer is a 200 text/event-stream answer whose body is body.
func eventStreamAnswer(body io.Reader) *http.Response {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}},
		Body:       io.NopCloser(body),
	}
}

// readAllEvents reads every event of body and the last event id after each.
func readAllEvents(t *testing.T, body io.Reader) (names, data, ids []string, end error) {
	t.Helper()
	r, err := newEventReader(eventStreamAnswer(body))
	require.NoError(t, err)
	for {
		ev, err := r.next(context.Background())
		if err != nil {
			return names, data, ids, err
		}
		names = append(names, string(ev.name))
		data = append(data, string(ev.data))
		ids = append(ids, r.lastID)
	}
}

func TestEventReader_KeepsTheLastEventIDAsTheFormatSays(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantIDs []string
	}{
		{"an id is kept across events without one", "id: 7\nevent: a\ndata: 1\n\nevent: b\ndata: 2\n\n", []string{"7", "7"}},
		{"a later id replaces it", "id: 7\ndata: 1\n\nid:8\ndata: 2\n\n", []string{"7", "8"}},
		{"an empty id resets it", "id: 7\ndata: 1\n\nid\ndata: 2\n\n", []string{"7", ""}},
		{"an id holding NUL is ignored", "id: 7\ndata: 1\n\nid: 8\x009\ndata: 2\n\n", []string{"7", "7"}},
		{"an oversized id is ignored", "id: 7\ndata: 1\n\nid: " + strings.Repeat("x", maxEventID+1) + "\ndata: 2\n\n", []string{"7", "7"}},
		{"an id on a comment-only block counts", "id: 3\n: keepalive\n\ndata: 2\n\n", []string{"3", "3"}},
		{"CRLF and CR line ends", "id: 1\r\ndata: a\r\n\r\nid: 2\rdata: b\r\r", []string{"1", "2"}},
		{"after a byte-order mark", "\xEF\xBB\xBFid: 5\ndata: a\n\n", []string{"5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, body := range []io.Reader{strings.NewReader(tt.body), iotest.OneByteReader(strings.NewReader(tt.body))} {
				_, _, ids, end := readAllEvents(t, body)
				assert.Equal(t, io.EOF, end)
				assert.Equal(t, tt.wantIDs, ids)
			}
		})
	}
}

func TestEventReader_DropsAnEventCutOffByTheEnd(t *testing.T) {
	names, data, _, end := readAllEvents(t, strings.NewReader("event: a\ndata: 1\n\nevent: ready\ndata: {}\n"))
	assert.Equal(t, io.EOF, end)
	assert.Equal(t, []string{"a"}, names)
	assert.Equal(t, []string{"1"}, data)
}

func TestEventReader_RefusesWhatIsNotAnEventStream(t *testing.T) {
	for _, resp := range []*http.Response{
		{StatusCode: http.StatusNotFound, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(strings.NewReader("gone"))},
		{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader("{}"))},
		{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(""))},
	} {
		_, err := newEventReader(resp)
		var refused *streamRefusedError
		require.ErrorAs(t, err, &refused)
		assert.Equal(t, resp.StatusCode, refused.StatusCode)
	}
}

func TestEventReader_OversizedEventEndsTheStream(t *testing.T) {
	_, _, _, end := readAllEvents(t, strings.NewReader("data: "+strings.Repeat("x", maxStreamEvent+1)+"\n\n"))
	assert.ErrorIs(t, end, errEventTooLarge)
}

func TestEventReader_CancelledContextIsTheError(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(io.ErrClosedPipe)
	r, err := newEventReader(eventStreamAnswer(strings.NewReader("")))
	require.NoError(t, err)
	_, err = r.next(ctx)
	assert.ErrorIs(t, err, io.ErrClosedPipe)
}

func FuzzEventReader(f *testing.F) {
	for _, seed := range []string{"id: 1\nevent: stdout\ndata: {\"line\":\"a\"}\n\n", "\xEF\xBB\xBFdata: x\r\n\r\n", "id\x00: \n\n", ": c\n\nid: 9\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r, err := newEventReader(eventStreamAnswer(strings.NewReader(body)))
		require.NoError(t, err)
		for range len(body) + 1 {
			ev, err := r.next(context.Background())
			if err != nil {
				return
			}
			assert.LessOrEqual(t, len(ev.data), len(body))
			assert.LessOrEqual(t, len(r.lastID), maxEventID)
			assert.NotContains(t, r.lastID, "\x00")
		}
		t.Fatal("more events than bytes")
	})
}
