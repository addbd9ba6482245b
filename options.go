package miosa

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Option configures a Client (passed to NewClient) or a single call (passed
// as a trailing argument to any service method, where it overrides the
// client's setting for that call only).
type Option func(*settings)

// settings is the resolved configuration of a client or of one call.
type settings struct {
	baseURL      string       // validated, without a trailing slash
	callerClient *http.Client // as given to WithHTTPClient; never modified
	// httpClient is what requests go through: a copy of callerClient (or of
	// the default client) that follows redirects only within the base URL's
	// origin, derived by resolve.
	httpClient       *http.Client
	maxRetries       int
	retryMin         time.Duration
	retryMax         time.Duration
	maxRetryAfter    time.Duration
	requestTimeout   time.Duration
	pollInterval     time.Duration // 0: each wait's own default
	maxResponseBytes int64
	userAgent        string
	userAgentHeader  []string // "miosa-go/<Version>" and userAgent, derived by resolve
	headers          http.Header
	logger           *slog.Logger
	insecureHTTP     bool
	idempotencyKey   string
	rateLimit        *rateLimitSetting // WithRateLimit; nil without
}

// rateLimitSetting is WithRateLimit's ceiling, as given.
type rateLimitSetting struct {
	perSecond float64
	burst     int
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
	// maxDrain and drainTimeout bound how much more of a failed response is
	// read and discarded so its connection can be reused; beyond either the
	// connection is closed instead.
	maxDrain     = 256 << 10
	drainTimeout = 500 * time.Millisecond
	// preallocLimit is how much of a declared Content-Length is allocated
	// before the bytes arrive.
	preallocLimit = 64 << 10
)

// WithBaseURL sets the API root, including /api/v1. Plain http:// is accepted
// only for loopback hosts unless WithInsecureHTTP is also given.
// Default: MIOSA_BASE_URL, else DefaultBaseURL.
func WithBaseURL(baseURL string) Option {
	return func(conf *settings) { conf.baseURL = baseURL }
}

// WithHTTPClient makes the SDK send its requests through c's transport. The
// SDK never modifies c: it sends through a copy whose redirect policy also
// refuses any redirect that leaves the base URL's origin (scheme, host and
// port), so neither the API key nor a WithHeader header can follow one; c's
// own CheckRedirect still runs for the redirects that stay. c's Timeout, if
// any, also bounds each attempt of a unary call (streams and file transfers
// are exempt). Default: NewHTTPClient(nil), a pooled keep-alive client
// that speaks HTTP/2 to https servers that offer it and has no Timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(conf *settings) { conf.callerClient = c }
}

// WithMaxRetries sets how many times a failed request is retried after the
// first attempt; 0 disables retries. Default 2.
func WithMaxRetries(n int) Option {
	return func(conf *settings) { conf.maxRetries = n }
}

// WithRetryDelay sets the bounds of the exponential backoff between retries:
// every wait lies between min and max. The wait before retry k (from 0) is
// drawn at random from [min·2^k, min·2^(k+1)], or from [max/2, max] (never
// below min) once that range passes max, so clients that failed together do
// not retry together. A min of 0 retries at once. Default 500ms and 8s.
func WithRetryDelay(min, max time.Duration) Option {
	return func(conf *settings) { conf.retryMin, conf.retryMax = min, max }
}

// WithMaxRetryAfter caps how long the SDK will sleep on the server's
// Retry-After hint. A longer hint is not slept: the call returns at once with
// an *APIError whose RetryAfter carries it. Default 60s.
func WithMaxRetryAfter(d time.Duration) Option {
	return func(conf *settings) { conf.maxRetryAfter = d }
}

// WithRequestTimeout bounds each attempt of a unary call (streams are
// exempt), through the context rather than http.Client.Timeout. Default 60s.
func WithRequestTimeout(d time.Duration) Option {
	return func(conf *settings) { conf.requestTimeout = d }
}

// WithPollInterval sets the time between polls of every wait
// (Computers.WaitForStatus, SandboxTemplates.WaitForBuild and the polling of
// Sandboxes.WaitUntilReady) whose WaitOptions.PollInterval is zero. It is
// for servers that answer faster than the real one, such as a test fake:
// miosatest's clients poll every few milliseconds through it. Default: each
// wait's own (2 s for status and builds, 10 ms for readiness).
func WithPollInterval(d time.Duration) Option {
	return func(conf *settings) { conf.pollInterval = d }
}

// WithMaxResponseSize caps how many bytes of a successful response body are
// read; a larger body fails the call with a clear error instead of being
// read into memory. Default 32 MiB.
func WithMaxResponseSize(n int64) Option {
	return func(conf *settings) { conf.maxResponseBytes = n }
}

// WithUserAgent appends product to the User-Agent header, after
// "miosa-go/<Version>".
func WithUserAgent(product string) Option {
	return func(conf *settings) { conf.userAgent = product }
}

// WithHeader adds an extra header to every request (streams included). It
// cannot replace the headers the SDK itself sets (Authorization, User-Agent,
// Accept, Content-Type, Idempotency-Key).
func WithHeader(key, value string) Option {
	return func(conf *settings) {
		conf.headers = conf.headers.Clone()
		if conf.headers == nil {
			conf.headers = http.Header{}
		}
		conf.headers.Set(key, value)
	}
}

// WithLogger sends one debug line per HTTP attempt to logger: method, path,
// status, attempt, request id and duration. API keys, headers and bodies are
// never logged. Default: silent.
func WithLogger(logger *slog.Logger) Option {
	return func(conf *settings) { conf.logger = logger }
}

// WithInsecureHTTP allows a plain http:// base URL for hosts other than
// loopback. The API key then crosses the network unencrypted.
func WithInsecureHTTP() Option {
	return func(conf *settings) { conf.insecureHTTP = true }
}

// WithIdempotencyKey sets the Idempotency-Key of one create-type call
// (create, fork, template create, build create), so that a call repeated by
// your own code is deduplicated by the server too. It is a per-call option:
// NewClient refuses it. Default: a random UUID per logical call, reused by
// every retry of that call.
func WithIdempotencyKey(key string) Option {
	return func(conf *settings) { conf.idempotencyKey = key }
}

// WithRateLimit sets a ceiling on the requests the Client starts: at most
// perSecond a second on average, and at most burst at once, shared by
// every goroutine using the Client (a token bucket, from
// golang.org/x/time/rate). Retries and the polls of waits count like any
// request. It comes on top of the adaptive pacing every Client does after
// a 429 (see the README's "Fleets"): a request goes when both let it. A
// request whose turn would come after its context's deadline is not sent
// and fails at once with an error matching context.DeadlineExceeded.
// perSecond must be positive and finite and burst at least 1. It is a
// client option: a call refuses it. Default: no ceiling.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(conf *settings) { conf.rateLimit = &rateLimitSetting{perSecond: perSecond, burst: burst} }
}

// resolve checks what options can get wrong, for NewClient and per call,
// normalises the base URL and derives the redirect-guarded HTTP client.
func (conf *settings) resolve() error {
	base, err := checkBaseURL(conf.baseURL, conf.insecureHTTP)
	if err != nil {
		return err
	}
	conf.baseURL = base
	if conf.callerClient == nil {
		conf.callerClient = NewHTTPClient(nil)
	}
	conf.httpClient = sameOriginOnly(conf.callerClient, conf.baseURL)
	conf.userAgentHeader = []string{userAgent}
	if product := strings.TrimSpace(conf.userAgent); product != "" {
		conf.userAgentHeader = []string{userAgent + " " + product}
	}
	switch {
	case conf.maxRetries < 0:
		return fmt.Errorf("%w: WithMaxRetries must not be negative", ErrInvalidParams)
	case conf.retryMin < 0 || conf.retryMax < conf.retryMin:
		return fmt.Errorf("%w: WithRetryDelay wants 0 <= min <= max", ErrInvalidParams)
	case conf.maxRetryAfter < 0:
		return fmt.Errorf("%w: WithMaxRetryAfter must not be negative", ErrInvalidParams)
	case conf.pollInterval < 0:
		return fmt.Errorf("%w: WithPollInterval must not be negative", ErrInvalidParams)
	case conf.requestTimeout <= 0:
		return fmt.Errorf("%w: WithRequestTimeout must be positive", ErrInvalidParams)
	case conf.maxResponseBytes <= 0:
		return fmt.Errorf("%w: WithMaxResponseSize must be positive", ErrInvalidParams)
	case strings.ContainsFunc(conf.userAgent, isControl):
		return fmt.Errorf("%w: WithUserAgent must be one line of printable text", ErrInvalidParams)
	case strings.ContainsFunc(conf.idempotencyKey, isControl):
		return fmt.Errorf("%w: WithIdempotencyKey must be printable text", ErrInvalidParams)
	case conf.rateLimit != nil && !(conf.rateLimit.perSecond > 0 && conf.rateLimit.perSecond <= math.MaxFloat64):
		return fmt.Errorf("%w: WithRateLimit wants a positive, finite number of requests a second, not %v", ErrInvalidParams, conf.rateLimit.perSecond)
	case conf.rateLimit != nil && conf.rateLimit.burst < 1:
		return fmt.Errorf("%w: WithRateLimit wants a burst of at least 1, not %d", ErrInvalidParams, conf.rateLimit.burst)
	}
	// A malformed header would only fail inside the transport, where it
	// looks like a network error and could be retried or reported as
	// "outcome unknown".
	for name, values := range conf.headers {
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
// Without opts it is the client's own settings, shared and read-only.
func (c *Client) settingsFor(opts []Option) (*settings, error) {
	if len(opts) == 0 {
		return &c.settings, nil
	}
	s := c.settings
	for _, opt := range opts {
		opt(&s)
	}
	if s.rateLimit != c.settings.rateLimit {
		return nil, fmt.Errorf("%w: WithRateLimit is a client option, shared by every call; pass it to NewClient", ErrInvalidParams)
	}
	if err := s.resolve(); err != nil {
		return nil, err
	}
	return &s, nil
}
