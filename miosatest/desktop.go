package miosatest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Every machine with a desktop (template "miosa-desktop") has a virtual
// screen: a size, a pointer, windows, and the list of what was done to it.
// Screenshots are real PNG images of the screen, drawn from its state. A
// sandbox has no desktop.

// DefaultScreenWidth and DefaultScreenHeight are the size of every screen,
// in pixels, unless WithScreenSize says otherwise.
const (
	DefaultScreenWidth  = 1024
	DefaultScreenHeight = 768
)

// maxScreenSide bounds WithScreenSize: an 8K screen, whose image the fake
// still draws in a few milliseconds.
const maxScreenSide = 8192

// desktopConfig is how the server's desktops behave; its zero value is the
// default.
type desktopConfig struct {
	// Size is every screen's size; zero means the default.
	Size image.Point
	// ScrollAmount reads scroll's notches from "amount" instead of
	// "clicks"; LaunchAppName reads launch's app from "app_name" instead of
	// "app"; IntegerWindowIDs sends and takes window ids as JSON integers
	// instead of strings. The other spelling is refused with 422.
	ScrollAmount, LaunchAppName, IntegerWindowIDs bool
	// OKAnswers answers actions {"ok": true} instead of {"success": true}.
	OKAnswers bool
}

// WithScreenSize sets the size in pixels of every desktop's screen (and so
// of its screenshots). Default DefaultScreenWidth × DefaultScreenHeight.
// Each side must be 1 to 8192 pixels; Start (and NewServer) fail otherwise.
func WithScreenSize(width, height int) Option {
	size := image.Pt(width, height)
	return func(c *config) { c.screenSize = &size }
}

// WithScrollAmount makes POST …/desktop/scroll read the notch count from
// "amount", as the Elixir SDK and MIOSA's own agent send it, and refuse
// "clicks" with 422. By default it takes "clicks" and refuses "amount".
func WithScrollAmount() Option {
	return func(c *config) { c.engine.Desktop.ScrollAmount = true }
}

// WithLaunchAppName makes POST …/desktop/launch read the application from
// "app_name", as the later Go and TypeScript SDKs send it, and refuse "app"
// with 422. By default it takes "app" and refuses "app_name".
func WithLaunchAppName() Option {
	return func(c *config) { c.engine.Desktop.LaunchAppName = true }
}

// WithIntegerWindowIDs makes window ids JSON integers: GET …/desktop/windows
// lists them as numbers and POST …/desktop/window/focus takes "window_id"
// only as a number, as the Elixir SDK sends it, refusing a string with 422.
// By default ids are strings both ways.
func WithIntegerWindowIDs() Option {
	return func(c *config) { c.engine.Desktop.IntegerWindowIDs = true }
}

// WithOKActionAnswers makes every desktop action answer {"ok": true}, as
// the Elixir SDK's fixtures show, instead of {"success": true}. To make an
// action fail with a 2xx answer, inject a fault:
//
//	srv.Inject(miosatest.Fault{Path: "/computers/*/desktop/click", Status: 200, Body: []byte(`{"ok":false,"error":"no display"}`)})
func WithOKActionAnswers() Option {
	return func(c *config) { c.engine.Desktop.OKAnswers = true }
}

// ActionKind names a desktop action, as its route does.
type ActionKind string

// The actions a desktop records.
const (
	ActionClick       ActionKind = "click"
	ActionDoubleClick ActionKind = "double-click"
	ActionMove        ActionKind = "move"
	ActionDrag        ActionKind = "drag"
	ActionScroll      ActionKind = "scroll"
	ActionType        ActionKind = "type"
	ActionKey         ActionKind = "key"
	ActionFocus       ActionKind = "window/focus"
	ActionLaunch      ActionKind = "launch"
)

// DesktopAction is one action a desktop carried out, as it read it. Only
// the fields of its Kind are set.
type DesktopAction struct {
	Kind ActionKind
	// At is where a click, double click or move went, where a drag started
	// and where a scroll happened (the pointer's position when the scroll
	// named none).
	At image.Point
	// To is where a drag ended.
	To image.Point
	// Button is a click's button: "left", "right" or "middle".
	Button string
	// Direction and Clicks are a scroll's, whichever spelling carried the
	// count.
	Direction string
	Clicks    int
	// Text is what was typed, Delay the pause between keys it asked for.
	Text  string
	Delay time.Duration
	// Key is the key pressed, e.g. "Return" or "ctrl+c".
	Key string
	// WindowID is the window focused, or the window a launch opened.
	WindowID string
	// App is the application launched.
	App string
}

// Window is a window on a desktop, as GET …/desktop/windows lists it.
type Window struct {
	// ID is the window's id; with WithIntegerWindowIDs, the decimal text of
	// an integer.
	ID string
	// Title is the window's title, as Desktop.Windows lists it.
	Title string
	// App is the application the window belongs to; Launch names it.
	App string
	// Bounds is where the window is on the screen.
	Bounds image.Rectangle
	// Focused marks the window with the keyboard focus; at most one has it.
	Focused bool
}

// Desktop is a machine's screen as Server.Desktop reports it: its Size,
// the pointer's position, its windows, and everything done to it.
type Desktop struct {
	// Size is the screen's width and height in pixels.
	Size image.Point
	// Cursor is where the pointer is: the last click, move, drag or scroll
	// at a point moved it there.
	Cursor image.Point
	// Windows are the open windows, the one on top last.
	Windows []Window
	// Actions is every action carried out, oldest first.
	Actions []DesktopAction
	// Typed is all the text typed, in order; Keys every key pressed.
	Typed string
	Keys  []string
}

// screen is a machine's desktop. Fields are guarded by engine.mu.
type screen struct {
	size       image.Point
	cursor     image.Point
	windows    []Window
	actions    []DesktopAction
	typed      strings.Builder
	keys       []string
	lastWindow int // the number of the last window a launch opened
}

// screenOf returns m's screen, making it on first use; the caller holds
// engine.mu and has checked that m has a desktop.
func (e *engine) screenOf(m *machine) *screen {
	if s := e.desktops[m.id]; s != nil {
		return s
	}
	size := e.cfg.Desktop.Size
	if size == (image.Point{}) {
		size = image.Pt(DefaultScreenWidth, DefaultScreenHeight)
	}
	if e.desktops == nil {
		e.desktops = map[string]*screen{}
	}
	s := &screen{size: size, cursor: size.Div(2)}
	e.desktops[m.id] = s
	return s
}

// desktopRefusal is the answer to a desktop call on m when it cannot take
// one: m is gone or has no desktop. The caller holds engine.mu.
func desktopRefusal(m *machine, id string) (reply, bool) {
	switch {
	case m == nil:
		return errorReply(http.StatusNotFound, "NOT_FOUND", "computer %q not found", id), true
	case m.templateType != templateDesktop:
		return errorReply(http.StatusNotFound, "NO_DESKTOP",
			"computer %s (template %q) has no desktop: only a computer of template %q has one", id, m.templateType, templateDesktop), true
	}
	return reply{}, false
}

// desktopReady reports whether the path names a running machine with a
// desktop. Otherwise it answers itself: 404 for an unknown machine or one
// without a desktop, 409 for one that is not running.
func (e *engine) desktopReady(w http.ResponseWriter, r *http.Request) bool {
	id := r.PathValue("id")
	e.mu.Lock()
	refusal := e.runningDesktopRefusal(e.machines[id], id)
	e.mu.Unlock()
	if refusal.status != 0 {
		e.write(w, refusal)
		return false
	}
	return true
}

// runningDesktopRefusal is desktopReady's answer for m: a zero reply when
// it has a desktop and runs. The caller holds engine.mu.
func (e *engine) runningDesktopRefusal(m *machine, id string) reply {
	if refusal, refused := desktopRefusal(m, id); refused {
		return refusal
	}
	return e.runningRefusal(m, "computer", id)
}

// withScreen runs fn on the screen of the machine the path names, with
// engine.mu held, and returns its reply; or, when the machine went away or
// stopped since desktopReady, the refusal desktopReady would give now.
func (e *engine) withScreen(r *http.Request, fn func(s *screen) reply) reply {
	id := r.PathValue("id")
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.machines[id]
	if refusal := e.runningDesktopRefusal(m, id); refusal.status != 0 {
		return refusal
	}
	return fn(e.screenOf(m))
}

// desktopAction serves POST /computers/{id}/desktop/{kind}: it reads the
// action, checks it against the screen, carries it out and records it.
func (e *engine) desktopAction(kind ActionKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !e.desktopReady(w, r) {
			return
		}
		req, ok := e.readAction(w, r, kind)
		if !ok {
			return
		}
		e.write(w, e.withScreen(r, func(s *screen) reply { return e.act(s, req) }))
	}
}

// actionRequest is an action as its request asked for it.
type actionRequest struct {
	DesktopAction
	// scrollAt is where a scroll is to happen; nil: where the pointer is.
	scrollAt *image.Point
}

// readAction reads the body of an action of kind, answering 422 itself
// for a field it does not know, one of the wrong type, one missing or a
// value no desktop could act on.
func (e *engine) readAction(w http.ResponseWriter, r *http.Request, kind ActionKind) (actionRequest, bool) {
	req := actionRequest{DesktopAction: DesktopAction{Kind: kind}}
	a := &req.DesktopAction
	var (
		scrollX, scrollY *int
		delayMS          int64
		windowNumber     int64
	)
	xy := func(p *image.Point, x, y string) []bodyField {
		return []bodyField{{x, &p.X, true, "an integer"}, {y, &p.Y, true, "an integer"}}
	}
	var fields []bodyField
	switch cfg := e.cfg.Desktop; kind {
	case ActionClick:
		fields = append(xy(&a.At, "x", "y"), bodyField{"button", &a.Button, false, "a string"})
	case ActionDoubleClick, ActionMove:
		fields = xy(&a.At, "x", "y")
	case ActionDrag:
		fields = append(xy(&a.At, "from_x", "from_y"), xy(&a.To, "to_x", "to_y")...)
	case ActionScroll:
		fields = []bodyField{{"direction", &a.Direction, true, "a string"},
			{pick(cfg.ScrollAmount, "amount", "clicks"), &a.Clicks, false, "an integer"},
			{"x", &scrollX, false, "an integer"}, {"y", &scrollY, false, "an integer"}}
	case ActionType:
		fields = []bodyField{{"text", &a.Text, true, "a string"}, {"delay", &delayMS, false, "an integer (milliseconds)"}}
	case ActionKey:
		fields = []bodyField{{"key", &a.Key, true, "a string"}}
	case ActionFocus:
		if cfg.IntegerWindowIDs {
			fields = []bodyField{{"window_id", &windowNumber, true, "an integer"}}
		} else {
			fields = []bodyField{{"window_id", &a.WindowID, true, "a string"}}
		}
	case ActionLaunch:
		fields = []bodyField{{pick(cfg.LaunchAppName, "app_name", "app"), &a.App, true, "a string"}}
	}
	if !readFields(w, r, fields) {
		return req, false
	}
	switch {
	case (scrollX == nil) != (scrollY == nil):
		invalid(w, "x and y go together: send both or neither")
		return req, false
	case scrollX != nil:
		req.scrollAt = &image.Point{X: *scrollX, Y: *scrollY}
	}
	if kind == ActionScroll && a.Clicks == 0 {
		a.Clicks = 3
	}
	if kind == ActionFocus && e.cfg.Desktop.IntegerWindowIDs {
		a.WindowID = strconv.FormatInt(windowNumber, 10)
	}
	a.Delay = time.Duration(delayMS) * time.Millisecond
	if problem := actionProblem(a); problem != "" {
		invalid(w, "%s", problem)
		return req, false
	}
	return req, true
}

// pick returns a when cond holds, else b.
func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// actionProblem says what is wrong with a value no desktop could act on.
func actionProblem(a *DesktopAction) string {
	switch {
	case a.Kind == ActionClick && !slices.Contains([]string{"", "left", "right", "middle"}, a.Button):
		return fmt.Sprintf("button %q is not left, right or middle", a.Button)
	case a.Kind == ActionScroll && !slices.Contains([]string{"up", "down", "left", "right"}, a.Direction):
		return fmt.Sprintf("direction %q is not up, down, left or right", a.Direction)
	case a.Clicks < 0:
		return "the scroll count must not be negative"
	case a.Kind == ActionType && a.Text == "":
		return "text is empty"
	case a.Delay < 0:
		return "delay must not be negative"
	case a.Kind == ActionKey && strings.TrimSpace(a.Key) == "":
		return "key is empty"
	case a.Kind == ActionFocus && a.WindowID == "":
		return "window_id is empty"
	case a.Kind == ActionLaunch && strings.TrimSpace(a.App) == "":
		return "the app is empty"
	}
	return ""
}

// act carries out req on s and records it; the caller holds engine.mu.
func (e *engine) act(s *screen, req actionRequest) reply {
	a := req.DesktopAction
	var points []image.Point
	switch a.Kind {
	case ActionClick, ActionDoubleClick, ActionMove:
		points = []image.Point{a.At}
	case ActionDrag:
		points = []image.Point{a.At, a.To}
	case ActionScroll:
		if req.scrollAt != nil {
			points = []image.Point{*req.scrollAt}
		}
	}
	for _, p := range points {
		if !p.In(image.Rectangle{Max: s.size}) {
			return errorReply(http.StatusUnprocessableEntity, "INVALID", "point %v is outside the %d×%d screen", p, s.size.X, s.size.Y)
		}
	}
	switch a.Kind {
	case ActionClick:
		a.Button = cmp.Or(a.Button, "left")
		s.cursor = a.At
	case ActionDoubleClick, ActionMove:
		s.cursor = a.At
	case ActionDrag:
		s.cursor = a.To
	case ActionScroll:
		if req.scrollAt != nil {
			s.cursor = *req.scrollAt
		}
		a.At = s.cursor
	case ActionType:
		s.typed.WriteString(a.Text)
	case ActionKey:
		s.keys = append(s.keys, a.Key)
	case ActionFocus:
		i := slices.IndexFunc(s.windows, func(win Window) bool { return win.ID == a.WindowID })
		if i < 0 {
			return errorReply(http.StatusNotFound, "NOT_FOUND", "window %q not found", a.WindowID)
		}
		s.focus(i)
	case ActionLaunch:
		a.WindowID = s.launch(a.App)
	}
	s.actions = append(s.actions, a)
	if e.cfg.Desktop.OKAnswers {
		return reply{status: http.StatusOK, raw: map[string]bool{"ok": true}}
	}
	return reply{status: http.StatusOK, raw: map[string]bool{"success": true}}
}

// focus gives window i the focus and brings it on top.
func (s *screen) focus(i int) {
	win := s.windows[i]
	s.windows = append(slices.Delete(s.windows, i, i+1), win)
	for j := range s.windows {
		s.windows[j].Focused = j == len(s.windows)-1
	}
}

// launch opens a focused window for app, cascading from the top left, and
// returns its id.
func (s *screen) launch(app string) string {
	var id string
	for {
		s.lastWindow++
		id = strconv.Itoa(s.lastWindow)
		if !slices.ContainsFunc(s.windows, func(w Window) bool { return w.ID == id }) {
			break
		}
	}
	offset := 32 * (len(s.windows) % 8)
	min := image.Pt(offset, offset)
	bounds := image.Rectangle{Min: min, Max: min.Add(s.size.Mul(2).Div(3))}.Intersect(image.Rectangle{Max: s.size})
	s.windows = append(s.windows, Window{ID: id, Title: app, App: app, Bounds: bounds})
	s.focus(len(s.windows) - 1)
	return id
}

// The colours screenshots are drawn in: the background, a window, a
// window's title bar, the focused window's title bar, the pointer.
var desktopPalette = color.Palette{
	color.RGBA{0x2b, 0x5f, 0x75, 0xff},
	color.RGBA{0xf2, 0xf2, 0xf2, 0xff},
	color.RGBA{0x9a, 0x9a, 0x9a, 0xff},
	color.RGBA{0x1f, 0x6f, 0xeb, 0xff},
	color.RGBA{0x00, 0x00, 0x00, 0xff},
}

const titleBarHeight = 24

// draw paints the screen: the windows in order, the top one last, then the
// pointer. The caller holds engine.mu.
func (s *screen) draw() *image.Paletted {
	img := image.NewPaletted(image.Rectangle{Max: s.size}, desktopPalette)
	for _, win := range s.windows {
		fill(img, win.Bounds, 1)
		bar := win.Bounds
		bar.Max.Y = min(bar.Max.Y, bar.Min.Y+titleBarHeight)
		fill(img, bar, 2+boolIndex(win.Focused))
	}
	fill(img, image.Rectangle{Min: s.cursor, Max: s.cursor.Add(image.Pt(6, 6))}, 4)
	return img
}

func boolIndex(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// fill paints r (clipped to img) with palette entry i.
func fill(img *image.Paletted, r image.Rectangle, i uint8) {
	r = r.Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := img.Pix[img.PixOffset(r.Min.X, y):img.PixOffset(r.Max.X, y)]
		for x := range row {
			row[x] = i
		}
	}
}

// screenshot serves GET /computers/{id}/desktop/screenshot: a PNG image of
// the whole screen.
func (e *engine) screenshot(w http.ResponseWriter, r *http.Request) {
	if !e.desktopReady(w, r) {
		return
	}
	var img *image.Paletted
	rp := e.withScreen(r, func(s *screen) reply {
		img = s.draw()
		return reply{}
	})
	e.writeScreenshot(w, img, rp)
}

// screenshotRegion serves POST /computers/{id}/desktop/screenshot/region
// {x, y, width, height}: a PNG image of that part of the screen, which must
// lie within it.
func (e *engine) screenshotRegion(w http.ResponseWriter, r *http.Request) {
	if !e.desktopReady(w, r) {
		return
	}
	var x, y, width, height int
	if !readFields(w, r, []bodyField{{"x", &x, true, "an integer"}, {"y", &y, true, "an integer"},
		{"width", &width, true, "an integer"}, {"height", &height, true, "an integer"}}) {
		return
	}
	region := image.Rect(x, y, x+width, y+height)
	var img *image.Paletted
	rp := e.withScreen(r, func(s *screen) reply {
		if width < 1 || height < 1 || !region.In(image.Rectangle{Max: s.size}) {
			return errorReply(http.StatusUnprocessableEntity, "INVALID", "region x=%d y=%d width=%d height=%d is empty or not within the %d×%d screen",
				x, y, width, height, s.size.X, s.size.Y)
		}
		img = s.draw().SubImage(region).(*image.Paletted)
		return reply{}
	})
	e.writeScreenshot(w, img, rp)
}

// writeScreenshot answers with img encoded as PNG, or, when there is no
// image, with the refusal rp. The PNG is sent with its Content-Length, so
// that a DropMidAnswer fault can cut it halfway.
func (e *engine) writeScreenshot(w http.ResponseWriter, img *image.Paletted, rp reply) {
	if img == nil {
		e.write(w, rp)
		return
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL", "encoding the screenshot: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// cursor serves GET /computers/{id}/desktop/cursor: {"x", "y"}.
func (e *engine) cursor(w http.ResponseWriter, r *http.Request) {
	if !e.desktopReady(w, r) {
		return
	}
	e.write(w, e.withScreen(r, func(s *screen) reply {
		return bareReply(http.StatusOK, map[string]int{"x": s.cursor.X, "y": s.cursor.Y})
	}))
}

// windowView is a window as the API sends it.
type windowView struct {
	ID      any    `json:"id"` // a string, or a json.Number with IntegerWindowIDs
	Title   string `json:"title"`
	App     string `json:"app"`
	X       int    `json:"x"`
	Y       int    `json:"y"`
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	Focused bool   `json:"focused"`
}

// windows serves GET /computers/{id}/desktop/windows: {"data": [windows]},
// the one on top last.
func (e *engine) windows(w http.ResponseWriter, r *http.Request) {
	if !e.desktopReady(w, r) {
		return
	}
	e.write(w, e.withScreen(r, func(s *screen) reply {
		views := make([]windowView, len(s.windows))
		for i, win := range s.windows {
			var id any = win.ID
			if e.cfg.Desktop.IntegerWindowIDs {
				id = json.Number(win.ID)
			}
			views[i] = windowView{ID: id, Title: win.Title, App: win.App,
				X: win.Bounds.Min.X, Y: win.Bounds.Min.Y, Width: win.Bounds.Dx(), Height: win.Bounds.Dy(), Focused: win.Focused}
		}
		return dataReply(http.StatusOK, views)
	}))
}

// desktopOf returns the screen of machine id for a test, with engine.mu
// held: fn runs only when the machine exists and has a desktop.
func (e *engine) desktopOf(id string, fn func(s *screen) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.machines[id]
	if rp, refused := desktopRefusal(m, id); refused {
		return fmt.Errorf("%s", rp.msg)
	}
	return fn(e.screenOf(m))
}

// Desktop returns what the screen of the computer computerID shows and
// every action carried out on it. It fails for an unknown id and for a
// machine without a desktop.
func (s *Server) Desktop(computerID string) (Desktop, error) {
	var d Desktop
	err := s.engine.desktopOf(computerID, func(scr *screen) error {
		d = Desktop{
			Size: scr.size, Cursor: scr.cursor,
			Windows: slices.Clone(scr.windows), Actions: slices.Clone(scr.actions),
			Typed: scr.typed.String(), Keys: slices.Clone(scr.keys),
		}
		return nil
	})
	if err != nil {
		return Desktop{}, fmt.Errorf("miosatest: Desktop: %w", err)
	}
	return d, nil
}

// SetWindows replaces the windows on the desktop of the computer
// computerID, the one on top last. Ids must be unique and not empty (and
// decimal integers with WithIntegerWindowIDs); at most one window may be
// Focused. It fails for an unknown id and for a machine without a desktop.
func (s *Server) SetWindows(computerID string, windows []Window) error {
	seen := map[string]bool{}
	focused := 0
	for _, win := range windows {
		_, err := strconv.ParseInt(win.ID, 10, 64)
		switch {
		case win.ID == "" || seen[win.ID]:
			return fmt.Errorf("miosatest: SetWindows: window id %q is empty or not unique", win.ID)
		case s.engine.cfg.Desktop.IntegerWindowIDs && err != nil:
			return fmt.Errorf("miosatest: SetWindows: window id %q is not an integer (WithIntegerWindowIDs)", win.ID)
		}
		seen[win.ID] = true
		if win.Focused {
			focused++
		}
	}
	if focused > 1 {
		return fmt.Errorf("miosatest: SetWindows: %d windows are focused; at most one can be", focused)
	}
	err := s.engine.desktopOf(computerID, func(scr *screen) error {
		scr.windows = slices.Clone(windows)
		return nil
	})
	if err != nil {
		return fmt.Errorf("miosatest: SetWindows: %w", err)
	}
	return nil
}
