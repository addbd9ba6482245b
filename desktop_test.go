package miosa

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPNG encodes a real width × height image with some detail in it.
func testPNG(t testing.TB, width, height int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, width, height))
	for y := range height {
		for x := range width {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), 0xff})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// pngChunk is one PNG chunk with its length and CRC.
func pngChunk(typ string, data []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	out = append(append(out, typ...), data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[4:]))
}

// ihdr is the IHDR chunk of a width × height image, 8-bit RGBA unless
// fields say otherwise (bit depth, colour type, methods).
func ihdr(width, height uint32, fields ...byte) []byte {
	data := binary.BigEndian.AppendUint32(nil, width)
	data = binary.BigEndian.AppendUint32(data, height)
	rest := []byte{8, 6, 0, 0, 0}
	copy(rest, fields)
	return pngChunk("IHDR", append(data, rest...))
}

// pngOf is a PNG file made of the given chunks.
func pngOf(chunks ...[]byte) []byte {
	return append([]byte(string(pngSignature)), bytes.Join(chunks, nil)...)
}

func TestDesktop_RequestShapes(t *testing.T) {
	at := image.Pt(3, 4)
	cases := []struct {
		name   string
		call   func(c *Client) error
		method string
		path   string
		body   string // "" when none is sent
	}{
		{"click", func(c *Client) error { return c.Desktop.Click(t.Context(), "cmp/1", image.Pt(10, 20), ClickParams{}) },
			"POST", "/api/v1/computers/cmp%2F1/desktop/click", `{"x":10,"y":20}`},
		{"click left, named", func(c *Client) error {
			return c.Desktop.Click(t.Context(), "cmp_1", image.Pt(0, 0), ClickParams{Button: ButtonLeft})
		}, "POST", "/api/v1/computers/cmp_1/desktop/click", `{"x":0,"y":0}`},
		{"right click", func(c *Client) error {
			return c.Desktop.Click(t.Context(), "cmp_1", at, ClickParams{Button: ButtonRight})
		}, "POST", "/api/v1/computers/cmp_1/desktop/click", `{"x":3,"y":4,"button":"right"}`},
		{"middle click", func(c *Client) error {
			return c.Desktop.Click(t.Context(), "cmp_1", at, ClickParams{Button: ButtonMiddle})
		}, "POST", "/api/v1/computers/cmp_1/desktop/click", `{"x":3,"y":4,"button":"middle"}`},
		{"double click", func(c *Client) error { return c.Desktop.Click(t.Context(), "cmp_1", at, ClickParams{Double: true}) },
			"POST", "/api/v1/computers/cmp_1/desktop/double-click", `{"x":3,"y":4}`},
		{"move", func(c *Client) error { return c.Desktop.Move(t.Context(), "cmp_1", at) },
			"POST", "/api/v1/computers/cmp_1/desktop/move", `{"x":3,"y":4}`},
		{"drag", func(c *Client) error { return c.Desktop.Drag(t.Context(), "cmp_1", at, image.Pt(30, 40)) },
			"POST", "/api/v1/computers/cmp_1/desktop/drag", `{"from_x":3,"from_y":4,"to_x":30,"to_y":40}`},
		{"scroll", func(c *Client) error {
			return c.Desktop.Scroll(t.Context(), "cmp_1", ScrollParams{Direction: ScrollDown})
		},
			"POST", "/api/v1/computers/cmp_1/desktop/scroll", `{"direction":"down","clicks":3}`},
		{"scroll at a point", func(c *Client) error {
			return c.Desktop.Scroll(t.Context(), "cmp_1", ScrollParams{Direction: ScrollLeft, Clicks: 7, At: &image.Point{}})
		}, "POST", "/api/v1/computers/cmp_1/desktop/scroll", `{"direction":"left","clicks":7,"x":0,"y":0}`},
		{"type", func(c *Client) error { return c.Desktop.Type(t.Context(), "cmp_1", "héllo\n", TypeParams{}) },
			"POST", "/api/v1/computers/cmp_1/desktop/type", `{"text":"héllo\n"}`},
		{"type a space", func(c *Client) error { return c.Desktop.Type(t.Context(), "cmp_1", " ", TypeParams{}) },
			"POST", "/api/v1/computers/cmp_1/desktop/type", `{"text":" "}`},
		{"type with a delay, rounded up to milliseconds", func(c *Client) error {
			return c.Desktop.Type(t.Context(), "cmp_1", "ab", TypeParams{Delay: 1500 * time.Microsecond})
		}, "POST", "/api/v1/computers/cmp_1/desktop/type", `{"text":"ab","delay":2}`},
		{"key", func(c *Client) error { return c.Desktop.Key(t.Context(), "cmp_1", "ctrl+c") },
			"POST", "/api/v1/computers/cmp_1/desktop/key", `{"key":"ctrl+c"}`},
		{"focus", func(c *Client) error { return c.Desktop.FocusWindow(t.Context(), "cmp_1", "42") },
			"POST", "/api/v1/computers/cmp_1/desktop/window/focus", `{"window_id":"42"}`},
		{"launch", func(c *Client) error { return c.Desktop.Launch(t.Context(), "cmp_1", "firefox") },
			"POST", "/api/v1/computers/cmp_1/desktop/launch", `{"app":"firefox"}`},
		{"cursor", func(c *Client) error { _, err := c.Desktop.Cursor(t.Context(), "cmp_1"); return err },
			"GET", "/api/v1/computers/cmp_1/desktop/cursor", ""},
		{"windows", func(c *Client) error { _, err := c.Desktop.Windows(t.Context(), "cmp_1"); return err },
			"GET", "/api/v1/computers/cmp_1/desktop/windows", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch {
				case strings.HasSuffix(r.URL.Path, "/cursor"):
					writeJSON(w, 200, `{"x":1,"y":2}`)
				case strings.HasSuffix(r.URL.Path, "/windows"):
					writeJSON(w, 200, `[]`)
				default:
					writeJSON(w, 200, `{"success":true}`)
				}
			})
			require.NoError(t, tc.call(newTestClient(t, base)))
			reqs := rec.requests()
			require.Len(t, reqs, 1)
			got := reqs[0]
			assert.Equal(t, tc.method, got.Method)
			assert.Equal(t, tc.path, got.Path)
			assert.Empty(t, got.Header.Get("Idempotency-Key"), "actions are not creates")
			assert.Equal(t, "application/json", got.Header.Get("Accept"))
			if tc.body == "" {
				assert.Empty(t, got.Body)
				assert.Empty(t, got.Header.Get("Content-Type"))
				return
			}
			assert.JSONEq(t, tc.body, string(got.Body))
			assert.Equal(t, "application/json", got.Header.Get("Content-Type"))
		})
	}
}

func TestDesktop_InvalidArgumentsFailBeforeAnyRequest(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{}`) })
	c := newTestClient(t, base)
	ctx := t.Context()
	d := c.Desktop
	ok := image.Pt(1, 1)
	shot := func(err error) func() error { return func() error { return err } }
	for name, call := range map[string]func() error{
		"empty id":                    func() error { return d.Click(ctx, "", ok, ClickParams{}) },
		"dot id":                      func() error { return d.Move(ctx, "..", ok) },
		"negative x":                  func() error { return d.Click(ctx, "c", image.Pt(-1, 0), ClickParams{}) },
		"negative y":                  func() error { return d.Move(ctx, "c", image.Pt(0, -5)) },
		"unknown button":              func() error { return d.Click(ctx, "c", ok, ClickParams{Button: "thumb"}) },
		"double right click":          func() error { return d.Click(ctx, "c", ok, ClickParams{Button: ButtonRight, Double: true}) },
		"drag from off screen":        func() error { return d.Drag(ctx, "c", image.Pt(-1, 0), ok) },
		"drag to off screen":          func() error { return d.Drag(ctx, "c", ok, image.Pt(0, -1)) },
		"scroll without direction":    func() error { return d.Scroll(ctx, "c", ScrollParams{}) },
		"scroll sideways":             func() error { return d.Scroll(ctx, "c", ScrollParams{Direction: "diagonal"}) },
		"negative clicks":             func() error { return d.Scroll(ctx, "c", ScrollParams{Direction: ScrollUp, Clicks: -1}) },
		"scroll off screen":           func() error { return d.Scroll(ctx, "c", ScrollParams{Direction: ScrollUp, At: &image.Point{X: -1}}) },
		"empty text":                  func() error { return d.Type(ctx, "c", "", TypeParams{}) },
		"text not UTF-8":              func() error { return d.Type(ctx, "c", "a\xffb", TypeParams{}) },
		"negative delay":              func() error { return d.Type(ctx, "c", "a", TypeParams{Delay: -time.Millisecond}) },
		"empty key":                   func() error { return d.Key(ctx, "c", "") },
		"blank key":                   func() error { return d.Key(ctx, "c", "  ") },
		"empty window id":             func() error { return d.FocusWindow(ctx, "c", "") },
		"empty app":                   func() error { return d.Launch(ctx, "c", "") },
		"app not UTF-8":               func() error { return d.Launch(ctx, "c", "\xfe") },
		"cursor of no computer":       func() error { _, err := d.Cursor(ctx, " "); return err },
		"windows of no computer":      func() error { _, err := d.Windows(ctx, ""); return err },
		"screenshot of no computer":   shot(second(d.Screenshot(ctx, "", io.Discard))),
		"screenshot into nil":         shot(second(d.Screenshot(ctx, "c", nil))),
		"empty region":                shot(second(d.ScreenshotRegion(ctx, "c", image.Rect(5, 5, 5, 9), io.Discard))),
		"zero region":                 shot(second(d.ScreenshotRegion(ctx, "c", image.Rectangle{}, io.Discard))),
		"region with negative origin": shot(second(d.ScreenshotRegion(ctx, "c", image.Rect(-1, 0, 10, 10), io.Discard))),
		"region larger than a screen": shot(second(d.ScreenshotRegion(ctx, "c", image.Rect(0, 0, 70000, 10), io.Discard))),
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.ErrorIs(t, err, ErrInvalidParams)
			assert.True(t, strings.HasPrefix(err.Error(), "miosa: invalid params: "), err.Error())
		})
	}
	assert.Zero(t, rec.count(), "no request for invalid arguments")
}

// second returns its second argument: the error of a two-result call.
func second[T any](_ T, err error) error { return err }

func TestDesktopActions_AreNeverSentAgainOnceTheyMayHaveArrived(t *testing.T) {
	actions := map[string]func(c *Client) error{
		"click": func(c *Client) error { return c.Desktop.Click(t.Context(), "cmp_1", image.Pt(1, 1), ClickParams{}) },
		"type":  func(c *Client) error { return c.Desktop.Type(t.Context(), "cmp_1", "rm -rf /", TypeParams{}) },
		"key":   func(c *Client) error { return c.Desktop.Key(t.Context(), "cmp_1", "Return") },
		"scroll": func(c *Client) error {
			return c.Desktop.Scroll(t.Context(), "cmp_1", ScrollParams{Direction: ScrollUp})
		},
		"launch": func(c *Client) error { return c.Desktop.Launch(t.Context(), "cmp_1", "xterm") },
		"focus":  func(c *Client) error { return c.Desktop.FocusWindow(t.Context(), "cmp_1", "7") },
		"drag":   func(c *Client) error { return c.Desktop.Drag(t.Context(), "cmp_1", image.Pt(1, 1), image.Pt(2, 2)) },
		"move":   func(c *Client) error { return c.Desktop.Move(t.Context(), "cmp_1", image.Pt(1, 1)) },
	}
	for name, act := range actions {
		t.Run(name+": a lost answer is an unknown outcome", func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { hijackAndClose(w) })
			err := act(newTestClient(t, base, WithMaxRetries(5)))
			require.ErrorIs(t, err, ErrOutcomeUnknown)
			assert.Equal(t, 1, rec.count(), "a replayed action acts twice")
		})
		t.Run(name+": a 5xx is not retried", func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, 502, `{"error":"bad gateway"}`)
			})
			err := act(newTestClient(t, base, WithMaxRetries(5)))
			require.ErrorIs(t, err, ErrServer)
			assert.NotErrorIs(t, err, ErrOutcomeUnknown, "the server answered")
			assert.Equal(t, 1, rec.count())
		})
		t.Run(name+": 429 and retryable answers are retried", func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				switch n {
				case 1:
					writeJSON(w, 429, `{"error":"slow down"}`)
				case 2:
					writeJSON(w, 409, `{"error":{"code":"COMPUTER_STARTING","message":"booting","retryable":true,"retry_after_ms":1}}`)
				default:
					writeJSON(w, 200, `{"success":true}`)
				}
			})
			require.NoError(t, act(newTestClient(t, base)))
			assert.Equal(t, 3, rec.count())
		})
	}
}

func TestDesktopActions_RetriedWhenTheRequestNeverLeft(t *testing.T) {
	rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{"ok":true}`) }}
	hc, calls := flakyTransport(2, dialError(), rec)
	c := newFakeClient(t, rec, WithHTTPClient(hc), WithRetryDelay(0, 0))
	require.NoError(t, c.Desktop.Click(t.Context(), "cmp_1", image.Pt(1, 1), ClickParams{}))
	assert.EqualValues(t, 3, calls.Load())
	assert.Equal(t, 1, rec.count(), "the click reached the server once")
}

func TestDesktopActions_AnswerBodies(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		failure string // "" when the action succeeded
	}{
		{"success true", 200, `{"success":true}`, ""},
		{"ok true", 200, `{"ok":true}`, ""},
		{"empty", 200, ``, ""},
		{"no content", 204, ``, ""},
		{"created", 201, `{"id":"a1"}`, ""},
		{"text", 200, `done`, ""},
		{"a list", 200, `[false]`, ""},
		{"malformed JSON", 200, `{"success":false`, ""},
		{"a string saying false is not false", 200, `{"success":"false"}`, ""},
		{"success false with a message", 200, `{"success":false,"error":"no such window"}`, "200: no such window"},
		{"ok false with a message", 200, `{"ok":false,"message":"xdotool crashed"}`, "200: xdotool crashed"},
		{"ok false, nested error", 202, `{"ok":false,"error":{"code":"NO_DISPLAY","message":"no display"}}`, "202 NO_DISPLAY: no display"},
		{"success false without a message", 200, ` {"success": false} `, "200: the server reported that the action failed, without saying why"},
		{"one of the two false", 200, `{"ok":true,"success":false}`, "200: the server reported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("X-Request-ID", "req_9")
				writeJSON(w, tc.status, tc.body)
			})
			err := newTestClient(t, base, WithMaxRetries(3)).Desktop.Key(t.Context(), "cmp_1", "Return")
			assert.Equal(t, 1, rec.count())
			if tc.failure == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrActionFailed)
			assert.NotErrorIs(t, err, ErrOutcomeUnknown, "the server answered")
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.status, apiErr.StatusCode)
			assert.Equal(t, "req_9", apiErr.RequestID)
			assert.Equal(t, []byte(tc.body), apiErr.Body)
			assert.Contains(t, err.Error(), "miosa: POST /computers/cmp_1/desktop/key: "+tc.failure)
		})
	}
}

func TestDesktopActions_AFailureNeverEchoesTheKey(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 200, `{"ok":false,"error":"bad key `+testKey+`"}`)
	})
	err := newTestClient(t, base).Desktop.Key(t.Context(), "cmp_1", "a")
	require.ErrorIs(t, err, ErrActionFailed)
	assert.NotContains(t, err.Error(), testKey)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.NotContains(t, string(apiErr.Body), testKey)
}

// spellingServer accepts a disputed field only as spelt by accepted (the
// key of the field's value in the body, or key=type for a field that must
// hold a JSON value of that type), refusing any other with 422 or 400.
func spellingServer(t *testing.T, accepted string) (*recorder, string) {
	var rec *recorder
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		var body map[string]any
		assert.NoError(t, json.Unmarshal(rec.requests()[n-1].Body, &body))
		key, kind, typed := strings.Cut(accepted, "=")
		_, present := body[key]
		_, isString := body[key].(string)
		switch {
		case !present:
			writeJSON(w, 422, `{"error":"unknown field"}`)
		case typed && isString != (kind == "string"):
			writeJSON(w, 400, `{"error":"window_id has the wrong type"}`)
		default:
			writeJSON(w, 200, `{"success":true}`)
		}
	})
	return rec, base
}

func TestDesktop_DisputedSpellings(t *testing.T) {
	cases := []struct {
		name          string
		act           func(c *Client) error
		first, second string // the bodies, in the order the SDK tries them
		accepts       string // what the server accepts: a key, or key=type
	}{
		{"scroll amount", func(c *Client) error {
			return c.Desktop.Scroll(t.Context(), "cmp_1", ScrollParams{Direction: ScrollUp, Clicks: 2})
		}, `{"direction":"up","clicks":2}`, `{"direction":"up","amount":2}`, "amount"},
		{"launch app_name", func(c *Client) error { return c.Desktop.Launch(t.Context(), "cmp_1", "gedit") },
			`{"app":"gedit"}`, `{"app_name":"gedit"}`, "app_name"},
		{"integer window id", func(c *Client) error { return c.Desktop.FocusWindow(t.Context(), "cmp_1", "12") },
			`{"window_id":"12"}`, `{"window_id":12}`, "window_id=number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := spellingServer(t, tc.accepts)
			c := newTestClient(t, base)
			require.NoError(t, tc.act(c), "the first call finds the server's spelling")
			require.NoError(t, tc.act(c), "the second uses it at once")
			reqs := rec.requests()
			require.Len(t, reqs, 3)
			assert.JSONEq(t, tc.first, string(reqs[0].Body))
			assert.JSONEq(t, tc.second, string(reqs[1].Body))
			assert.JSONEq(t, tc.second, string(reqs[2].Body))

			// Another client, another server: nothing is shared.
			rec2, base2 := spellingServer(t, tc.accepts)
			require.NoError(t, tc.act(newTestClient(t, base2)))
			assert.Equal(t, 2, rec2.count())
		})
	}
}

func TestDesktop_ARememberedSpellingIsLeftWhenTheServerChanges(t *testing.T) {
	var accepted atomic.Value
	accepted.Store("amount")
	var rec *recorder
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		var body map[string]any
		assert.NoError(t, json.Unmarshal(rec.requests()[n-1].Body, &body))
		if _, ok := body[accepted.Load().(string)]; !ok {
			writeJSON(w, 422, `{"error":"unknown field"}`)
			return
		}
		writeJSON(w, 200, `{}`)
	})
	c := newTestClient(t, base)
	scroll := func() error { return c.Desktop.Scroll(t.Context(), "cmp_1", ScrollParams{Direction: ScrollDown}) }
	require.NoError(t, scroll())
	accepted.Store("clicks")
	require.NoError(t, scroll())
	require.NoError(t, scroll())
	var keys []string
	for _, r := range rec.requests() {
		var body map[string]any
		require.NoError(t, json.Unmarshal(r.Body, &body))
		keys = append(keys, strings.Join(slices.Sorted(maps.Keys(body)), ","))
	}
	assert.Equal(t, []string{
		"clicks,direction", "amount,direction", // learns "amount"
		"amount,direction", "clicks,direction", // the server changed: back to "clicks"
		"clicks,direction",
	}, keys)
}

func TestDesktop_BothSpellingsRefusedReturnsBothAnswers(t *testing.T) {
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, 422, `{"error":"refusal `+strconv.Itoa(n)+`"}`)
	})
	err := newTestClient(t, base).Desktop.Launch(t.Context(), "cmp_1", "gimp")
	require.ErrorIs(t, err, ErrValidation)
	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "refusal 2", apiErr.Message, "the last answer first")
	assert.Contains(t, err.Error(), `refusal 2 (sent with "app" instead: miosa: POST /computers/cmp_1/desktop/launch: 422: refusal 1)`)
	assert.Equal(t, 2, rec.count(), "each spelling once")
}

func TestDesktop_OtherFailuresDoNotTryTheOtherSpelling(t *testing.T) {
	for _, status := range []int{401, 403, 404, 409, 500} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, status, `{"error":"no"}`)
			})
			err := newTestClient(t, base, WithMaxRetries(0)).Desktop.Scroll(t.Context(), "cmp_1", ScrollParams{Direction: ScrollUp})
			require.Error(t, err)
			assert.Equal(t, 1, rec.count())
		})
	}
	t.Run("a lost answer", func(t *testing.T) {
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { hijackAndClose(w) })
		err := newTestClient(t, base).Desktop.Launch(t.Context(), "cmp_1", "xterm")
		require.ErrorIs(t, err, ErrOutcomeUnknown)
		assert.Equal(t, 1, rec.count())
	})
	t.Run("a window id that is no integer has no other spelling", func(t *testing.T) {
		rec, base := spellingServer(t, "window_id=number")
		err := newTestClient(t, base).Desktop.FocusWindow(t.Context(), "cmp_1", "0x3a00007")
		require.ErrorIs(t, err, ErrBadRequest)
		assert.Equal(t, 1, rec.count())
		assert.JSONEq(t, `{"window_id":"0x3a00007"}`, string(rec.requests()[0].Body))
	})
	t.Run("after learning integers, a non-integer id is still sent as a string", func(t *testing.T) {
		rec, base := spellingServer(t, "window_id=number")
		c := newTestClient(t, base)
		require.NoError(t, c.Desktop.FocusWindow(t.Context(), "cmp_1", "5"))
		err := c.Desktop.FocusWindow(t.Context(), "cmp_1", "007")
		require.ErrorIs(t, err, ErrBadRequest)
		reqs := rec.requests()
		require.Len(t, reqs, 3)
		assert.JSONEq(t, `{"window_id":"007"}`, string(reqs[2].Body), `"007" is not the integer 7`)
	})
}

func TestDesktop_SpellingMemoryIsSafeForConcurrentUse(t *testing.T) {
	rec, base := spellingServer(t, "amount")
	c := newTestClient(t, base)
	const callers = 16
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			assert.NoError(t, c.Desktop.Scroll(t.Context(), "cmp_1", ScrollParams{Direction: ScrollDown}))
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, rec.count(), 2*callers)
	before := rec.count()
	require.NoError(t, c.Desktop.Scroll(t.Context(), "cmp_1", ScrollParams{Direction: ScrollDown}))
	assert.Equal(t, before+1, rec.count(), "learnt once for all")
}

func TestDesktopType_TheAttemptDeadlineCoversTheTyping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{respond: func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, `{}`) }}
		c := newFakeClient(t, rec, WithRequestTimeout(10*time.Second))
		require.NoError(t, c.Desktop.Type(t.Context(), "cmp_1", "héllo", TypeParams{Delay: time.Second}))
		require.NoError(t, c.Desktop.Type(t.Context(), "cmp_1", "héllo", TypeParams{}))
		require.NoError(t, c.Desktop.Type(t.Context(), "cmp_1", strings.Repeat("x", 100), TypeParams{Delay: time.Duration(1 << 62)}))
		reqs := rec.requests()
		require.Len(t, reqs, 3)
		assert.Equal(t, 15*time.Second, reqs[0].Deadline.Sub(reqs[0].At), "five keys a second apart, then the request timeout")
		assert.Equal(t, 10*time.Second, reqs[1].Deadline.Sub(reqs[1].At))
		assert.True(t, reqs[2].Deadline.IsZero() || reqs[2].Deadline.After(reqs[2].At),
			"a typing time past the largest duration saturates instead of wrapping into the past")
	})
}

func TestDesktopCursor_DecodesEveryShape(t *testing.T) {
	for body, want := range map[string]image.Point{
		`{"x":10,"y":20}`:                    image.Pt(10, 20),
		`{"data":{"x":0,"y":7}}`:             image.Pt(0, 7),
		`{"result":{"x":1,"y":2},"ok":true}`: image.Pt(1, 2),
		`{"x":"12","y":"34"}`:                image.Pt(12, 34),
		`{"x":10.6,"y":-3,"screen":"0"}`:     image.Pt(11, -3),
		` {"y":2, "x":1, "extra":[1,2,3]} `:  image.Pt(1, 2),
	} {
		t.Run(body, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			at, err := newTestClient(t, base).Desktop.Cursor(t.Context(), "cmp_1")
			require.NoError(t, err)
			assert.Equal(t, want, at)
		})
	}
	for _, body := range []string{``, `{}`, `{"x":1}`, `{"x":null,"y":1}`, `{"x":"left","y":1}`, `{"x":1e300,"y":1}`, `[1,2]`, `nope`} {
		t.Run("refused "+body, func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			_, err := newTestClient(t, base).Desktop.Cursor(t.Context(), "cmp_1")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "GET /computers/cmp_1/desktop/cursor: decoding the response")
		})
	}
}

func TestDesktopWindows_DecodesEveryShape(t *testing.T) {
	const a = `{"id":"w1","title":"Terminal","app":"xterm","x":10,"y":20,"width":300,"height":200,"focused":true}`
	const b = `{"id":4194305,"title":"Firefox","app":"firefox","x":-5,"y":0,"width":800,"height":600,"is_focused":false,"pid":1}`
	want := []Window{
		{ID: "w1", Title: "Terminal", App: "xterm", Bounds: image.Rect(10, 20, 310, 220), Focused: true, Raw: json.RawMessage(a)},
		{ID: "4194305", Title: "Firefox", App: "firefox", Bounds: image.Rect(-5, 0, 795, 600), Raw: json.RawMessage(b)},
	}
	for _, body := range []string{
		`[` + a + `,` + b + `]`,
		`{"data":[` + a + `,` + b + `]}`,
		`{"windows":[` + a + `,` + b + `],"count":2}`,
	} {
		t.Run(body[:12], func(t *testing.T) {
			_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeJSON(w, 200, body) })
			got, err := newTestClient(t, base).Desktop.Windows(t.Context(), "cmp_1")
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
	t.Run("is_focused", func(t *testing.T) {
		var w Window
		require.NoError(t, json.Unmarshal([]byte(`{"id":1,"is_focused":true}`), &w))
		assert.True(t, w.Focused)
		assert.Equal(t, image.Rectangle{}, w.Bounds, "no geometry: zero")
	})
	for _, body := range []string{
		`{"title":"no id"}`, `{"id":""}`, `{"id":1.5}`, `{"id":true}`,
		`{"id":"w","width":-1,"height":5}`, `{"id":"w","x":"left"}`, `{"id":"w","x":1e30}`,
	} {
		t.Run("refused "+body, func(t *testing.T) {
			var w Window
			assert.Error(t, json.Unmarshal([]byte(body), &w))
		})
	}
}

func TestDesktopScreenshot_StreamsThePNGAndReadsItsSize(t *testing.T) {
	img := testPNG(t, 64, 48)
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(img)
	})
	c := newTestClient(t, base)
	var buf bytes.Buffer
	shot, err := c.Desktop.Screenshot(t.Context(), "cmp 1", &buf)
	require.NoError(t, err)
	assert.Equal(t, &Screenshot{Width: 64, Height: 48, Bytes: int64(len(img))}, shot)
	assert.Equal(t, img, buf.Bytes())

	buf.Reset()
	shot, err = c.Desktop.ScreenshotRegion(t.Context(), "cmp_1", image.Rect(10, 20, 74, 68), &buf)
	require.NoError(t, err)
	assert.Equal(t, &Screenshot{Width: 64, Height: 48, Bytes: int64(len(img))}, shot)
	assert.Equal(t, img, buf.Bytes())

	reqs := rec.requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "GET", reqs[0].Method)
	assert.Equal(t, "/api/v1/computers/cmp%201/desktop/screenshot", reqs[0].Path)
	assert.Equal(t, "image/png", reqs[0].Header.Get("Accept"))
	assert.Equal(t, "POST", reqs[1].Method)
	assert.Equal(t, "/api/v1/computers/cmp_1/desktop/screenshot/region", reqs[1].Path)
	assert.Equal(t, "image/png", reqs[1].Header.Get("Accept"))
	assert.JSONEq(t, `{"x":10,"y":20,"width":64,"height":48}`, string(reqs[1].Body))
	assert.Empty(t, reqs[1].Header.Get("Idempotency-Key"))
}

func TestDesktopScreenshot_AnswersThatAreNoPNGLeaveTheWriterUntouched(t *testing.T) {
	valid := testPNG(t, 4, 4)
	header := valid[:pngHeaderSize]
	cases := []struct {
		name, contentType string
		body              []byte
		says              string
	}{
		{"empty", "image/png", nil, "the screenshot is empty"},
		{"JSON", "application/json", []byte(`{"error":"no display"}`), `not a PNG image: the answer (Content-Type application/json) begins: {"error":"no display"}`},
		{"JSON success", "application/json", []byte(`{"success":true,"image":"iVBORw0KGgo="}`), "not a PNG image"},
		{"HTML", "text/html", []byte("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"), "not a PNG image"},
		{"a JPEG", "image/jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00"), "not a PNG image"},
		{"the signature alone", "image/png", header[:8], "ends within its PNG header, after 8 bytes"},
		{"a truncated header", "image/png", header[:20], "ends within its PNG header, after 20 bytes"},
		{"the signature, then something else", "image/png", append(header[:8:8], []byte("not a chunk at all, but long enough")...), "does not begin with its IHDR chunk"},
		{"another chunk first", "image/png", pngOf(pngChunk("tEXt", []byte("Software\x00x more more")), ihdr(4, 4)), "does not begin with its IHDR chunk"},
		{"a corrupt IHDR", "image/png", append(append(header[:20:20], 0xff), header[21:]...), "fails its checksum"},
		{"absurd width", "image/png", pngOf(ihdr(1<<31-1, 1)), "a PNG image of 2147483647×1 pixels, larger than any screen"},
		{"absurd area", "image/png", pngOf(ihdr(40000, 40000)), "40000×40000 pixels, larger than any screen"},
		{"no pixels", "image/png", pngOf(ihdr(0, 768)), "an empty PNG image (0×768 pixels)"},
		{"a bit depth the colour type forbids", "image/png", pngOf(ihdr(4, 4, 4, 6)), "invalid IHDR chunk (bit depth 4, colour type 6"},
		{"an unknown interlace", "image/png", pngOf(ihdr(4, 4, 8, 6, 0, 0, 2)), "invalid IHDR chunk"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				w.Header().Set("Content-Type", tc.contentType)
				_, _ = w.Write(tc.body)
			})
			var buf bytes.Buffer
			shot, err := newTestClient(t, base, WithMaxRetries(3)).Desktop.Screenshot(t.Context(), "cmp_1", &buf)
			require.Error(t, err)
			assert.Nil(t, shot)
			assert.Contains(t, err.Error(), "miosa: GET /computers/cmp_1/desktop/screenshot: ")
			assert.Contains(t, err.Error(), tc.says)
			assert.Zero(t, buf.Len(), "nothing reached the writer")
			assert.Equal(t, 1, rec.count(), "the server's answer is final")
		})
	}
}

func TestDesktopScreenshot_ATextBodyNeverEchoesTheKey(t *testing.T) {
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		_, _ = io.WriteString(w, testKey+" is not allowed here")
	})
	_, err := newTestClient(t, base).Desktop.Screenshot(t.Context(), "cmp_1", io.Discard)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), testKey)
	assert.NotContains(t, err.Error(), testKey[:12])
}

func TestDesktopScreenshot_ImagesThatEndEarlyAreErrorsWithTheCount(t *testing.T) {
	img := testPNG(t, 64, 48)
	cases := []struct {
		name    string
		respond func(w http.ResponseWriter)
		written int
		says    string
	}{
		{"shorter than its Content-Length", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(img)))
			_, _ = w.Write(img[:100])
			flushAndClose(w)
		}, 100, "after 100 of " + strconv.Itoa(len(img)) + " bytes"},
		{"a connection cut mid-stream, chunked", func(w http.ResponseWriter) {
			_, _ = w.Write(img[:100])
			flushAndClose(w)
		}, 100, "after 100 bytes"},
		{"a clean end before IEND, chunked", func(w http.ResponseWriter) {
			_, _ = w.Write(img[:len(img)-12])
		}, len(img) - 12, "the PNG image ends before its IEND chunk"},
		{"the header and nothing else", func(w http.ResponseWriter) {
			_, _ = w.Write(img[:pngHeaderSize])
		}, pngHeaderSize, "ends before its IEND chunk"},
		{"garbage after the header", func(w http.ResponseWriter) {
			_, _ = w.Write(append(img[:pngHeaderSize:pngHeaderSize], "\x00\x00\x00\x04!!!!garbage and more"...))
		}, pngHeaderSize + 24, "ends before its IEND chunk"},
		{"a chunk longer than PNG allows", func(w http.ResponseWriter) {
			_, _ = w.Write(append(img[:pngHeaderSize:pngHeaderSize], "\xff\xff\xff\xffIDATxxxx"...))
		}, pngHeaderSize + 12, "the PNG image is malformed: a chunk claims 4294967295 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { tc.respond(w) })
			var buf bytes.Buffer
			shot, err := newTestClient(t, base, WithMaxRetries(3)).Desktop.Screenshot(t.Context(), "cmp_1", &buf)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.says)
			require.NotNil(t, shot, "bytes reached the writer: the count is returned")
			assert.Equal(t, &Screenshot{Width: 64, Height: 48, Bytes: int64(tc.written)}, shot)
			assert.Equal(t, buf.Len(), tc.written)
			assert.Equal(t, 1, rec.count(), "bytes reached the writer: never sent again")
		})
	}
}

func TestDesktopScreenshot_BytesAfterIENDAreKept(t *testing.T) {
	img := append(testPNG(t, 3, 3), "\n"...)
	_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { _, _ = w.Write(img) })
	var buf bytes.Buffer
	shot, err := newTestClient(t, base).Desktop.Screenshot(t.Context(), "cmp_1", &buf)
	require.NoError(t, err)
	assert.EqualValues(t, len(img), shot.Bytes)
	assert.Equal(t, img, buf.Bytes())
}

func TestDesktopScreenshot_RetriedOnlyBeforeTheFirstByte(t *testing.T) {
	img := testPNG(t, 16, 16)
	cases := []struct {
		name  string
		first func(w http.ResponseWriter)
	}{
		{"503", func(w http.ResponseWriter) { writeJSON(w, 503, `{"error":"busy"}`) }},
		{"409 retryable", func(w http.ResponseWriter) {
			writeJSON(w, 409, `{"error":{"code":"COMPUTER_STARTING","message":"booting","retryable":true}}`)
		}},
		{"dropped before the answer", hijackAndClose},
		{"dropped after the headers", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(img)))
			w.WriteHeader(200)
			flushAndClose(w)
		}},
		{"dropped within the PNG header", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", strconv.Itoa(len(img)))
			_, _ = w.Write(img[:20])
			flushAndClose(w)
		}},
	}
	for _, tc := range cases {
		for _, region := range []bool{false, true} {
			t.Run(tc.name+" region="+strconv.FormatBool(region), func(t *testing.T) {
				rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
					if n == 1 {
						tc.first(w)
						return
					}
					_, _ = w.Write(img)
				})
				c := newTestClient(t, base)
				var buf bytes.Buffer
				var err error
				if region {
					_, err = c.Desktop.ScreenshotRegion(t.Context(), "cmp_1", image.Rect(0, 0, 16, 16), &buf)
				} else {
					_, err = c.Desktop.Screenshot(t.Context(), "cmp_1", &buf)
				}
				require.NoError(t, err)
				assert.Equal(t, img, buf.Bytes(), "the image once, whole")
				assert.Equal(t, 2, rec.count())
			})
		}
	}
}

func TestDesktopScreenshot_BoundedByTheResponseSizeLimit(t *testing.T) {
	img := testPNG(t, 64, 64)
	limit := int64(len(img) - 1)
	t.Run("declared", func(t *testing.T) {
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { _, _ = w.Write(img) })
		var buf bytes.Buffer
		shot, err := newTestClient(t, base, WithMaxRetries(3)).Desktop.Screenshot(t.Context(), "cmp_1", &buf, WithMaxResponseSize(limit))
		require.ErrorContains(t, err, "declares "+strconv.Itoa(len(img))+" bytes, limit "+strconv.FormatInt(limit, 10))
		assert.Nil(t, shot)
		assert.Zero(t, buf.Len())
		assert.Equal(t, 1, rec.count())
	})
	t.Run("chunked: cut at the limit", func(t *testing.T) {
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			// Flushed: chunked, without a Content-Length.
			_, _ = w.Write(img[:1])
			http.NewResponseController(w).Flush()
			_, _ = w.Write(img[1:])
		})
		var buf bytes.Buffer
		shot, err := newTestClient(t, base, WithMaxRetries(3)).Desktop.Screenshot(t.Context(), "cmp_1", &buf, WithMaxResponseSize(limit))
		require.ErrorContains(t, err, "more than "+strconv.FormatInt(limit, 10)+" bytes")
		require.NotNil(t, shot)
		assert.Equal(t, limit, shot.Bytes)
		assert.EqualValues(t, limit, buf.Len(), "not a byte past the limit")
		assert.Equal(t, 1, rec.count())
	})
	t.Run("a limit below the header", func(t *testing.T) {
		_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			_, _ = w.Write(img[:20])
			http.NewResponseController(w).Flush()
			_, _ = w.Write(img[20:])
		})
		var buf bytes.Buffer
		_, err := newTestClient(t, base).Desktop.Screenshot(t.Context(), "cmp_1", &buf, WithMaxResponseSize(10))
		require.ErrorContains(t, err, "more than 10 bytes")
		assert.Zero(t, buf.Len())
	})
	t.Run("an endless body", func(t *testing.T) {
		rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			_, _ = w.Write(img[:pngHeaderSize])
			idat := pngChunk("IDAT", make([]byte, 64<<10))
			for r.Context().Err() == nil {
				if _, err := w.Write(idat); err != nil {
					return
				}
			}
		})
		// Bounded, so that a client without the cap fails instead of hanging.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		shot, err := newTestClient(t, base).Desktop.Screenshot(ctx, "cmp_1", io.Discard, WithMaxResponseSize(1<<20))
		require.ErrorContains(t, err, "more than 1048576 bytes")
		assert.EqualValues(t, 1<<20, shot.Bytes)
		assert.Equal(t, 1, rec.count())
	})
}

func TestDesktopScreenshot_AFailingWriterIsFinal(t *testing.T) {
	img := testPNG(t, 8, 8)
	rec, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) { _, _ = w.Write(img) })
	full := errors.New("disk full")
	_, err := newTestClient(t, base).Desktop.Screenshot(t.Context(), "cmp_1", failingWriter{full})
	require.ErrorIs(t, err, full)
	assert.Equal(t, 1, rec.count())
}

func TestDesktopScreenshot_AStalledHeaderEndsTheAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		img := testPNG(t, 8, 8)
		var calls atomic.Int32
		client := newFakeClientWith(t, pipeTransport{func(w http.ResponseWriter, r *http.Request) {
			switch calls.Add(1) {
			case 1:
				trickle(img[:10], 0, 0, true)(w, r) // ten bytes of the header, then nothing
			default:
				_, _ = w.Write(img)
			}
		}})
		start := time.Now()
		var buf bytes.Buffer
		shot, err := client.Desktop.Screenshot(t.Context(), "cmp_1", &buf)
		require.NoError(t, err)
		assert.EqualValues(t, len(img), shot.Bytes)
		assert.Equal(t, img, buf.Bytes())
		assert.EqualValues(t, 2, calls.Load())
		assert.Equal(t, transferStallLimit, time.Since(start), "the stall limit, then at once the retry")

		calls.Store(0)
		_, err = client.Desktop.Screenshot(t.Context(), "cmp_1", io.Discard, WithMaxRetries(0))
		require.ErrorContains(t, err, "broke off within its PNG header, after 10 bytes: no data for 30s")
	})
}

func TestDesktopScreenshot_ContextCancelEndsItPromptly(t *testing.T) {
	img := testPNG(t, 32, 32)
	t.Run("within the header", func(t *testing.T) {
		_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			_, _ = w.Write(img[:10])
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Millisecond, cancel)
		shot, err := newTestClient(t, base).Desktop.Screenshot(ctx, "cmp_1", io.Discard)
		require.ErrorIs(t, err, context.Canceled)
		assert.Nil(t, shot)
	})
	t.Run("mid-image", func(t *testing.T) {
		_, base := newRecordingServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			_, _ = w.Write(img[:200])
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		})
		ctx, cancel := context.WithCancel(t.Context())
		w := &cancelOnWrite{cancel: cancel}
		shot, err := newTestClient(t, base).Desktop.Screenshot(ctx, "cmp_1", w)
		require.ErrorIs(t, err, context.Canceled)
		require.NotNil(t, shot)
		assert.EqualValues(t, w.n, shot.Bytes)
	})
}
