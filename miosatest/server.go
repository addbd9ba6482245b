package miosatest

import (
	"fmt"
	"image"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miosa-ai/miosa-go"
)

// TestAPIKey is the API key Server.Client uses. The server accepts any key
// that starts with "msk_" unless WithAPIKey asks for one in particular.
const TestAPIKey = "msk_test_miosatest"

// DefaultBootDelay is how long a new, started or restarted machine stays in
// "creating" or "starting" before it is "running", unless WithBootDelay
// says otherwise.
const DefaultBootDelay = 20 * time.Millisecond

// DefaultBuildStepDelay is how long a template build stays "queued", and
// then "building", and a snapshot "creating", then "uploading", unless
// WithBuildStepDelay says otherwise.
const DefaultBuildStepDelay = 10 * time.Millisecond

// PollInterval is a poll interval that suits the fake's delays. Clients from
// Server.Client poll at it (miosa.WithPollInterval), so
// Computers.WaitForStatus and SandboxTemplates.WaitForBuild, which poll every
// 2 s by default, follow the fake within milliseconds; pass it as
// miosa.WaitOptions.PollInterval to a client of your own.
const PollInterval = 5 * time.Millisecond

// Server is a fake MIOSA API on a loopback address: an in-memory, stateful
// implementation of every endpoint of the wire contract. It is safe for
// concurrent use.
type Server struct {
	// URL is the base URL, ending in /api/v1, to pass to
	// miosa.WithBaseURL.
	URL string

	engine *engine
	http   *httptest.Server
	// httpClient reaches the server: httptest's own client, or one that
	// dials in-memory pipes.
	httpClient *http.Client
	conns      *connCounter
	tb         testing.TB
	apiKey     string
	once       sync.Once
	err        error
}

// Option configures a Server.
type Option func(*config)

type config struct {
	engine     engineConfig
	tls        bool
	inMemory   bool
	maxStreams int          // HTTP/2 streams per connection; 0: Go's default
	noHTTP2    bool         // WithTLS serves HTTP/1.1 only
	screenSize *image.Point // WithScreenSize's, checked by Start; nil: the default
}

// WithBootDelay sets how long machines take to boot: they stay "creating"
// (new) or "starting" (started, restarted) this long, then are "running"
// and ready. Zero makes them "running" in the answer that creates them.
// Default DefaultBootDelay.
func WithBootDelay(d time.Duration) Option {
	return func(c *config) { c.engine.BootDelay = d }
}

// WithBuildStepDelay sets how long a template build stays in each of
// "queued" and "building" before it ends, and a snapshot in each of
// "creating" and "uploading" before it is ready. Zero ends builds and
// snapshots in the answer that creates them. Default DefaultBuildStepDelay.
func WithBuildStepDelay(d time.Duration) Option {
	return func(c *config) { c.engine.BuildStepDelay = d }
}

// WithHeartbeatInterval sets the time between ": keepalive" comments on the
// readiness stream. Default 15 s.
func WithHeartbeatInterval(d time.Duration) Option {
	return func(c *config) { c.engine.HeartbeatInterval = d }
}

// WithStreamTimeout sets how long the readiness stream waits for a machine
// before it sends "event: timeout". Default 30 s, like the real API.
func WithStreamTimeout(d time.Duration) Option {
	return func(c *config) { c.engine.StreamTimeout = d }
}

// WithoutReadinessStream makes GET /sandboxes/{id}/readiness/stream answer
// 404, as servers that predate the stream do, so clients fall back to
// polling.
func WithoutReadinessStream() Option {
	return func(c *config) { c.engine.NoReadinessStream = true }
}

// WithStrictValidation makes POST /sandbox-templates/validate answer an
// invalid build spec with 422 (carrying "valid": false and "errors") instead
// of 200 {"valid": false, "errors": [...]}. Real servers do either.
func WithStrictValidation() Option {
	return func(c *config) { c.engine.StrictValidation = true }
}

// WithLocalShell makes exec calls that no handler answers really run, on
// this machine: shell commands with /bin/sh -c, Python with python3 -c, in a
// temporary directory per computer (working_dir is taken inside it),
// honouring the request's timeout (exit code 124 when it passes; 60 s when
// the request sets none) and env. The directories are removed by Close.
//
// The blocking exec (POST /computers/{id}/exec and /exec/python) reads its
// "timeout" in milliseconds, as the API documents; the streamed exec reads
// whole seconds. A client that sends the blocking exec's timeout in seconds
// (30 meaning 30 s, as the official Go and TypeScript SDKs send it) sees its
// command killed after that many milliseconds:
// exit code 124, "miosatest: command timed out after 30ms" on stderr, and
// ExecRequest.TimeoutSent showing the number it sent.
//
// A command runs on when the client that started it goes away (a break out
// of a streamed exec, a context that ends during the call), as on the real
// server: it ends by itself, by its timeout, when its machine stops,
// restarts or is deleted, or when the server closes.
//
// This is NOT a sandbox: commands run as the test process's user, with its
// environment and its access to the file system and the network. Use it
// only with commands you trust.
func WithLocalShell() Option {
	return func(c *config) { c.engine.LocalShell = true }
}

// WithLenientDelete makes a plain DELETE /computers/{id} (Computers.Delete,
// Sandboxes.Delete) remove a machine whatever its state. By default the
// server refuses to delete a machine that is not stopped unless force=true
// (Computers.Destroy) with 409 CONFLICT, as the API's documentation says it
// must; a test that passes against the strict default also passes against
// a lenient server, not the other way round.
func WithLenientDelete() Option {
	return func(c *config) { c.engine.LenientDelete = true }
}

// WithDataEnvelope wraps every object the server answers in {"data": ...}.
// By default each endpoint answers in the shape the official MIOSA SDKs'
// test fixtures show: bare objects for computer create and get, both exec
// routes, preview tokens, fork and validate; {"data": ...} for templates,
// builds, lists and readiness. The miosa client reads both.
func WithDataEnvelope() Option {
	return func(c *config) { c.engine.DataEnvelope = true }
}

// WithBuildStates makes template builds speak as newer servers do: the
// state under "state" (not "status"), the template under
// "sandbox_template_id", a failure under "error_code" and "error_message";
// builds move through "queued", "building", "certifying" and "snapshotting"
// (one build step delay each) to "ready", or to "failed" (FailBuilds).
// Templates report their state under "state" too.
func WithBuildStates() Option {
	return func(c *config) { c.engine.BuildStates = true }
}

// WithRetryableStarting makes exec on a machine that is still booting
// ("creating" or "starting") answer as newer servers do: 409 with code
// SANDBOX_STARTING (COMPUTER_STARTING for a desktop) in the canonical error
// envelope, {"error": {"code", "message", "details", "retryable": true,
// "retry_after_ms"}}, retry_after_ms being the time left until it runs. It
// is the server's promise that the command did not run. By default such an
// exec answers 409 NOT_RUNNING.
func WithRetryableStarting() Option {
	return func(c *config) { c.engine.RetryableStarting = true }
}

// WithSilentReadinessStream makes every readiness stream open (200,
// text/event-stream) and then send only ": keepalive" heartbeats (every
// WithHeartbeatInterval), never "ready" or "timeout": a server whose stream
// says nothing. Clients must fall back on their own deadline.
func WithSilentReadinessStream() Option {
	return func(c *config) { c.engine.SilentReadinessStream = true }
}

// WithAPIKey makes the server accept only key (which must start with
// "msk_"); Server.Client then uses it. By default any "msk_" key is
// accepted.
func WithAPIKey(key string) Option {
	return func(c *config) { c.engine.APIKey = key }
}

// WithTLS serves HTTPS with a self-signed certificate and HTTP/2 enabled;
// Server.Client and Server.HTTPClient trust the certificate, through the
// miosa SDK's default transport (miosa.NewHTTPClient), so that a test of
// a fleet sees the connections production would open. Dropped
// connections are then stream resets rather than closed connections.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithInMemoryNetwork serves over in-memory pipes instead of a loopback
// socket. Only Server.Client and Server.HTTPClient can reach such a server;
// its URL names a loopback port nothing listens on. Because nothing then
// waits on the network, a test that starts the server inside a
// testing/synctest bubble runs every delay of the fake (boot, builds, the
// readiness stream's heartbeats and timeout) in the bubble's fake time.
// It cannot be combined with WithTLS.
func WithInMemoryNetwork() Option {
	return func(c *config) { c.inMemory = true }
}

// NewServer starts a fake MIOSA API for a test and stops it when the test
// ends (t.Cleanup). It fails the test if the server cannot start.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	srv, err := Start(opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv.tb = t
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// Start starts a fake MIOSA API outside of a test, for examples and local
// tools. The caller must Close it.
func Start(opts ...Option) (*Server, error) {
	cfg := config{engine: engineConfig{
		BootDelay:      DefaultBootDelay,
		BuildStepDelay: DefaultBuildStepDelay,
	}}
	for _, opt := range opts {
		opt(&cfg)
	}
	if key := cfg.engine.APIKey; key != "" && (!strings.HasPrefix(key, "msk_") || key == "msk_") {
		return nil, fmt.Errorf("miosatest: WithAPIKey: a MIOSA API key starts with \"msk_\"")
	}
	if cfg.engine.BootDelay < 0 || cfg.engine.BuildStepDelay < 0 || cfg.engine.HeartbeatInterval < 0 || cfg.engine.StreamTimeout < 0 {
		return nil, fmt.Errorf("miosatest: delays and intervals must not be negative")
	}
	if s := cfg.screenSize; s != nil {
		if s.X < 1 || s.Y < 1 || s.X > maxScreenSide || s.Y > maxScreenSide {
			return nil, fmt.Errorf("miosatest: WithScreenSize(%d, %d): each side must be 1 to %d pixels", s.X, s.Y, maxScreenSide)
		}
		cfg.engine.Desktop.Size = *s
	}
	if cfg.maxStreams < 0 {
		return nil, fmt.Errorf("miosatest: WithMaxConcurrentStreams must not be negative")
	}
	if cfg.inMemory && cfg.tls {
		return nil, fmt.Errorf("miosatest: WithInMemoryNetwork and WithTLS cannot be combined")
	}
	var (
		l   net.Listener
		mem *memListener
	)
	if cfg.inMemory {
		mem = newMemListener()
		l = mem
	} else {
		var err error
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("miosatest: listening on loopback: %w", err)
		}
	}
	engine := newEngine(cfg.engine)
	conns := &connCounter{}
	hs := &httptest.Server{Listener: l, Config: &http.Server{
		Handler:   conns.serving(engine),
		ConnState: conns.track,
		HTTP2:     &http.HTTP2Config{MaxConcurrentStreams: cfg.maxStreams},
	}}
	if cfg.tls {
		hs.EnableHTTP2 = !cfg.noHTTP2
		hs.StartTLS()
	} else {
		hs.Start()
	}
	httpClient := hs.Client()
	switch {
	case mem != nil:
		httpClient = mem.client()
	case cfg.tls:
		// The SDK's own default client, trusting the certificate, so that
		// a fleet test sees the connections production would open.
		httpClient = miosa.NewHTTPClient(httpClient.Transport.(*http.Transport).TLSClientConfig)
	}
	apiKey := TestAPIKey
	if cfg.engine.APIKey != "" {
		apiKey = cfg.engine.APIKey
	}
	return &Server{URL: hs.URL + "/api/v1", engine: engine, http: hs, httpClient: httpClient, conns: conns, apiKey: apiKey}, nil
}

// Close stops the server: it ends open readiness streams, pending delays
// and running local commands, waits for every request in progress to
// finish, and removes the local shell's directories. Calling it again does
// nothing.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.engine.Close()
		s.http.Close()
		s.httpClient.CloseIdleConnections()
		if err := s.engine.Cleanup(); err != nil {
			s.err = fmt.Errorf("miosatest: removing the local shell's directories: %w", err)
		}
	})
	return s.err
}

// Client returns a miosa client pointed at the server, with a valid test
// key, no delay between retries (the retry count stays the SDK's) and waits
// that poll every PollInterval. opts
// are applied after those settings and may override them. An option
// NewClient refuses fails the test (or panics, for a server made by Start).
func (s *Server) Client(opts ...miosa.Option) *miosa.Client {
	base := []miosa.Option{
		miosa.WithBaseURL(s.URL),
		miosa.WithHTTPClient(s.httpClient),
		miosa.WithRetryDelay(0, 0),
		miosa.WithPollInterval(PollInterval),
	}
	c, err := miosa.NewClient(s.apiKey, append(base, opts...)...)
	if err != nil {
		if s.tb != nil {
			s.tb.Helper()
			s.tb.Fatalf("miosatest: creating the client: %v", err)
		}
		panic(fmt.Sprintf("miosatest: creating the client: %v", err))
	}
	return c
}

// HTTPClient returns an *http.Client that reaches the server (and trusts
// its certificate under WithTLS), for tests that speak raw HTTP.
func (s *Server) HTTPClient() *http.Client { return s.httpClient }

// SetStatus puts a computer or sandbox in status at once, overtaking a boot
// in progress: a way to reach states such as miosa.StatusError that the
// fake never enters on its own. It fails for an unknown id.
func (s *Server) SetStatus(id string, status miosa.ComputerStatus) error {
	if status == "" {
		return fmt.Errorf("miosatest: SetStatus: the status is empty")
	}
	if err := s.engine.SetStatus(id, string(status)); err != nil {
		return fmt.Errorf("miosatest: SetStatus: %w", err)
	}
	return nil
}

// Status returns the current status of a computer or sandbox, and false
// when the server has no machine with that id (never created, or deleted).
func (s *Server) Status(id string) (miosa.ComputerStatus, bool) {
	status, ok := s.engine.Status(id)
	return miosa.ComputerStatus(status), ok
}

// FailBuilds makes the next n template builds end "failed" with reason as
// their error text (a default text when reason is empty).
func (s *Server) FailBuilds(n int, reason string) {
	s.engine.FailBuilds(n, reason)
}
