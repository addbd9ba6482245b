package miosa

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/miosa-ai/miosa-go/internal/retry"
	"github.com/miosa-ai/miosa-go/internal/wire"
)

// Client talks to the MIOSA API. It is safe for concurrent use; create one
// and share it. Its services share one HTTP transport and one retry pipeline.
type Client struct {
	// Sandboxes creates, forks, updates, shares and awaits sandboxes.
	Sandboxes *SandboxesService
	// SandboxTemplates defines and builds reusable sandbox images.
	SandboxTemplates *SandboxTemplatesService
	// Computers manages full-desktop computers (and, by id, sandboxes).
	Computers *ComputersService
	// Exec runs shell commands and Python code on a computer or sandbox.
	Exec *ExecService

	apiKey secret
	// authorization is the Authorization header value, built once.
	authorization secret
	settings      settings
}

// service is what every service holds: the client whose pipeline it uses.
type service struct{ client *Client }

// Option configures a Client (passed to NewClient) or a single call (passed
// as a trailing argument to any service method, where it overrides the
// client's setting for that call only).
type Option func(*settings)

// settings is the resolved configuration of a client or of one call.
type settings struct {
	baseURL          string // validated, without a trailing slash
	httpClient       *http.Client
	maxRetries       int
	retryMin         time.Duration
	retryMax         time.Duration
	maxRetryAfter    time.Duration
	requestTimeout   time.Duration
	maxResponseBytes int64
	userAgent        string
	headers          http.Header
	logger           *slog.Logger
	insecureHTTP     bool
	idempotencyKey   string
}

const (
	defaultMaxRetries       = 2
	defaultRetryMin         = 500 * time.Millisecond
	defaultRetryMax         = 8 * time.Second
	defaultMaxRetryAfter    = 60 * time.Second
	defaultRequestTimeout   = 60 * time.Second
	defaultMaxResponseBytes = 32 << 20
	// maxErrorBody caps what is kept of a failed response's body.
	maxErrorBody = 64 << 10
	// maxDrain is how much more of a failed response is read and discarded so
	// its connection can be reused; beyond it the connection is closed.
	maxDrain = 256 << 10
)

// WithBaseURL sets the API root, including /api/v1. Plain http:// is accepted
// only for loopback hosts unless WithInsecureHTTP is also given.
// Default: MIOSA_BASE_URL, else DefaultBaseURL.
func WithBaseURL(baseURL string) Option {
	return func(s *settings) { s.baseURL = baseURL }
}

// WithHTTPClient makes the SDK send its requests through c. The SDK never
// modifies c; its Timeout, if any, also bounds each attempt. Default: a
// pooled keep-alive client that attempts HTTP/2 and has no Timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(s *settings) { s.httpClient = c }
}

// WithMaxRetries sets how many times a failed request is retried after the
// first attempt; 0 disables retries. Default 2.
func WithMaxRetries(n int) Option {
	return func(s *settings) { s.maxRetries = n }
}

// WithRetryDelay sets the bounds of the exponential backoff between retries:
// every wait lies between min and max. The wait before retry k (from 0) is
// drawn at random from [min·2^k, min·2^(k+1)], or from [max/2, max] (never
// below min) once that range passes max, so clients that failed together do
// not retry together. A min of 0 retries at once. Default 500ms and 8s.
func WithRetryDelay(min, max time.Duration) Option {
	return func(s *settings) { s.retryMin, s.retryMax = min, max }
}

// WithMaxRetryAfter caps how long the SDK will sleep on the server's
// Retry-After hint. A longer hint is not slept: the call returns at once with
// an *APIError whose RetryAfter carries it. Default 60s.
func WithMaxRetryAfter(d time.Duration) Option {
	return func(s *settings) { s.maxRetryAfter = d }
}

// WithRequestTimeout bounds each attempt of a unary call (streams are
// exempt), through the context rather than http.Client.Timeout. Default 60s.
func WithRequestTimeout(d time.Duration) Option {
	return func(s *settings) { s.requestTimeout = d }
}

// WithMaxResponseSize caps how many bytes of a successful response body are
// read; a larger body fails the call with a clear error instead of being
// read into memory. Default 32 MiB.
func WithMaxResponseSize(n int64) Option {
	return func(s *settings) { s.maxResponseBytes = n }
}

// WithUserAgent appends product to the User-Agent header, after
// "miosa-go/<Version>".
func WithUserAgent(product string) Option {
	return func(s *settings) { s.userAgent = product }
}

// WithHeader adds an extra header to every request (streams included). It
// cannot replace the headers the SDK itself sets (Authorization, User-Agent,
// Accept, Content-Type, Idempotency-Key).
func WithHeader(key, value string) Option {
	return func(s *settings) {
		s.headers = s.headers.Clone()
		if s.headers == nil {
			s.headers = http.Header{}
		}
		s.headers.Set(key, value)
	}
}

// WithLogger sends one debug line per HTTP attempt to logger: method, path,
// status, attempt, request id and duration. API keys, headers and bodies are
// never logged. Default: silent.
func WithLogger(logger *slog.Logger) Option {
	return func(s *settings) { s.logger = logger }
}

// WithInsecureHTTP allows a plain http:// base URL for hosts other than
// loopback. The API key then crosses the network unencrypted.
func WithInsecureHTTP() Option {
	return func(s *settings) { s.insecureHTTP = true }
}

// WithIdempotencyKey sets the Idempotency-Key of one create-type call
// (create, fork, template create, build create), so that a call repeated by
// your own code is deduplicated by the server too. It is a per-call option:
// NewClient refuses it. Default: a random UUID per logical call, reused by
// every retry of that call.
func WithIdempotencyKey(key string) Option {
	return func(s *settings) { s.idempotencyKey = key }
}

// NewClient returns a client for the MIOSA API authenticated by apiKey, or
// by MIOSA_API_KEY when apiKey is empty. It sends no request. It fails with
// ErrMissingAPIKey when there is no key, ErrInvalidAPIKey when the key is not
// a MIOSA key ("msk_..."), and ErrInvalidParams for an unusable option.
func NewClient(apiKey string, opts ...Option) (*Client, error) {
	if apiKey == "" {
		apiKey = os.Getenv("MIOSA_API_KEY")
	}
	if apiKey == "" {
		return nil, ErrMissingAPIKey
	}
	if !strings.HasPrefix(apiKey, "msk_") {
		return nil, fmt.Errorf(`%w: a MIOSA API key starts with "msk_"`, ErrInvalidAPIKey)
	}
	if strings.ContainsFunc(apiKey, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return nil, fmt.Errorf("%w: the key contains whitespace or control characters", ErrInvalidAPIKey)
	}
	s := settings{
		maxRetries:       defaultMaxRetries,
		retryMin:         defaultRetryMin,
		retryMax:         defaultRetryMax,
		maxRetryAfter:    defaultMaxRetryAfter,
		requestTimeout:   defaultRequestTimeout,
		maxResponseBytes: defaultMaxResponseBytes,
	}
	for _, opt := range opts {
		opt(&s)
	}
	if s.idempotencyKey != "" {
		return nil, fmt.Errorf("%w: WithIdempotencyKey is a per-call option; pass it to the create call", ErrInvalidParams)
	}
	s.baseURL = cmp.Or(s.baseURL, os.Getenv("MIOSA_BASE_URL"), DefaultBaseURL)
	if err := s.validate(); err != nil {
		return nil, err
	}
	if s.httpClient == nil {
		s.httpClient = newHTTPClient()
	}
	c := &Client{apiKey: secret(apiKey), authorization: secret("Bearer " + apiKey), settings: s}
	c.Sandboxes = &SandboxesService{client: c}
	c.SandboxTemplates = &SandboxTemplatesService{client: c}
	c.Computers = &ComputersService{client: c}
	c.Exec = &ExecService{client: c}
	return c, nil
}

// newHTTPClient returns the default client: keep-alive connections pooled
// per host, HTTP/2 attempted (it multiplexes readiness streams), and no
// MaxConnsPerHost, which would queue ordinary calls behind open streams.
func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}
}

// validate checks what options can get wrong, for NewClient and per call.
func (s *settings) validate() error {
	base, err := checkBaseURL(s.baseURL, s.insecureHTTP)
	if err != nil {
		return err
	}
	s.baseURL = base
	switch {
	case s.maxRetries < 0:
		return fmt.Errorf("%w: WithMaxRetries must not be negative", ErrInvalidParams)
	case s.retryMin < 0 || s.retryMax < s.retryMin:
		return fmt.Errorf("%w: WithRetryDelay wants 0 <= min <= max", ErrInvalidParams)
	case s.maxRetryAfter < 0:
		return fmt.Errorf("%w: WithMaxRetryAfter must not be negative", ErrInvalidParams)
	case s.requestTimeout <= 0:
		return fmt.Errorf("%w: WithRequestTimeout must be positive", ErrInvalidParams)
	case s.maxResponseBytes <= 0:
		return fmt.Errorf("%w: WithMaxResponseSize must be positive", ErrInvalidParams)
	case strings.ContainsFunc(s.userAgent, isControl):
		return fmt.Errorf("%w: WithUserAgent must be one line of printable text", ErrInvalidParams)
	case strings.ContainsFunc(s.idempotencyKey, isControl):
		return fmt.Errorf("%w: WithIdempotencyKey must be printable text", ErrInvalidParams)
	}
	// A malformed header would only fail inside the transport, where it
	// looks like a network error and could be retried or reported as
	// "outcome unknown".
	for name, values := range s.headers {
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) }) {
			return fmt.Errorf("%w: WithHeader: %q is not a valid header name", ErrInvalidParams, name)
		}
		for _, v := range values {
			if strings.ContainsFunc(v, func(r rune) bool { return r != '\t' && isControl(r) }) {
				return fmt.Errorf("%w: WithHeader %s: the value must be one line without control characters", ErrInvalidParams, name)
			}
		}
	}
	return nil
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

// checkBaseURL returns raw without its trailing slash if it is an absolute
// http(s) URL the SDK may send a key to.
func checkBaseURL(raw string, insecureHTTP bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: base URL: %v", ErrInvalidParams, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return "", fmt.Errorf("%w: base URL %q must be an absolute http(s) URL", ErrInvalidParams, u.Redacted())
	case u.User != nil:
		return "", fmt.Errorf("%w: base URL must not carry credentials; the API key authenticates", ErrInvalidParams)
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("%w: base URL %q must not have a query or fragment", ErrInvalidParams, u.Redacted())
	case u.Scheme == "http" && !insecureHTTP && !isLoopback(u.Hostname()):
		return "", fmt.Errorf("%w: base URL %q: plain http is allowed only for loopback hosts; use https or WithInsecureHTTP()", ErrInvalidParams, u.Redacted())
	}
	return strings.TrimRight(raw, "/"), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// settingsFor returns the client's settings overridden by per-call opts.
func (c *Client) settingsFor(opts []Option) (settings, error) {
	s := c.settings
	if len(opts) == 0 {
		return s, nil
	}
	for _, opt := range opts {
		opt(&s)
	}
	if s.httpClient == nil {
		s.httpClient = c.settings.httpClient
	}
	return s, s.validate()
}

// sdkHeaders are the headers only the SDK sets: WithHeader extras under
// these names are dropped, so a body-less request cannot gain a
// Content-Type and a non-create call cannot gain an Idempotency-Key.
var sdkHeaders = map[string]bool{
	"Authorization": true, "User-Agent": true, "Accept": true,
	"Content-Type": true, "Content-Length": true, "Idempotency-Key": true,
}

// setHeaders writes the headers every request carries: the caller's extras,
// except those the SDK owns, then the SDK's own.
func (c *Client) setHeaders(h http.Header, s *settings, accept string) {
	for k, v := range s.headers {
		if !sdkHeaders[k] {
			h[k] = slices.Clone(v)
		}
	}
	h.Set("Authorization", string(c.authorization))
	ua := userAgent
	if product := strings.TrimSpace(s.userAgent); product != "" {
		ua += " " + product
	}
	h.Set("User-Agent", ua)
	h.Set("Accept", accept)
}

const userAgent = "miosa-go/" + Version

// call describes one logical API call: the pipeline turns it into one or
// more HTTP attempts.
type call struct {
	method string
	path   string // relative to the base URL, already escaped
	query  url.Values
	body   any // JSON-encoded when non-nil; nil sends no body and no Content-Type
	// keyed marks a create-type call: it carries an Idempotency-Key, the same
	// on every attempt, which makes it safe to retry.
	keyed bool
	// readOnly marks a POST that changes nothing on the server (validation):
	// it may be repeated like a GET.
	readOnly bool
	// attemptTimeout replaces the configured request timeout when non-zero.
	attemptTimeout time.Duration
}

// replayable reports whether the call may be sent again after it may have
// reached the server: safe methods, read-only calls and keyed creates.
func (cl *call) replayable() bool {
	switch cl.method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodPut:
		return true
	}
	return cl.keyed || cl.readOnly
}

// response is a successful answer, its body read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errBodyTooLarge is a response over the size cap: never retried.
var errBodyTooLarge = errors.New("response body exceeds the size limit")

// send runs cl through the pipeline: headers, idempotency key, attempts with
// per-attempt deadlines, backoff and Retry-After, until a 2xx answer or an
// error that is final.
func (c *Client) send(ctx context.Context, cl call, opts []Option) (*response, error) {
	s, err := c.settingsFor(opts)
	if err != nil {
		return nil, err
	}
	var payload []byte
	if cl.body != nil {
		if payload, err = json.Marshal(cl.body); err != nil {
			return nil, fmt.Errorf("%w: %s %s: encoding the request body: %v", ErrInvalidParams, cl.method, cl.path, err)
		}
	}
	var key string
	if cl.keyed {
		key = cmp.Or(s.idempotencyKey, uuid.NewString())
	}
	for attempt := 0; ; attempt++ {
		res, err := c.attempt(ctx, &s, &cl, payload, key, attempt+1)
		if err == nil && res.status >= 200 && res.status <= 299 {
			return res, nil
		}
		var (
			lastErr   error
			retryable bool
			hint      time.Duration
			hinted    bool
		)
		if err != nil {
			if errors.Is(err, ErrInvalidParams) {
				return nil, err
			}
			if errors.Is(err, errBodyTooLarge) {
				// The server answered; only the answer was refused.
				return nil, transportError(&cl, err, false)
			}
			reached := !neverReachedServer(err)
			lastErr = transportError(&cl, err, reached && !cl.replayable())
			if ctx.Err() != nil {
				return nil, lastErr
			}
			retryable = cl.replayable() || !reached
		} else {
			apiErr := newAPIError(&cl, key, res, time.Now())
			lastErr = apiErr
			retryable = retry.RetryableStatus(res.status) &&
				(cl.replayable() || res.status == http.StatusTooManyRequests)
			hint, hinted = apiErr.RetryAfter, apiErr.RetryAfter > 0 || hasRetryAfterHeader(res.header)
		}
		if !retryable || attempt >= s.maxRetries {
			return nil, lastErr
		}
		wait := retry.Backoff(attempt, s.retryMin, s.retryMax)
		if hinted {
			if hint > s.maxRetryAfter {
				return nil, lastErr
			}
			wait = hint
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			return nil, lastErr
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("miosa: %s %s: %w while waiting to retry; last attempt: %w", cl.method, cl.path, err, lastErr)
		}
	}
}

// attempt sends one HTTP request and reads its answer. A non-2xx answer is
// returned as a response (its body capped, the rest drained so the
// connection is reused); only transport failures are errors.
func (c *Client) attempt(ctx context.Context, s *settings, cl *call, payload []byte, key string, n int) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(cl.attemptTimeout, s.requestTimeout))
	defer cancel()
	target := s.baseURL + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", ErrInvalidParams, cl.method, cl.path, err)
	}
	c.setHeaders(req.Header, s, "application/json")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}

	start := time.Now()
	resp, err := s.httpClient.Do(req)
	if err != nil {
		s.logAttempt(ctx, cl, n, 0, "", start, err)
		return nil, err
	}
	defer resp.Body.Close()
	res := &response{status: resp.StatusCode, header: resp.Header}
	if res.status >= 200 && res.status <= 299 {
		res.body, err = readCapped(resp.Body, resp.ContentLength, s.maxResponseBytes)
	} else {
		res.body, err = readCapped(resp.Body, -1, maxErrorBody)
		if errors.Is(err, errBodyTooLarge) {
			err = nil // an error body is only kept capped
		}
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	}
	s.logAttempt(ctx, cl, n, res.status, resp.Header.Get("X-Request-ID"), start, err)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// readCapped reads r to the end, failing with errBodyTooLarge as soon as it
// is known to exceed limit: at once when the declared length says so,
// otherwise after reading limit+1 bytes, so memory stays bounded by limit.
// A declared length is allocated once, with one spare byte to see the end of
// the body without growing. For a too-large body the first limit bytes are
// still returned.
func readCapped(r io.Reader, declared, limit int64) ([]byte, error) {
	if declared > limit {
		return nil, fmt.Errorf("%w: %d bytes declared, limit %d", errBodyTooLarge, declared, limit)
	}
	size := int64(512)
	if declared >= 0 {
		size = declared + 1
	}
	buf := make([]byte, 0, min(size, limit+1))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf[:limit], fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, limit)
			}
			grown := min(2*int64(cap(buf)), limit+1)
			buf = append(make([]byte, 0, grown), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > limit {
		return buf[:limit], fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, limit)
	}
	return buf, nil
}

func (s *settings) logAttempt(ctx context.Context, cl *call, n, status int, requestID string, start time.Time, err error) {
	if s.logger == nil || !s.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", cl.method),
		slog.String("path", cl.path),
		slog.Int("status", status),
		slog.Int("attempt", n),
		slog.String("request_id", requestID),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	s.logger.LogAttrs(ctx, slog.LevelDebug, "miosa: request", attrs...)
}

// newAPIError builds the error for a non-2xx answer.
func newAPIError(cl *call, key string, res *response, now time.Time) *APIError {
	code, message, retryAfter := parseErrorBody(res.status, res.body)
	if d, ok := retry.ParseRetryAfter(res.header.Get("Retry-After"), now); ok {
		retryAfter = d
	}
	return &APIError{
		StatusCode:     res.status,
		Code:           code,
		Message:        message,
		RequestID:      res.header.Get("X-Request-ID"),
		IdempotencyKey: key,
		RetryAfter:     retryAfter,
		Method:         cl.method,
		Path:           cl.path,
		Body:           res.body,
	}
}

func hasRetryAfterHeader(h http.Header) bool {
	_, ok := retry.ParseRetryAfter(h.Get("Retry-After"), time.Now())
	return ok
}

// transportError wraps a failure to get an answer. When the request may have
// reached the server and must not be sent twice, it also matches
// ErrOutcomeUnknown.
func transportError(cl *call, err error, outcomeUnknown bool) error {
	if outcomeUnknown {
		return fmt.Errorf("miosa: %s %s: %w: %w", cl.method, cl.path, ErrOutcomeUnknown, err)
	}
	return fmt.Errorf("miosa: %s %s: %w", cl.method, cl.path, err)
}

// neverReachedServer reports whether err proves the request was never
// delivered: the connection could not be made (DNS, dial, proxy, TLS
// handshake). Anything else may have reached the server.
func neverReachedServer(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && (opErr.Op == "dial" || opErr.Op == "proxyconnect") {
		return true
	}
	var (
		dnsErr    *net.DNSError
		certErr   *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
	)
	return errors.As(err, &dnsErr) || errors.As(err, &certErr) ||
		errors.As(err, &recordErr) || errors.As(err, &alertErr)
}

// sleep waits for d or until ctx ends, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// decodeObject sends cl and decodes the single object in its answer, under
// whichever envelope the server used; wrappers name the resource's own key.
func decodeObject[T any](ctx context.Context, c *Client, cl call, opts []Option, wrappers ...string) (*T, error) {
	res, err := c.send(ctx, cl, opts)
	if err != nil {
		return nil, err
	}
	raw, err := wire.Object(res.body, wrappers...)
	if err == nil && raw == nil {
		err = errors.New("empty response body")
	}
	var v T
	if err == nil {
		// raw is valid JSON (wire.Object checked it), so a type that
		// decodes itself is handed the bytes directly, sparing
		// json.Unmarshal's second validation pass.
		if u, ok := any(&v).(json.Unmarshaler); ok {
			err = u.UnmarshalJSON(raw)
		} else {
			err = json.Unmarshal(raw, &v)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("miosa: %s %s: decoding the response: %w", cl.method, cl.path, err)
	}
	return &v, nil
}

// decodeList sends cl and decodes the list in its answer, with the
// pagination meta when the server sent one.
func decodeList[T any](ctx context.Context, c *Client, cl call, opts []Option, wrappers ...string) ([]T, *wire.Meta, error) {
	res, err := c.send(ctx, cl, opts)
	if err != nil {
		return nil, nil, err
	}
	raw, meta, err := wire.List(res.body, wrappers...)
	var items []T
	if err == nil && raw != nil {
		err = json.Unmarshal(raw, &items)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("miosa: %s %s: decoding the response: %w", cl.method, cl.path, err)
	}
	return items, meta, nil
}

// pathID path-escapes one id for use as a path segment, refusing ids that
// are empty or could change which endpoint the request reaches.
func pathID(what, id string) (string, error) {
	switch {
	case strings.TrimSpace(id) == "":
		return "", fmt.Errorf("%w: %s id is empty", ErrInvalidParams, what)
	case id == "." || id == "..":
		return "", fmt.Errorf("%w: %s id %q is not an id", ErrInvalidParams, what, id)
	case strings.ContainsFunc(id, isControl):
		return "", fmt.Errorf("%w: %s id contains control characters", ErrInvalidParams, what)
	}
	return url.PathEscape(id), nil
}

// secret holds the API key. Every way of printing it prints a placeholder.
type secret string

const redacted = "[redacted]"

func (secret) String() string                { return redacted }
func (secret) GoString() string              { return `"` + redacted + `"` }
func (secret) Format(f fmt.State, verb rune) { io.WriteString(f, redacted) }
func (secret) LogValue() slog.Value          { return slog.StringValue(redacted) }
func (secret) MarshalText() ([]byte, error)  { return []byte(redacted), nil }

// Format prints the client with its base URL and never its API key, under
// every verb (%v, %+v, %#v, %s).
func (c Client) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "miosa.Client{BaseURL: %q, APIKey: %s}", c.settings.baseURL, redacted)
}

// LogValue makes slog print the client without its API key.
func (c Client) LogValue() slog.Value {
	return slog.GroupValue(slog.String("base_url", c.settings.baseURL), slog.String("api_key", redacted))
}

// BaseURL returns the API root this client sends requests to.
func (c *Client) BaseURL() string { return c.settings.baseURL }
