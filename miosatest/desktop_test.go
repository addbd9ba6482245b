package miosatest_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/miosa-ai/miosa-go"
	"github.com/miosa-ai/miosa-go/miosatest"
)

// newDesktop starts a server and a running desktop computer on it.
func newDesktop(t *testing.T, opts ...miosatest.Option) (*miosatest.Server, *miosa.Client, string) {
	t.Helper()
	srv := miosatest.NewServer(t, append([]miosatest.Option{miosatest.WithBootDelay(0)}, opts...)...)
	client := srv.Client()
	c, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{TemplateType: "miosa-desktop"})
	require.NoError(t, err)
	return srv, client, c.ID
}

// decodePNG decodes a screenshot, failing the test if it is no PNG.
func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	return img
}

func TestDesktop_ScreenshotsAreRealPNGsOfTheScreen(t *testing.T) {
	srv, client, id := newDesktop(t, miosatest.WithScreenSize(640, 400))
	var buf bytes.Buffer
	shot, err := client.Desktop.Screenshot(t.Context(), id, &buf)
	require.NoError(t, err)
	assert.Equal(t, &miosa.Screenshot{Width: 640, Height: 400, Bytes: int64(buf.Len())}, shot)
	assert.Equal(t, image.Rect(0, 0, 640, 400), decodePNG(t, buf.Bytes()).Bounds())

	d, err := srv.Desktop(id)
	require.NoError(t, err)
	assert.Equal(t, image.Pt(640, 400), d.Size)
	assert.Equal(t, image.Pt(320, 200), d.Cursor, "the pointer starts in the middle")
	assert.Empty(t, d.Actions, "a screenshot is no action")

	t.Run("a region is a PNG of the region, showing what is there", func(t *testing.T) {
		require.NoError(t, client.Desktop.Move(t.Context(), id, image.Pt(100, 50)))
		buf.Reset()
		shot, err := client.Desktop.ScreenshotRegion(t.Context(), id, image.Rect(98, 48, 108, 58), &buf)
		require.NoError(t, err)
		assert.Equal(t, 10, shot.Width)
		assert.Equal(t, 10, shot.Height)
		img := decodePNG(t, buf.Bytes())
		require.Equal(t, 10, img.Bounds().Dx())
		require.Equal(t, 10, img.Bounds().Dy())
		pointer := color.RGBAModel.Convert(img.At(img.Bounds().Min.X+3, img.Bounds().Min.Y+3)).(color.RGBA)
		background := color.RGBAModel.Convert(img.At(img.Bounds().Min.X, img.Bounds().Min.Y)).(color.RGBA)
		assert.Equal(t, color.RGBA{0, 0, 0, 0xff}, pointer, "the pointer is drawn where it is")
		assert.NotEqual(t, pointer, background)
	})
	t.Run("a region beyond the screen is refused", func(t *testing.T) {
		_, err := client.Desktop.ScreenshotRegion(t.Context(), id, image.Rect(600, 0, 700, 10), &buf)
		require.ErrorIs(t, err, miosa.ErrValidation)
		assert.Contains(t, err.Error(), "not within the 640×400 screen")
	})
	t.Run("the default size", func(t *testing.T) {
		_, client, id := newDesktop(t)
		shot, err := client.Desktop.Screenshot(t.Context(), id, &bytes.Buffer{})
		require.NoError(t, err)
		assert.Equal(t, miosatest.DefaultScreenWidth, shot.Width)
		assert.Equal(t, miosatest.DefaultScreenHeight, shot.Height)
	})
}

func TestDesktop_PointerActionsMoveTheCursorAndAreRecorded(t *testing.T) {
	srv, client, id := newDesktop(t)
	ctx := t.Context()
	cursor := func() image.Point {
		at, err := client.Desktop.Cursor(ctx, id)
		require.NoError(t, err)
		return at
	}
	require.NoError(t, client.Desktop.Click(ctx, id, image.Pt(10, 20), miosa.ClickParams{}))
	assert.Equal(t, image.Pt(10, 20), cursor())
	require.NoError(t, client.Desktop.Click(ctx, id, image.Pt(11, 21), miosa.ClickParams{Button: miosa.ButtonRight}))
	require.NoError(t, client.Desktop.Click(ctx, id, image.Pt(12, 22), miosa.ClickParams{Double: true}))
	assert.Equal(t, image.Pt(12, 22), cursor())
	require.NoError(t, client.Desktop.Move(ctx, id, image.Pt(300, 400)))
	assert.Equal(t, image.Pt(300, 400), cursor())
	require.NoError(t, client.Desktop.Drag(ctx, id, image.Pt(1, 2), image.Pt(500, 600)))
	assert.Equal(t, image.Pt(500, 600), cursor())
	require.NoError(t, client.Desktop.Scroll(ctx, id, miosa.ScrollParams{Direction: miosa.ScrollDown}))
	assert.Equal(t, image.Pt(500, 600), cursor(), "a scroll without a point stays where the pointer is")
	require.NoError(t, client.Desktop.Scroll(ctx, id, miosa.ScrollParams{Direction: miosa.ScrollUp, Clicks: 5, At: &image.Point{X: 7, Y: 8}}))
	assert.Equal(t, image.Pt(7, 8), cursor())

	d, err := srv.Desktop(id)
	require.NoError(t, err)
	assert.Equal(t, []miosatest.DesktopAction{
		{Kind: miosatest.ActionClick, At: image.Pt(10, 20), Button: "left"},
		{Kind: miosatest.ActionClick, At: image.Pt(11, 21), Button: "right"},
		{Kind: miosatest.ActionDoubleClick, At: image.Pt(12, 22)},
		{Kind: miosatest.ActionMove, At: image.Pt(300, 400)},
		{Kind: miosatest.ActionDrag, At: image.Pt(1, 2), To: image.Pt(500, 600)},
		{Kind: miosatest.ActionScroll, At: image.Pt(500, 600), Direction: "down", Clicks: 3},
		{Kind: miosatest.ActionScroll, At: image.Pt(7, 8), Direction: "up", Clicks: 5},
	}, d.Actions)
	assert.Equal(t, image.Pt(7, 8), d.Cursor)
}

func TestDesktop_TypingAndKeysAreRecorded(t *testing.T) {
	srv, client, id := newDesktop(t)
	ctx := t.Context()
	require.NoError(t, client.Desktop.Type(ctx, id, "hello ", miosa.TypeParams{}))
	require.NoError(t, client.Desktop.Type(ctx, id, "wörld", miosa.TypeParams{Delay: 12 * time.Millisecond}))
	require.NoError(t, client.Desktop.Key(ctx, id, "Return"))
	require.NoError(t, client.Desktop.Key(ctx, id, "ctrl+c"))
	d, err := srv.Desktop(id)
	require.NoError(t, err)
	assert.Equal(t, "hello wörld", d.Typed)
	assert.Equal(t, []string{"Return", "ctrl+c"}, d.Keys)
	assert.Equal(t, []miosatest.DesktopAction{
		{Kind: miosatest.ActionType, Text: "hello "},
		{Kind: miosatest.ActionType, Text: "wörld", Delay: 12 * time.Millisecond},
		{Kind: miosatest.ActionKey, Key: "Return"},
		{Kind: miosatest.ActionKey, Key: "ctrl+c"},
	}, d.Actions)
}

func TestDesktop_WindowsATestSetsLaunchAndFocus(t *testing.T) {
	srv, client, id := newDesktop(t, miosatest.WithScreenSize(1200, 900))
	ctx := t.Context()
	require.NoError(t, srv.SetWindows(id, []miosatest.Window{
		{ID: "10", Title: "Terminal", App: "xterm", Bounds: image.Rect(0, 0, 400, 300), Focused: true},
		{ID: "11", Title: "Notes", App: "gedit", Bounds: image.Rect(50, 60, 650, 560)},
	}))
	windows, err := client.Desktop.Windows(ctx, id)
	require.NoError(t, err)
	require.Len(t, windows, 2)
	assert.Equal(t, "10", windows[0].ID)
	assert.True(t, windows[0].Focused)
	assert.Equal(t, image.Rect(50, 60, 650, 560), windows[1].Bounds)
	assert.Equal(t, "gedit", windows[1].App)

	require.NoError(t, client.Desktop.FocusWindow(ctx, id, "11"))
	require.NoError(t, client.Desktop.Launch(ctx, id, "firefox"))
	windows, err = client.Desktop.Windows(ctx, id)
	require.NoError(t, err)
	require.Len(t, windows, 3)
	launched := windows[2]
	assert.Equal(t, "firefox", launched.App)
	assert.Equal(t, "firefox", launched.Title)
	assert.True(t, launched.Focused, "a launched window has the focus")
	assert.False(t, windows[0].Focused || windows[1].Focused)
	assert.Equal(t, "11", windows[1].ID, "focusing brought 11 above 10")
	assert.True(t, launched.Bounds.In(image.Rect(0, 0, 1200, 900)))
	assert.False(t, launched.Bounds.Empty())

	require.NoError(t, client.Desktop.FocusWindow(ctx, id, "10"))
	d, err := srv.Desktop(id)
	require.NoError(t, err)
	assert.Equal(t, "10", d.Windows[len(d.Windows)-1].ID)
	assert.True(t, d.Windows[len(d.Windows)-1].Focused)
	assert.Equal(t, []miosatest.DesktopAction{
		{Kind: miosatest.ActionFocus, WindowID: "11"},
		{Kind: miosatest.ActionLaunch, App: "firefox", WindowID: launched.ID},
		{Kind: miosatest.ActionFocus, WindowID: "10"},
	}, d.Actions)

	err = client.Desktop.FocusWindow(ctx, id, "404")
	require.ErrorIs(t, err, miosa.ErrNotFound)
	assert.Contains(t, err.Error(), `window "404" not found`)
}

func TestDesktop_SetWindowsRefusesWhatNoDesktopShows(t *testing.T) {
	srv, _, id := newDesktop(t)
	for name, windows := range map[string][]miosatest.Window{
		"an empty id":   {{ID: ""}},
		"a repeated id": {{ID: "1"}, {ID: "1"}},
		"two focused":   {{ID: "1", Focused: true}, {ID: "2", Focused: true}},
	} {
		assert.Error(t, srv.SetWindows(id, windows), name)
	}
	assert.Error(t, srv.SetWindows("cmp_nope", nil))
	_, err := srv.Desktop("cmp_nope")
	assert.Error(t, err)

	srv, _, id = newDesktop(t, miosatest.WithIntegerWindowIDs())
	assert.ErrorContains(t, srv.SetWindows(id, []miosatest.Window{{ID: "win-1"}}), "not an integer")
	assert.NoError(t, srv.SetWindows(id, []miosatest.Window{{ID: "12"}}))
}

func TestDesktop_ASandboxHasNone(t *testing.T) {
	srv := miosatest.NewServer(t, miosatest.WithBootDelay(0))
	client := srv.Client()
	sb, err := client.Sandboxes.Create(t.Context(), miosa.ComputerCreateParams{})
	require.NoError(t, err)
	for name, call := range map[string]func() error{
		"screenshot": func() error { _, err := client.Desktop.Screenshot(t.Context(), sb.ID, &bytes.Buffer{}); return err },
		"click":      func() error { return client.Desktop.Click(t.Context(), sb.ID, image.Pt(1, 1), miosa.ClickParams{}) },
		"windows":    func() error { _, err := client.Desktop.Windows(t.Context(), sb.ID); return err },
		"scroll": func() error {
			return client.Desktop.Scroll(t.Context(), sb.ID, miosa.ScrollParams{Direction: miosa.ScrollUp})
		},
	} {
		err := call()
		require.ErrorIs(t, err, miosa.ErrNotFound, name)
		var apiErr *miosa.APIError
		require.ErrorAs(t, err, &apiErr, name)
		assert.Equal(t, "NO_DESKTOP", apiErr.Code, name)
		assert.Contains(t, apiErr.Message, `has no desktop: only a computer of template "miosa-desktop" has one`, name)
	}
	_, err = srv.Desktop(sb.ID)
	assert.ErrorContains(t, err, "has no desktop")
	assert.Len(t, srv.RequestsTo("POST", "/computers/*/desktop/scroll"), 1, "a 404 is not a spelling to try again")
}

func TestDesktop_AStoppedMachineIsNotRunning(t *testing.T) {
	srv, client, id := newDesktop(t)
	require.NoError(t, client.Computers.Stop(t.Context(), id))
	for name, call := range map[string]func() error{
		"screenshot": func() error { _, err := client.Desktop.Screenshot(t.Context(), id, &bytes.Buffer{}); return err },
		"region": func() error {
			_, err := client.Desktop.ScreenshotRegion(t.Context(), id, image.Rect(0, 0, 5, 5), &bytes.Buffer{})
			return err
		},
		"key":    func() error { return client.Desktop.Key(t.Context(), id, "a") },
		"cursor": func() error { _, err := client.Desktop.Cursor(t.Context(), id); return err },
	} {
		err := call()
		require.ErrorIs(t, err, miosa.ErrConflict, name)
		var apiErr *miosa.APIError
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, "NOT_RUNNING", apiErr.Code, name)
	}
	d, err := srv.Desktop(id)
	require.NoError(t, err)
	assert.Empty(t, d.Actions)
}

func TestDesktop_ActionsOffTheScreenAreRefused(t *testing.T) {
	srv, client, id := newDesktop(t, miosatest.WithScreenSize(100, 100))
	err := client.Desktop.Click(t.Context(), id, image.Pt(100, 5), miosa.ClickParams{})
	require.ErrorIs(t, err, miosa.ErrValidation)
	assert.Contains(t, err.Error(), "(100,5) is outside the 100×100 screen")
	require.ErrorIs(t, client.Desktop.Drag(t.Context(), id, image.Pt(1, 1), image.Pt(1, 200)), miosa.ErrValidation)
	d, err := srv.Desktop(id)
	require.NoError(t, err)
	assert.Empty(t, d.Actions)
	assert.Equal(t, image.Pt(50, 50), d.Cursor)
}

func TestDesktop_DisputedSpellingModes(t *testing.T) {
	cases := []struct {
		name   string
		opt    miosatest.Option
		path   string
		act    func(c *miosa.Client, id string) error
		before func(srv *miosatest.Server, id string)
		bodies []string // the bodies sent by the first call, then by the second
		kind   miosatest.ActionKind
	}{
		{"scroll amount", miosatest.WithScrollAmount(), "/computers/*/desktop/scroll",
			func(c *miosa.Client, id string) error {
				return c.Desktop.Scroll(t.Context(), id, miosa.ScrollParams{Direction: miosa.ScrollLeft, Clicks: 2})
			}, nil,
			[]string{`{"direction":"left","clicks":2}`, `{"direction":"left","amount":2}`, `{"direction":"left","amount":2}`},
			miosatest.ActionScroll},
		{"launch app_name", miosatest.WithLaunchAppName(), "/computers/*/desktop/launch",
			func(c *miosa.Client, id string) error { return c.Desktop.Launch(t.Context(), id, "xterm") }, nil,
			[]string{`{"app":"xterm"}`, `{"app_name":"xterm"}`, `{"app_name":"xterm"}`},
			miosatest.ActionLaunch},
		{"integer window ids", miosatest.WithIntegerWindowIDs(), "/computers/*/desktop/window/focus",
			func(c *miosa.Client, id string) error { return c.Desktop.FocusWindow(t.Context(), id, "77") },
			func(srv *miosatest.Server, id string) {
				require.NoError(t, srv.SetWindows(id, []miosatest.Window{{ID: "77", Title: "x"}}))
			},
			[]string{`{"window_id":"77"}`, `{"window_id":77}`, `{"window_id":77}`},
			miosatest.ActionFocus},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, client, id := newDesktop(t, tc.opt)
			if tc.before != nil {
				tc.before(srv, id)
			}
			require.NoError(t, tc.act(client, id))
			require.NoError(t, tc.act(client, id))
			reqs := srv.RequestsTo("POST", tc.path)
			require.Len(t, reqs, 3)
			for i, want := range tc.bodies {
				assert.JSONEq(t, want, string(reqs[i].Body))
			}
			assert.Equal(t, http.StatusUnprocessableEntity, reqs[0].Status)
			d, err := srv.Desktop(id)
			require.NoError(t, err)
			require.Len(t, d.Actions, 2, "the refused spelling did nothing")
			assert.Equal(t, tc.kind, d.Actions[0].Kind)

			// The default server takes the first spelling, and refuses the
			// other as the mode refused the first.
			srv, client, id = newDesktop(t)
			if tc.before != nil {
				tc.before(srv, id)
			}
			require.NoError(t, tc.act(client, id))
			require.Len(t, srv.RequestsTo("POST", tc.path), 1)
			res := call(t, srv, "POST", "/computers/"+id+tc.path[len("/computers/*"):], tc.bodies[1])
			assert.Equal(t, http.StatusUnprocessableEntity, res.status, string(res.body))
		})
	}
	t.Run("windows list integer ids", func(t *testing.T) {
		srv, _, id := newDesktop(t, miosatest.WithIntegerWindowIDs())
		require.NoError(t, srv.SetWindows(id, []miosatest.Window{{ID: "5"}}))
		res := call(t, srv, "GET", "/computers/"+id+"/desktop/windows", "")
		assert.Contains(t, string(res.body), `"id":5,`)
	})
}

func TestDesktop_OKActionAnswers(t *testing.T) {
	srv, client, id := newDesktop(t, miosatest.WithOKActionAnswers())
	res := call(t, srv, "POST", "/computers/"+id+"/desktop/key", `{"key":"a"}`)
	assert.JSONEq(t, `{"ok":true}`, string(res.body))
	require.NoError(t, client.Desktop.Key(t.Context(), id, "b"))

	srv, _, id = newDesktop(t)
	res = call(t, srv, "POST", "/computers/"+id+"/desktop/key", `{"key":"a"}`)
	assert.JSONEq(t, `{"success":true}`, string(res.body))
}

func TestDesktop_FaultsOnActions(t *testing.T) {
	t.Run("an answer lost after the click acted: one click, an unknown outcome", func(t *testing.T) {
		srv, client, id := newDesktop(t)
		srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers/*/desktop/click", Drop: miosatest.DropAfterAct})
		err := client.Desktop.Click(t.Context(), id, image.Pt(5, 5), miosa.ClickParams{})
		require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
		assert.Len(t, srv.RequestsTo("POST", "/computers/*/desktop/click"), 1)
		d, err := srv.Desktop(id)
		require.NoError(t, err)
		assert.Len(t, d.Actions, 1, "the click happened, once")
	})
	t.Run("typing lost before it acted is still not sent again", func(t *testing.T) {
		srv, client, id := newDesktop(t)
		srv.Inject(miosatest.Fault{Path: "/computers/*/desktop/type", Drop: miosatest.DropBeforeAct})
		err := client.Desktop.Type(t.Context(), id, "hi", miosa.TypeParams{})
		require.ErrorIs(t, err, miosa.ErrOutcomeUnknown)
		d, err := srv.Desktop(id)
		require.NoError(t, err)
		assert.Empty(t, d.Typed)
	})
	t.Run("a 2xx declaring failure", func(t *testing.T) {
		srv, client, id := newDesktop(t)
		srv.Inject(miosatest.Fault{Path: "/computers/*/desktop/click", Status: 200, Body: []byte(`{"ok":false,"error":"no display"}`)})
		err := client.Desktop.Click(t.Context(), id, image.Pt(5, 5), miosa.ClickParams{})
		require.ErrorIs(t, err, miosa.ErrActionFailed)
		assert.Contains(t, err.Error(), "no display")
	})
	t.Run("429 is retried", func(t *testing.T) {
		srv, client, id := newDesktop(t)
		srv.Inject(miosatest.Fault{Path: "/computers/*/desktop/key", Status: 429})
		require.NoError(t, client.Desktop.Key(t.Context(), id, "Return"))
		d, err := srv.Desktop(id)
		require.NoError(t, err)
		assert.Equal(t, []string{"Return"}, d.Keys)
	})
	t.Run("a screenshot cut halfway", func(t *testing.T) {
		srv, client, id := newDesktop(t)
		srv.Inject(miosatest.Fault{Path: "/computers/*/desktop/screenshot", Drop: miosatest.DropMidAnswer})
		var buf bytes.Buffer
		shot, err := client.Desktop.Screenshot(t.Context(), id, &buf)
		require.Error(t, err)
		require.NotNil(t, shot)
		assert.Positive(t, shot.Bytes)
		assert.EqualValues(t, buf.Len(), shot.Bytes)
		assert.Contains(t, err.Error(), "bytes had been written")
	})
	t.Run("a screenshot refused before its first byte is retried", func(t *testing.T) {
		srv, client, id := newDesktop(t)
		srv.Inject(miosatest.Fault{Path: "/computers/*/desktop/screenshot", Status: 503})
		_, err := client.Desktop.Screenshot(t.Context(), id, &bytes.Buffer{})
		require.NoError(t, err)
		assert.Len(t, srv.RequestsTo("GET", "/computers/*/desktop/screenshot"), 2)
	})
}

func TestDesktop_RefusesBodiesItCannotActOn(t *testing.T) {
	srv, _, id := newDesktop(t)
	for _, tc := range []struct{ route, body, says string }{
		{"click", `{"x":1}`, "y is required"},
		{"click", `{"x":1,"y":2,"button":"thumb"}`, `button "thumb"`},
		{"click", `{"x":"1","y":2}`, "x must be an integer"},
		{"click", `{"x":1,"y":2,"z":3}`, `unknown field "z"`},
		{"double-click", `{"x":1,"y":2,"button":"left"}`, `unknown field "button"`},
		{"drag", `{"from_x":1,"from_y":2,"to_x":3}`, "to_y is required"},
		{"scroll", `{"clicks":2}`, "direction is required"},
		{"scroll", `{"direction":"sideways"}`, `direction "sideways"`},
		{"scroll", `{"direction":"up","x":5}`, "x and y go together"},
		{"scroll", `{"direction":"up","clicks":-1}`, "must not be negative"},
		{"type", `{"text":""}`, "text is empty"},
		{"type", `{"text":"a","delay":-5}`, "delay must not be negative"},
		{"key", `{}`, "key is required"},
		{"window/focus", `{"window_id":3}`, "window_id must be a string"},
		{"launch", `{"app":" "}`, "the app is empty"},
		{"screenshot/region", `{"x":0,"y":0,"width":0,"height":5}`, "is empty or not within"},
		{"screenshot/region", `{"x":0,"y":0,"width":5}`, "height is required"},
		{"key", `[1]`, "must be a JSON object"},
	} {
		res := call(t, srv, "POST", "/computers/"+id+"/desktop/"+tc.route, tc.body)
		if assert.Contains(t, []int{400, 422}, res.status, tc.route+" "+tc.body) {
			_, msg := res.errorCode(t)
			assert.Contains(t, msg, tc.says, tc.route+" "+tc.body)
		}
	}
	d, err := srv.Desktop(id)
	require.NoError(t, err)
	assert.Empty(t, d.Actions)
}

func TestDesktop_UnknownMachine(t *testing.T) {
	srv := miosatest.NewServer(t)
	err := srv.Client().Desktop.Key(t.Context(), "cmp_nope", "a")
	require.ErrorIs(t, err, miosa.ErrNotFound)
	var apiErr *miosa.APIError
	require.True(t, errors.As(err, &apiErr))
	assert.Equal(t, "NOT_FOUND", apiErr.Code)
}

func TestWithScreenSize_RefusesASizeNoScreenHas(t *testing.T) {
	for _, size := range [][2]int{{0, 0}, {0, 600}, {800, -1}, {8193, 600}} {
		_, err := miosatest.Start(miosatest.WithScreenSize(size[0], size[1]))
		require.Error(t, err, size)
		assert.Contains(t, err.Error(), "WithScreenSize", size)
	}
	srv, err := miosatest.Start(miosatest.WithScreenSize(8192, 1))
	require.NoError(t, err)
	require.NoError(t, srv.Close())
}
