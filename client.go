package miosa

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"strings"
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
	// Files moves files in and out of a computer or sandbox, streamed.
	Files *FilesService
	// Desktop sees and drives a desktop computer's screen.
	Desktop *DesktopService
	// Processes runs commands in the background on a sandbox and finds
	// them again by their PID.
	Processes *ProcessesService
	// Snapshots checkpoints sandboxes and restores new ones from them.
	Snapshots *SnapshotsService

	// key is the API key, kept to scrub it from anything a server echoes.
	key secret
	// authorization is the Authorization header value, built once.
	authorization secret
	settings      settings
	// traffic is what every call shares: pacing, the retry budget, the
	// connection warm-up and the health checks of open readiness waits.
	traffic *traffic
}

// service is what every service holds: the client whose pipeline it uses.
type service struct{ client *Client }

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
	if err := s.resolve(); err != nil {
		return nil, err
	}
	c := &Client{key: newSecret(apiKey), authorization: newSecret("Bearer " + apiKey), settings: s, traffic: newTraffic(&s)}
	c.Sandboxes = &SandboxesService{client: c}
	c.SandboxTemplates = &SandboxTemplatesService{client: c}
	c.Computers = &ComputersService{client: c}
	c.Exec = &ExecService{client: c}
	c.Files = &FilesService{client: c}
	c.Desktop = &DesktopService{client: c}
	c.Processes = &ProcessesService{client: c}
	c.Snapshots = &SnapshotsService{client: c}
	return c, nil
}

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
