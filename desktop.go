package miosa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// MouseButton is a mouse button. The zero value means ButtonLeft.
type MouseButton string

// The mouse buttons a click may press.
const (
	ButtonLeft   MouseButton = "left"   // ButtonLeft is the primary button.
	ButtonRight  MouseButton = "right"  // ButtonRight opens context menus.
	ButtonMiddle MouseButton = "middle" // ButtonMiddle is the wheel's button.
)

// ScrollDirection is the way a scroll turns the wheel.
type ScrollDirection string

// The directions a scroll may take.
const (
	ScrollUp    ScrollDirection = "up"    // ScrollUp moves the content down, towards its top.
	ScrollDown  ScrollDirection = "down"  // ScrollDown moves towards the content's end.
	ScrollLeft  ScrollDirection = "left"  // ScrollLeft scrolls sideways, to the left.
	ScrollRight ScrollDirection = "right" // ScrollRight scrolls sideways, to the right.
)

// ClickParams tunes a click. The zero value is one click of the left button.
type ClickParams struct {
	// Button is the button pressed; "" is ButtonLeft.
	Button MouseButton
	// Double makes it a double click (of the left button only).
	Double bool
}

// TypeParams tunes typing.
type TypeParams struct {
	// Delay is the pause between two keystrokes, sent in milliseconds
	// (rounded up); 0 leaves the server's default. The attempt's deadline
	// (WithRequestTimeout) is extended by the time the typing takes.
	Delay time.Duration
}

// ScrollParams is a turn of the mouse wheel.
type ScrollParams struct {
	// Direction is where to scroll. Required.
	Direction ScrollDirection
	// Clicks is how many notches the wheel turns; 0 is 3.
	Clicks int
	// At, when set, moves the pointer there before scrolling; otherwise the
	// scroll happens where the pointer is.
	At *image.Point
}

// defaultScrollClicks is how far a scroll turns the wheel when the caller
// does not say.
const defaultScrollClicks = 3

// Window is one window on a computer's desktop.
type Window struct {
	// ID identifies the window to FocusWindow. Servers that send it as a
	// number have it formatted in decimal.
	ID    string
	Title string
	// App is the application the window belongs to, as the server names it.
	App string
	// Bounds is where the window is on the screen, from the server's x, y,
	// width and height; zero when the server did not say.
	Bounds image.Rectangle
	// Focused reports whether the window has the keyboard focus
	// ("focused" or "is_focused" on the wire).
	Focused bool
	// Raw is the window exactly as the server sent it.
	Raw json.RawMessage
}

// UnmarshalJSON decodes a window in any of the forms servers send: the id
// as a string or an integer, the focus as "focused" or "is_focused". A
// window without an id, or with a coordinate that is not a number within
// the bounds of any screen, is an error.
func (w *Window) UnmarshalJSON(data []byte) error {
	var v struct {
		ID        wire.ID         `json:"id"`
		Title     string          `json:"title"`
		App       string          `json:"app"`
		X         json.RawMessage `json:"x"`
		Y         json.RawMessage `json:"y"`
		Width     json.RawMessage `json:"width"`
		Height    json.RawMessage `json:"height"`
		Focused   json.RawMessage `json:"focused"`
		IsFocused json.RawMessage `json:"is_focused"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if v.ID == "" {
		return errMissingID
	}
	var geometry [4]int
	for i, raw := range [][]byte{v.X, v.Y, v.Width, v.Height} {
		if isJSONNull(raw) {
			continue
		}
		n, err := coordinate(raw)
		if err != nil {
			return fmt.Errorf("window %q: %w", capText(string(v.ID), maxErrorCode), err)
		}
		geometry[i] = n
	}
	x, y, width, height := geometry[0], geometry[1], geometry[2], geometry[3]
	if width < 0 || height < 0 {
		return fmt.Errorf("window %q: size %d×%d is negative", capText(string(v.ID), maxErrorCode), width, height)
	}
	*w = Window{
		ID: string(v.ID), Title: v.Title, App: v.App,
		Bounds:  image.Rectangle{Min: image.Pt(x, y), Max: image.Pt(x+width, y+height)},
		Focused: isJSONTrue(v.Focused) || isJSONTrue(v.IsFocused),
		Raw:     append(json.RawMessage(nil), data...),
	}
	return nil
}

// maxCoordinate bounds a coordinate or size a server sends: far beyond any
// screen, and small enough that sums of them never overflow.
const maxCoordinate = 1 << 24

// coordinate reads a coordinate sent as a JSON number (or a string holding
// one), rounding a fraction to the nearest pixel.
func coordinate(raw json.RawMessage) (int, error) {
	v, ok := jsonNumber(raw)
	if !ok || math.IsNaN(v) || math.Abs(v) > maxCoordinate {
		return 0, fmt.Errorf("coordinate %.40s is not a number of pixels", raw)
	}
	return int(math.Round(v)), nil
}

// cursorAnswer is the pointer's position as GET …/desktop/cursor answers it.
type cursorAnswer struct{ at image.Point }

func (c *cursorAnswer) UnmarshalJSON(data []byte) error {
	var v struct {
		X json.RawMessage `json:"x"`
		Y json.RawMessage `json:"y"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if isJSONNull(v.X) || isJSONNull(v.Y) {
		return errors.New(`the answer has no "x" and "y"`)
	}
	var err error
	if c.at.X, err = coordinate(v.X); err == nil {
		c.at.Y, err = coordinate(v.Y)
	}
	return err
}

// DesktopService sees and drives the screen of a computer with a desktop
// (template "miosa-desktop"); a sandbox has none. Coordinates are screen
// pixels, with (0, 0) at the top left.
//
// Every action (Click, Move, Drag, Scroll, Type, Key, FocusWindow, Launch)
// changes the screen, so it is never sent again once it may have reached
// the server: a lost answer is an error matching ErrOutcomeUnknown (a
// replayed click would be a double click). Answers that prove nothing ran
// (429, or an error the server marks retryable) are retried. Any 2xx answer
// is success, except a JSON object whose "success" or "ok" is false: that
// is an *APIError matching ErrActionFailed, carrying the server's message.
//
// Servers disagree on three spellings: scroll's "clicks" or "amount",
// launch's "app" or "app_name", and a window id as a string or an integer.
// A 400 or 422 answer proves nothing ran, so the action is then sent once
// more in the other spelling, and the service remembers which spelling its
// server took and sends that one first from then on. A DesktopService is
// safe for concurrent use.
type DesktopService struct {
	client *Client
	// The spellings this client's server took last, for each disputed
	// field: false the first one listed above, true the other.
	scrollAmount, launchAppName, integerWindowID atomic.Bool
}

// Screenshot streams a PNG image of the whole screen into w
// (GET /computers/{id}/desktop/screenshot) and returns its size, read from
// the PNG's header. It changes nothing on the server and is retried like a
// read until the first byte reached w. What is checked before that, and
// what a failure returns, is as for ScreenshotRegion.
func (s *DesktopService) Screenshot(ctx context.Context, computerID string, w io.Writer, opts ...Option) (*Screenshot, error) {
	return s.screenshot(ctx, computerID, "screenshot", call{method: http.MethodGet}, w, opts)
}

// ScreenshotRegion streams a PNG image of the region r of the screen into
// w (POST /computers/{id}/desktop/screenshot/region) and returns its size,
// read from the PNG's header: the size the server sent, which a server that
// scales its display may make differ from r's.
//
// The answer must be a PNG: its signature and IHDR header (a size of at
// most 65536 pixels a side and 2^28 in all) are checked before its first
// byte reaches w, so an empty answer, JSON or an HTML error page is an
// error and w is left untouched. The image is then copied as it arrives,
// never held whole in memory, and must end with the PNG's IEND chunk (and
// its Content-Length, when declared). The answer is bounded by
// WithMaxResponseSize, by ctx, and by 30 seconds without a byte;
// WithRequestTimeout bounds only the wait for its headers.
//
// Taking a screenshot changes nothing, so it is retried like a read, but
// only until the first byte reached w. A failure after that is returned
// with the Screenshot as far as it got (Bytes written to w, which then
// holds a prefix of the image); a failure before it returns nil. An empty
// region or one with a negative origin is ErrInvalidParams, before any
// request.
func (s *DesktopService) ScreenshotRegion(ctx context.Context, computerID string, r image.Rectangle, w io.Writer, opts ...Option) (*Screenshot, error) {
	if r.Empty() || r.Min.X < 0 || r.Min.Y < 0 {
		return nil, fmt.Errorf("%w: screenshot region %v is empty or starts off the screen", ErrInvalidParams, r)
	}
	if !screenshotSizeFits(r.Dx(), r.Dy()) {
		return nil, fmt.Errorf("%w: screenshot region %v is larger than any screen", ErrInvalidParams, r)
	}
	op := call{method: http.MethodPost, idempotent: true, body: regionBody{X: r.Min.X, Y: r.Min.Y, Width: r.Dx(), Height: r.Dy()}}
	return s.screenshot(ctx, computerID, "screenshot/region", op, w, opts)
}

type regionBody struct {
	X      int `json:"x"`
	Y      int `json:"y"`
	Width  int `json:"width"`
	Height int `json:"height"`
}

// pngAccept is the Accept header of screenshots.
var pngAccept = []string{"image/png"}

func (s *DesktopService) screenshot(ctx context.Context, computerID, route string, op call, w io.Writer, opts []Option) (*Screenshot, error) {
	p, err := desktopPath(computerID, route)
	if err != nil {
		return nil, err
	}
	if w == nil {
		return nil, fmt.Errorf("%w: screenshot writer is nil", ErrInvalidParams)
	}
	conf, err := s.client.settingsFor(opts)
	if err != nil {
		return nil, err
	}
	var shot *Screenshot
	op.path, op.accept = p, pngAccept
	op.consume = func(resp *http.Response) error {
		var err error
		shot, err = streamScreenshot(ctx, w, resp, conf.maxResponseBytes)
		return err
	}
	if _, err := s.client.send(ctx, op, opts); err != nil {
		if shot != nil && shot.Bytes > 0 {
			return shot, err
		}
		return nil, err
	}
	return shot, nil
}

// Click clicks at the point at (POST /computers/{id}/desktop/click, or
// …/double-click when params.Double), moving the pointer there. A double
// click is of the left button only. It is never sent again once it may
// have reached the server (see DesktopService).
func (s *DesktopService) Click(ctx context.Context, computerID string, at image.Point, params ClickParams, opts ...Option) error {
	if err := checkPoint("click", at); err != nil {
		return err
	}
	switch params.Button {
	case "", ButtonLeft:
		if params.Double {
			return s.act(ctx, computerID, "double-click", pointBody{X: at.X, Y: at.Y}, opts)
		}
		return s.act(ctx, computerID, "click", pointBody{X: at.X, Y: at.Y}, opts)
	case ButtonRight, ButtonMiddle:
		if params.Double {
			return fmt.Errorf("%w: a double click is of the left button only, not %q", ErrInvalidParams, params.Button)
		}
		return s.act(ctx, computerID, "click", pointBody{X: at.X, Y: at.Y, Button: params.Button}, opts)
	}
	return fmt.Errorf("%w: unknown mouse button %q: use ButtonLeft, ButtonRight or ButtonMiddle", ErrInvalidParams, params.Button)
}

// pointBody is the body of a click, a double click and a move.
type pointBody struct {
	X      int         `json:"x"`
	Y      int         `json:"y"`
	Button MouseButton `json:"button,omitzero"` // a click's; left when absent
}

// Move moves the pointer to the point to without clicking
// (POST /computers/{id}/desktop/move). It is never sent again once it may
// have reached the server.
func (s *DesktopService) Move(ctx context.Context, computerID string, to image.Point, opts ...Option) error {
	if err := checkPoint("move", to); err != nil {
		return err
	}
	return s.act(ctx, computerID, "move", pointBody{X: to.X, Y: to.Y}, opts)
}

// Drag presses the left button at from, moves the pointer to to and
// releases it there (POST /computers/{id}/desktop/drag). It is never sent
// again once it may have reached the server.
func (s *DesktopService) Drag(ctx context.Context, computerID string, from, to image.Point, opts ...Option) error {
	if err := checkPoint("drag from", from); err != nil {
		return err
	}
	if err := checkPoint("drag to", to); err != nil {
		return err
	}
	return s.act(ctx, computerID, "drag", dragBody{FromX: from.X, FromY: from.Y, ToX: to.X, ToY: to.Y}, opts)
}

type dragBody struct {
	FromX int `json:"from_x"`
	FromY int `json:"from_y"`
	ToX   int `json:"to_x"`
	ToY   int `json:"to_y"`
}

// Scroll turns the mouse wheel (POST /computers/{id}/desktop/scroll),
// params.Clicks notches (3 when 0) in params.Direction, at params.At when
// set. The notch count is sent as "clicks", or as "amount" to a server
// that refuses "clicks" (see DesktopService). It is never sent again once
// it may have reached the server.
func (s *DesktopService) Scroll(ctx context.Context, computerID string, params ScrollParams, opts ...Option) error {
	switch params.Direction {
	case ScrollUp, ScrollDown, ScrollLeft, ScrollRight:
	default:
		return fmt.Errorf("%w: unknown scroll direction %q: use ScrollUp, ScrollDown, ScrollLeft or ScrollRight", ErrInvalidParams, params.Direction)
	}
	if params.Clicks < 0 {
		return fmt.Errorf("%w: scroll clicks must not be negative", ErrInvalidParams)
	}
	clicks := params.Clicks
	if clicks == 0 {
		clicks = defaultScrollClicks
	}
	body := scrollBody{Direction: params.Direction}
	if params.At != nil {
		if err := checkPoint("scroll", *params.At); err != nil {
			return err
		}
		x, y := params.At.X, params.At.Y
		body.X, body.Y = &x, &y
	}
	asClicks, asAmount := body, body
	asClicks.Clicks, asAmount.Amount = clicks, clicks
	return s.actDisputed(ctx, computerID, "scroll", &s.scrollAmount,
		spelling{`"clicks"`, asClicks}, spelling{`"amount"`, asAmount}, opts)
}

type scrollBody struct {
	Direction ScrollDirection `json:"direction"`
	Clicks    int             `json:"clicks,omitzero"`
	Amount    int             `json:"amount,omitzero"`
	X         *int            `json:"x,omitzero"`
	Y         *int            `json:"y,omitzero"`
}

// Type types text as keystrokes (POST /computers/{id}/desktop/type), with
// params.Delay between two keys. It is never sent again once it may have
// reached the server: replayed typing would type twice.
func (s *DesktopService) Type(ctx context.Context, computerID, text string, params TypeParams, opts ...Option) error {
	if text == "" {
		return fmt.Errorf("%w: the text to type is empty", ErrInvalidParams)
	}
	if err := checkUTF8("the text to type", text); err != nil {
		return err
	}
	if params.Delay < 0 {
		return fmt.Errorf("%w: typing delay must not be negative", ErrInvalidParams)
	}
	p, err := desktopPath(computerID, "type")
	if err != nil {
		return err
	}
	op := call{method: http.MethodPost, path: p, body: typeBody{Text: text}}
	if params.Delay > 0 {
		conf, err := s.client.settingsFor(opts)
		if err != nil {
			return err
		}
		op.body = typeBody{Text: text, Delay: (params.Delay + time.Millisecond - 1).Milliseconds()}
		// The server types before it answers. Saturating: a long delay must
		// not wrap around into a deadline in the past.
		keys, typing := time.Duration(utf8.RuneCountInString(text)), time.Duration(math.MaxInt64)
		if params.Delay <= math.MaxInt64/keys {
			typing = params.Delay * keys
		}
		op.attemptTimeout = conf.requestTimeout + min(typing, math.MaxInt64-conf.requestTimeout)
	}
	return s.send(ctx, op, opts)
}

type typeBody struct {
	Text  string `json:"text"`
	Delay int64  `json:"delay,omitzero"` // milliseconds between keys
}

// Key presses a key or a combination, as the server names them: "Return",
// "Escape", "ctrl+c" (POST /computers/{id}/desktop/key). It is never sent
// again once it may have reached the server.
func (s *DesktopService) Key(ctx context.Context, computerID, key string, opts ...Option) error {
	if err := checkName("the key", key); err != nil {
		return err
	}
	return s.act(ctx, computerID, "key", keyBody{Key: key}, opts)
}

type keyBody struct {
	Key string `json:"key"`
}

// Cursor returns where the pointer is (GET /computers/{id}/desktop/cursor).
// It changes nothing and is retried like any read.
func (s *DesktopService) Cursor(ctx context.Context, computerID string, opts ...Option) (image.Point, error) {
	p, err := desktopPath(computerID, "cursor")
	if err != nil {
		return image.Point{}, err
	}
	c, err := sendForObject[cursorAnswer](ctx, s.client, call{method: http.MethodGet, path: p}, opts)
	if err != nil {
		return image.Point{}, err
	}
	return c.at, nil
}

// Windows lists the windows on the desktop
// (GET /computers/{id}/desktop/windows). It changes nothing and is retried
// like any read.
func (s *DesktopService) Windows(ctx context.Context, computerID string, opts ...Option) ([]Window, error) {
	p, err := desktopPath(computerID, "windows")
	if err != nil {
		return nil, err
	}
	windows, _, err := sendForList[Window](ctx, s.client, call{method: http.MethodGet, path: p}, opts, "windows")
	return windows, err
}

// FocusWindow gives the keyboard focus to the window windowID, an id from
// Windows (POST /computers/{id}/desktop/window/focus). The id is sent as a
// string, or as an integer to a server that refuses the string (see
// DesktopService). It is never sent again once it may have reached the
// server.
func (s *DesktopService) FocusWindow(ctx context.Context, computerID, windowID string, opts ...Option) error {
	if err := checkName("the window id", windowID); err != nil {
		return err
	}
	asString := spelling{"a string", focusBody{WindowID: windowID}}
	asInteger := spelling{name: "an integer"}
	if n, err := strconv.ParseInt(windowID, 10, 64); err == nil && strconv.FormatInt(n, 10) == windowID {
		asInteger.body = focusBody{WindowID: n}
	}
	return s.actDisputed(ctx, computerID, "window/focus", &s.integerWindowID, asString, asInteger, opts)
}

type focusBody struct {
	WindowID any `json:"window_id"` // a string or an int64
}

// Launch starts the application app, e.g. "firefox"
// (POST /computers/{id}/desktop/launch). The name is sent as "app", or as
// "app_name" to a server that refuses "app" (see DesktopService). It is
// never sent again once it may have reached the server.
func (s *DesktopService) Launch(ctx context.Context, computerID, app string, opts ...Option) error {
	if err := checkName("the app to launch", app); err != nil {
		return err
	}
	return s.actDisputed(ctx, computerID, "launch", &s.launchAppName,
		spelling{`"app"`, launchBody{App: app}}, spelling{`"app_name"`, launchBody{AppName: app}}, opts)
}

type launchBody struct {
	App     string `json:"app,omitzero"`
	AppName string `json:"app_name,omitzero"`
}

// desktopPath returns /computers/{id}/desktop/{route} with id escaped.
func desktopPath(computerID, route string) (string, error) {
	return computerPath(computerID, "/desktop/"+route)
}

// act sends one action: a POST that is neither keyed nor idempotent, so the
// pipeline never sends it again once it may have reached the server.
func (s *DesktopService) act(ctx context.Context, computerID, route string, body any, opts []Option) error {
	p, err := desktopPath(computerID, route)
	if err != nil {
		return err
	}
	return s.send(ctx, call{method: http.MethodPost, path: p, body: body}, opts)
}

// send sends an action and turns a 2xx answer that declares failure into
// its error.
func (s *DesktopService) send(ctx context.Context, op call, opts []Option) error {
	res, err := s.client.send(ctx, op, opts)
	if err != nil {
		return err
	}
	return s.client.actionFailure(&op, &res)
}

// spelling is one way of writing an action's body; a nil body is a
// spelling the action's value cannot be written in.
type spelling struct {
	name string
	body any
}

// actDisputed sends an action whose body servers spell in two ways: first
// the spelling this client's server took last (secondTaken says which), and
// when that is refused with 400 or 422, which proves nothing ran, the other
// once. The spelling that succeeds is remembered. When both are refused,
// the error is the second refusal, wrapping the first.
func (s *DesktopService) actDisputed(ctx context.Context, computerID, route string, secondTaken *atomic.Bool, first, second spelling, opts []Option) error {
	try, other := first, second
	if secondTaken.Load() && second.body != nil {
		try, other = second, first
	}
	err := s.act(ctx, computerID, route, try.body, opts)
	if other.body == nil || !refusedAsMisspelled(err) {
		return err
	}
	if err2 := s.act(ctx, computerID, route, other.body, opts); err2 != nil {
		if refusedAsMisspelled(err2) {
			return fmt.Errorf("%w (sent with %s instead: %w)", err2, try.name, err)
		}
		return err2
	}
	secondTaken.Store(other.name == second.name)
	return nil
}

// refusedAsMisspelled reports whether err is a 400 or 422 answer: the
// server refused the request as written, before doing anything.
func refusedAsMisspelled(err error) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && (apiErr.StatusCode == http.StatusBadRequest || apiErr.StatusCode == http.StatusUnprocessableEntity)
}

// actionFailure returns the error a 2xx answer to an action carries: a JSON
// object whose "success" or "ok" is false, as an *APIError matching
// ErrActionFailed with the server's message. Any other 2xx answer is
// success, whatever its body. The body was capped when it was read.
func (c *Client) actionFailure(op *call, res *response) error {
	if !isJSONObject(res.body) {
		return nil
	}
	var answer struct {
		Success json.RawMessage `json:"success"`
		OK      json.RawMessage `json:"ok"`
	}
	if json.Unmarshal(res.body, &answer) != nil || !isJSONFalse(answer.Success) && !isJSONFalse(answer.OK) {
		return nil
	}
	e := c.newAPIError(op, &c.settings, "", res)
	if e.Message == statusMessage(res.status) {
		e.Message = "the server reported that the action failed, without saying why"
	}
	return e
}

// checkPoint refuses a point off the screen's top or left edge.
func checkPoint(what string, p image.Point) error {
	if p.X < 0 || p.Y < 0 {
		return fmt.Errorf("%w: %s at %v: coordinates are screen pixels and never negative", ErrInvalidParams, what, p)
	}
	return nil
}

// checkName refuses a name (a key, an app, an id) that is blank or not
// valid UTF-8.
func checkName(what, s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidParams, what)
	}
	return checkUTF8(what, s)
}

// checkUTF8 refuses text that is not valid UTF-8: JSON would silently turn
// it into other text.
func checkUTF8(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidParams, what)
	}
	return nil
}
